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
    assert report._fmt("nan") == "—" and report._fmt(math.inf) == "∞" and report._fmt(-math.inf) == "−∞"
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
    assert "| [alpha](#alpha) | P | Fig. 1 | quick | no headline | 1 / 2 | 1.5 |" in text
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


def test_headline_summary_and_status(tmp_path):
    res = tmp_path / "res"
    # gamma: its headline misses the magnitude but meets the direction; a non-headline miss too
    _entry(res, "gamma", comps=[Comparison("speed-up", 7.18, 1.9, "x", "ratio", 0.25, note="no router latency",
                                           headline=True, direction="> 1"),
                                Comparison("other", 2.0, 9.0, "x", "ratio", 0.1)])
    _entry(res, "delta", comps=[Comparison("capacity", 2.6, 2.5, "x", "ratio", 0.25, headline=True)])
    _entry(res, "eps", comps=[Comparison("p99", 15.6, 0.98, "x", "ratio", 0.25, note="no knee",
                                         headline=True, direction="> 1")])
    out = tmp_path / "r.md"
    report.build_report(res, out)
    text = out.read_text()
    assert "## Headline claims" in text
    assert "| P | [speed-up](#gamma) | 7.18 x | 1.9 x | direction only | no router latency |" in text
    assert "| P | [capacity](#delta) | 2.6 x | 2.5 x | reproduced |  |" in text
    assert "| P | [p99](#eps) | 15.6 x | 0.98 x | not reproduced | no knee |" in text
    assert "1 reproduced, 1 direction only, 1 not reproduced or failed, of 3" in text
    assert "| **speed-up** (headline) | 7.18 | 1.9 |" in text
    assert json.loads((res / "gamma" / "meta.json").read_text())["status"] == "ok"


def test_keep_previous_rebuilds_sections_from_their_records(tmp_path):
    """A reproduction re-run alone replaces its own section; with --keep-previous the others come
    back from the records the earlier report stored, byte for byte; without it they are dropped."""
    first, second = tmp_path / "run1", tmp_path / "run2"
    _entry(first, "alpha", figures=("a.png",), comps=[Comparison("m1", 2.0, 2.2, "x", "within", 0.2, headline=True)])
    _entry(first, "gamma", comps=[Comparison("speed-up", 7.18, 1.9, "x", "ratio", 0.25, headline=True, direction="> 1")])
    out = tmp_path / "docs" / "reproductions.md"
    report.build_report(first, out)
    before = out.read_text()
    record = json.loads((out.parent / "figures" / "reproductions" / "gamma" / "record.json").read_text())
    assert record["name"] == "gamma" and float(record["comparisons"][0]["ours"]) == 1.9
    _entry(second, "gamma", comps=[Comparison("speed-up", 7.18, 7.0, "x", "ratio", 0.25, headline=True, direction="> 1")])
    report.build_report(second, out, keep_previous=True)
    after = out.read_text()
    alpha = before[before.index("## alpha"):before.index("## gamma")]
    assert alpha in after  # the kept section is rebuilt exactly as before, figure included
    assert (out.parent / "figures" / "reproductions" / "alpha" / "a.png").is_file()
    assert "| P | [speed-up](#gamma) | 7.18 x | 7 x | reproduced |  |" in after
    assert "Headline claims: 2 reproduced" in after
    report.build_report(second, out)  # without the flag: only what RESULTS_DIR holds
    assert "## alpha" not in out.read_text()
