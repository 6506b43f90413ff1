"""The report builder on hand-made results directories: number formatting, failed entries, figures
copied next to the page, and nothing but the results directory as input."""

from __future__ import annotations

import json
import math

import pandas as pd
from llmsched.experiments import report
from llmsched.experiments.registry import Comparison
from llmsched.experiments.reproduce import comparisons_frame
from llmsched.experiments.tables import write_table


def test_fmt():
    assert report._fmt(None) == "—" and report._fmt(float("nan")) == "—"
    assert report._fmt(math.inf) == "∞" and report._fmt(-math.inf) == "−∞"
    assert report._fmt(3.0) == "3" and report._fmt(0.123456) == "0.1235" and report._fmt("a|b") == "a\\|b"


def _entry(root, name, status="ok", figures=(), comps=()):
    d = root / name
    d.mkdir(parents=True)
    for f in figures:
        (d / f).write_bytes(b"\x89PNG fake")
    meta = {"name": name, "paper": "P", "target": "Fig. 1", "mode": "quick", "seed": 7, "commit": "abc",
            "command": f"llmsched reproduce {name} --quick", "status": status, "wall_s": 1.5,
            "error": "" if status == "ok" else "ValueError: bad", "figures": list(figures), "description": "D"}
    (d / "meta.json").write_text(json.dumps(meta))
    if comps:
        write_table(comparisons_frame(comps), d, "comparisons")


def test_report_from_results_only(tmp_path):
    res = tmp_path / "res"
    _entry(res, "alpha", figures=("a.png", "a.pdf"),
           comps=[Comparison("m1", 2.0, 2.2, "x", "within", 0.2), Comparison("m2", "> 1", 0.5, "", "direction")])
    _entry(res, "beta", status="failed")
    out = tmp_path / "site" / "docs" / "reproductions.md"
    report.build_report(res, out)
    text = out.read_text()
    assert text.startswith("# Reproductions") and "do not edit by hand" in text
    assert "| [alpha](#alpha) | P | Fig. 1 | quick | ok | 1 / 2 | 1.5 |" in text
    assert "| [beta](#beta) | P | Fig. 1 | quick | failed | 0 / 0 | 1.5 |" in text
    assert "![alpha: a](figures/reproductions/alpha/a.png)" in text
    assert (out.parent / "figures" / "reproductions" / "alpha" / "a.png").read_bytes() == b"\x89PNG fake"
    assert not (out.parent / "figures" / "reproductions" / "alpha" / "a.pdf").exists()  # PNGs only
    assert "| m1 | 2 | 2.2 | x | 1.1 | within (±0.2) | yes |" in text
    assert "| m2 | > 1 | 0.5 |  | — | direction | **no** |" in text
    assert "**Failed:** `ValueError: bad`" in text and "commit `abc`" in text and "seed 7" in text
    # deterministic: building twice gives the same page
    first = text
    report.build_report(res, out)
    assert out.read_text() == first
    df = pd.read_parquet(res / "alpha" / "comparisons.parquet")
    assert list(df["agrees"]) == [True, False]
