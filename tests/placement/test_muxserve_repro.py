"""MuxServe reproduction pieces: the artifact's power-law rates, model assignment, and the mesh
simulator's temporal-sharing baseline and warm-up window (`theory/placement/muxserve.py`)."""

from __future__ import annotations

import pytest

from llmsched.experiments.reproductions import muxserve as mux_repro
from llmsched.theory.placement.muxserve import LLM, mesh_estimate, simulate_mesh


def test_power_law_rates_by_hand():
    # r_i ∝ (i+1)^-α scaled so r_0 = 40 x scale: with α = 1, r_i = 40 / (i+1) at scale 1
    r = mux_repro.rates(1.0, 1.0)
    assert len(r) == 19
    assert r[0] == pytest.approx(40.0) and r[1] == pytest.approx(20.0) and r[18] == pytest.approx(40 / 19)
    # scale 0.5 halves every rate (the first becomes 20)
    assert mux_repro.rates(2.1, 0.5)[0] == pytest.approx(20.0)
    assert mux_repro.rates(2.1, 0.5)[3] == pytest.approx(20.0 * 4 ** -2.1)


def test_rates_assigned_to_7b_models_first():
    ms = mux_repro.llms(0.9, 1.0)
    kinds = [m.name.rsplit("-", 1)[1] for m in ms]
    assert kinds == ["7b"] * 12 + ["13b"] * 4 + ["30b"] * 2 + ["65b"]
    assert ms[0].rate == max(m.rate for m in ms) and ms[-1].params_b == 65.2
    # the artifact's spatial baseline uses 12 + 4 + 8 + 8 = 32 GPUs = 4 nodes x 8
    assert sum(mux_repro.SPATIAL_GPUS[k] for k in kinds) == mux_repro.NODES * 8


SEVEN = LLM("a", 6.7, 10.0, 32, 4096)


def test_temporal_equals_adbs_for_one_llm():
    # one LLM: ADBS's initial quota is the whole KV cache, so "temporal" (no quotas) is the same run
    a = simulate_mesh([SEVEN], 1, 30.0, seed=3, sharing="adbs")
    b = simulate_mesh([SEVEN], 1, 30.0, seed=3, sharing="temporal")
    assert a == b and a["a"] > 0


def test_temporal_differs_from_adbs_when_colocated():
    # negative control for the option: a flooding LLM next to a light one; without quotas the flood
    # takes the KV cache first come first served, so the light LLM completes a different amount
    flood, light = LLM("flood", 6.7, 60.0, 32, 4096), LLM("light", 6.7, 2.0, 32, 4096)
    adbs = simulate_mesh([flood, light], 1, 40.0, seed=0, sharing="adbs", adaptive=False)
    temporal = simulate_mesh([flood, light], 1, 40.0, seed=0, sharing="temporal")
    assert adbs != temporal


def test_warmup_window_and_bad_arguments():
    full = simulate_mesh([SEVEN], 1, 40.0, seed=1)
    late = simulate_mesh([SEVEN], 1, 40.0, seed=1, warmup_s=20.0)
    # the rate over [20, 40] is not the rate over [0, 40] (the first requests finish after ~S_OUT steps)
    assert late["a"] != full["a"] and late["a"] > 0
    with pytest.raises(ValueError):
        simulate_mesh([SEVEN], 1, 10.0, warmup_s=10.0)
    with pytest.raises(ValueError):
        simulate_mesh([SEVEN], 1, 10.0, sharing="spatial")


def test_mesh_estimate_memoised_copy():
    d = mesh_estimate(1, [SEVEN])
    d["a"] = -1.0  # the caller's dict must not alias the cache
    assert mesh_estimate(1, [SEVEN])["a"] > 0
