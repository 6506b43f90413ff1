"""The baselines-load reproduction on real (tiny) simulations, and its capacity rule by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmsched.experiments import sweep
from llmsched.experiments.reproductions import baselines


def test_capacity_rule_by_hand():
    rates = np.array([0.5, 1.0, 1.5, 2.0])
    tbt = np.array([0.05, 0.06, 0.07, 0.08])
    # TTFT crosses 2 s between 1.0 (1 s) and 1.5 (5 s): 1.0 + (2-1)/(5-1)*0.5 = 1.125
    assert baselines.capacity(rates, np.array([0.5, 1.0, 5.0, 9.0]), tbt) == pytest.approx(1.125)
    assert baselines.capacity(rates, np.array([3.0, 4.0, 5.0, 9.0]), tbt) == 0.0
    assert baselines.capacity(rates, np.array([0.1, 0.2, 0.3, 0.4]), tbt) == 2.0  # lower bound
    # TBT fails first at 1.5 although TTFT is fine: the last passing grid rate
    assert baselines.capacity(rates, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.9, 0.9])) == 1.0


def test_sweep_definition_expands():
    spec = sweep.parse_spec(baselines.sweep_dict(quick=True, seed=0), "test")
    points = sweep.expand(spec)
    assert len(points) == 4 * 7
    assert {p.config["cluster"]["instances"][0]["batching"] for p in points} == set(baselines.POLICIES)


def test_tiny_run_on_the_engine(tmp_path, monkeypatch):
    pytest.importorskip("llmsched.sim.run")
    pytest.importorskip("llmsched.sim.workload.catalog")
    monkeypatch.setattr(baselines, "_grid", lambda quick, seed: ([0.5, 2.5], [seed], 40))
    monkeypatch.setattr(baselines, "JOBS", 1)  # in-process: no worker pool start-up in the test
    from llmsched.experiments.registry import all_reproductions
    from llmsched.experiments.reproduce import run_reproductions

    (rec,) = run_reproductions([all_reproductions()["baselines-load"]], tmp_path, quick=True, seed=1,
                               progress=False)
    assert rec.status == "ok", (tmp_path / "baselines-load" / "error.txt").read_text()
    d = tmp_path / "baselines-load"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["comparisons"] == 5 and (d / "baselines_ttft_throughput.png").is_file()
    import pandas as pd

    pts = pd.read_parquet(d / "points.parquet")
    # every request finishes unless the server rejects it for exceeding the model's context
    assert len(pts) == 8 and (pts["num_finished"] + pts["num_rejected"] == 40).all() and (pts["seed"] == 1).all()
    assert (pts["num_finished"] > 0).all()
    # Li–Dai–Peng: FasterTransformer (decode-first, no mixing) is not work-conserving; at the
    # overloaded rate its median TTFT must exceed Sarathi-Serve's.
    hi = pts[pts["rate_rps"] == 2.5].set_index("policy")
    assert hi.loc["fastertransformer", "ttft_p50_s"] > hi.loc["sarathi", "ttft_p50_s"]
