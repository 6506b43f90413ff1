"""Hand checks for the Sarathi-Serve capacity search (`sarathi-vs-vllm`) and the SLAI reproduction's
heterogeneous TBT deadlines and TTFT comparison point."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.experiments.reproductions import sarathi as sar
from llmsched.experiments.reproductions import slai as slai_repro


def _probe(cap):
    return lambda x: {"rate_rps": x, "ok": x <= cap, "tbt_ok": x <= cap, "delay_ok": True}


def test_capacity_search_by_hand():
    # true capacity 3.3, start 1: 1 ok, 2 ok, 4 fail -> bisect: 3 ok, 3.5 fail, 3.25 ok, 3.375 fail
    # (bracket 0.125 > 2.5% of 3.375 = 0.084), 3.3125 fail (0.0625 <= 0.083) -> capacity 3.25
    cap, trials = sar.search_capacity(_probe(3.3))
    assert [t["rate_rps"] for t in trials] == [1, 2, 4, 3, 3.5, 3.25, 3.375, 3.3125]
    assert cap == 3.25
    # start fails: halve until a pass, then bisect: 1 fail, 0.5 ok, 0.75 fail, 0.625 ok, 0.6875 fail,
    # 0.65625 ok (bracket 0.03125 > 0.0172), 0.671875 fail (0.015625 <= 0.0168) -> 0.65625
    cap, trials = sar.search_capacity(_probe(0.66))
    assert cap == 0.65625 and len(trials) == 7
    # negative control: nothing passes -> 0 after max_trials probes
    cap, trials = sar.search_capacity(_probe(-1.0), max_trials=6)
    assert cap == 0.0 and len(trials) == 6
    assert sar._binding(trials) == "P99 TBT"


def test_sarathi_trial_runs():
    row = sar.trial("vllm", "sharegpt", "strict", 1.0, 40, seed=0)
    assert row["num_requests"] == 40 and row["tbt_slo_s"] == 0.1
    assert row["ok"] == (row["tbt_ok"] and row["delay_ok"]) and 0.0 <= row["tbt_miss_fraction"] <= 1.0


def test_slai_paper_grid_and_deadlines():
    assert slai_repro.paper_grid() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0])
    d = slai_repro.tbt_deadlines(20000, seed=4, hetero=True)
    assert set(np.unique(d)) == {0.1, 0.5}
    assert abs(np.mean(d == 0.1) - 0.05) < 0.005  # Bernoulli(0.05): sd 0.0015 at n = 20000
    assert np.array_equal(d, slai_repro.tbt_deadlines(20000, seed=4, hetero=True))  # same seed, same draw
    assert (slai_repro.tbt_deadlines(5, seed=4, hetero=False) == 0.2).all()


def test_slai_ttft_reduction_point_by_hand():
    import pandas as pd

    rates = np.array([1.0, 2.0])
    # log-linear: halfway between 0.2 and 0.8 in log space is sqrt(0.2 * 0.8) = 0.4
    assert slai_repro.ttft_at(rates, np.array([0.2, 0.8]), 1.5) == pytest.approx(0.4)
    curves = pd.DataFrame({"policy": ["sarathi", "sarathi", "slai", "slai"], "rate_rps": [1.0, 2.0, 1.0, 2.0],
                           "ttft_p50_s": [0.2, 0.8, 0.1, 0.4]})
    # at Sarathi's capacity 1.5: Sarathi sqrt(0.16) = 0.4, SLAI sqrt(0.04) = 0.2 -> reduction 0.5
    assert slai_repro._reduction_at_sarathi_capacity(curves, 1.5) == pytest.approx(0.5)


def test_slai_hetero_point_runs():
    row = slai_repro.run_point("slai", 1.0, 40, seed=0)
    assert row["num_finished"] == 40 and row["hetero_tbt"]
    assert 0.0 <= row["tbt_miss_fraction_strict"] <= 1.0 and 0.0 <= row["tbt_miss_fraction_relaxed"] <= 1.0


def test_registered_with_headlines():
    from llmsched.experiments.registry import all_reproductions

    names = all_reproductions()
    for name in ("sarathi-vs-vllm", "muxserve", "slai-vs-sarathi", "stability-region", "helix-placement"):
        assert name in names
