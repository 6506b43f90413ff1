"""The compiled kernels (`llmsched.sim.kernels`) against the NumPy path they replace: whole runs
compared bit for bit with the compiled path on and off (the switch flipped in-process), plus a
negative control (one kernel result moved by one ulp must be caught), and the kernels' loops run
as plain Python against the NumPy expressions (this part needs no Numba)."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies import registry
from llmsched.sim import kernels
from llmsched.sim.cost import build
from llmsched.sim.run import simulate
from llmsched.testing import assert_same_run, clusters, cost_models, workloads

compiled = pytest.mark.skipif(not kernels.JIT, reason="numba is not installed (or LLMSCHED_NO_JIT=1)")
NEEDS_SETUP = {"spotserve"}  # as in test_fast_forward.py
ROOFLINES = [("llama-2-7b", "a100-80gb", 1), ("llama-2-70b", "a100-80gb", 4), ("mistral-7b", "l4", 1)]


@contextmanager
def jit(on: bool):
    saved = kernels.JIT
    kernels.JIT = on
    try:
        yield
    finally:
        kernels.JIT = saved


@st.composite
def scenarios(draw):
    """Any registered batching policy and router, a roofline cost model (the compiled segment
    path) or a test cost model (the NumPy segment path, compiled apply), and the instance options
    the kernels read: TBT SLOs, GB-second prices, padded and static batches, step mode."""
    w = draw(workloads(max_requests=20))
    if draw(st.booleans()):
        w = dataclasses.replace(w, tbt_slo_s=np.full(len(w.arrival_s), draw(st.sampled_from([0.01, 0.03, 0.2]))))
    batching = [n for n in registry.names(registry.BATCHING) if n not in NEEDS_SETUP]
    routing = [n for n in registry.names(registry.ROUTING) if n not in NEEDS_SETUP]
    cluster = draw(clusters(w, batching, routing))
    extra = draw(st.sampled_from([{}, {}, {"memory_gb": 16.0, "price_per_gb_s_usd": 1.6e-5},
                                  {"pad_batches": True}, {"decode_until_batch_ends": True}]))
    if extra:
        cluster = dataclasses.replace(
            cluster, instances=tuple(dataclasses.replace(s, **extra) for s in cluster.instances))
    if draw(st.integers(0, 3)):
        cost = build("roofline", *draw(st.sampled_from(ROOFLINES)))
    else:
        cost = draw(cost_models())
    return w, cluster, cost, draw(st.integers(0, 3)), draw(st.sampled_from(["fast", "step"]))


def _run(scenario, on: bool):
    w, cluster, cost, seed, mode = scenario
    with jit(on):
        return simulate(w, cluster, seed=seed, mode=mode, cost_models=lambda _spec: cost)


@compiled
@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_compiled_path_equals_numpy_path(scenario):
    assert_same_run(_run(scenario, True), _run(scenario, False))


@compiled
def test_a_one_ulp_change_in_a_kernel_is_caught(monkeypatch):
    """Negative control: the comparison above fails when one kernel's result is off by one ulp."""
    from tests.sim.helpers import workload

    w = workload([0.0, 0.0, 0.01, 0.02], [120, 40, 300, 64], [12, 30, 5, 20])
    cluster = clusters_fixed()
    cost = build("roofline", "llama-2-7b", "a100-80gb", 1)
    scenario = (w, cluster, cost, 0, "fast")
    assert_same_run(_run(scenario, True), _run(scenario, False))
    original = kernels.roofline_segment

    def off_by_one_ulp(*args):
        first = original(*args)
        ends, n = args[-2], args[11]
        ends[n - 1] = np.nextafter(ends[n - 1], np.inf)
        return first

    monkeypatch.setattr(kernels, "roofline_segment", off_by_one_ulp)
    with pytest.raises(AssertionError):
        assert_same_run(_run(scenario, True), _run(scenario, False))


def clusters_fixed():
    from llmsched.sim.config import ClusterSpec, InstanceSpec

    return ClusterSpec(instances=(InstanceSpec(count=2, batching="sarathi", token_budget=64, block_size=16,
                                               kv_capacity_tokens=2048),), router="round-robin")


# ------------------------------------------------------------------------------ the loops as Python
@settings(max_examples=80, deadline=None)
@given(st.sampled_from(ROOFLINES), st.integers(0, 600), st.integers(0, 40), st.integers(0, 6000),
       st.integers(0, 5000), st.integers(1, 40), st.sampled_from([0.0, 0.25]), st.floats(0.0, 1e4))
def test_roofline_loop_equals_segment_times(spec, pt, extra_c2, past0, dctx0, n, extra_s, now):
    """`roofline_segment` (as plain Python) against `RooflineCost.segment_times` + the engine's
    extra seconds and running sum (`np.cumsum`), bit for bit."""
    cost = build("roofline", *spec)
    dt = dctx0 % 37
    if pt + dt == 0:
        pt = 1
    sum_c2 = pt * pt + extra_c2 if pt else 0
    pairs0 = pt * past0 + pt * (pt + 1) // 2
    pctx0 = past0 + pt
    nreq = dt + (1 if pt else 0)
    layout = (pt, sum_c2, pairs0, pctx0, dt, dctx0, nreq)
    durations = np.atleast_1d(np.asarray(cost.segment_times(*layout, n), dtype=np.float64)).copy()
    if extra_s:
        durations[0] += extra_s
    want = np.cumsum(np.concatenate([[now], durations]))[1:]
    consts = cost.roofline_consts()
    assert consts is not None
    for f in {kernels.roofline_segment.py_func, kernels.roofline_segment}:
        ends, rates = np.zeros(n + 3), np.zeros((3, n + 3), dtype=np.int64)
        first = f(consts, cost.comm_s(float(pt + dt)), now, extra_s, *layout, n, -1.0, 2.5e9, ends, rates)
        assert ends[:n].tobytes() == want.tobytes()
        assert first == durations[0]
        assert rates[0].tolist() == [0] * (n + 3)  # no cost rate asked for
        assert rates[1, :n].tolist() == np.rint(durations * 2.5e9).astype(np.int64).tolist()
        assert rates[2, :n].tolist() == np.rint(durations * 1e9).astype(np.int64).tolist()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(1e-6, 2.0), min_size=1, max_size=40), st.sampled_from([0.0, 0.25]),
       st.floats(0.0, 1e4), st.sampled_from([-1.0, 3.7e3]), st.sampled_from([-1.0, 2.5e9]))
def test_segment_ends_loop_equals_the_numpy_path(durations, extra_s, now, cost_scale, energy_scale):
    """`segment_ends` (as plain Python and compiled) against the NumPy path of
    `Instance._segment_ends`/`_segment_rates`: extra seconds, `np.cumsum` and `np.rint` rates, bit
    for bit; a one-ulp change to one duration is caught (negative control)."""
    given_s = np.asarray(durations, dtype=np.float64)
    want = given_s.copy()
    if extra_s:
        want[0] += extra_s
    n = len(want)
    want_ends = np.cumsum(np.concatenate([[now], want]))[1:]
    for f in {kernels.segment_ends.py_func, kernels.segment_ends}:
        ends, rates = np.zeros(n + 2), np.zeros((3, n + 2), dtype=np.int64)
        first = f(given_s, now, extra_s, cost_scale, energy_scale, ends, rates)
        assert first == want[0]
        assert ends[:n].tobytes() == want_ends.tobytes()
        cost_rows = np.rint(want * cost_scale).astype(np.int64).tolist() if cost_scale >= 0 else [0] * n
        assert rates[0, :n].tolist() == cost_rows
        if energy_scale >= 0:
            assert rates[1, :n].tolist() == np.rint(want * energy_scale).astype(np.int64).tolist()
            assert rates[2, :n].tolist() == np.rint(want * 1e9).astype(np.int64).tolist()
        moved = want_ends.copy()
        moved[-1] = np.nextafter(moved[-1], np.inf)
        assert ends[:n].tobytes() != moved.tobytes()


def test_roofline_consts_refuse_a_subclass_that_changes_the_model():
    from llmsched.sim.cost.roofline import RooflineCost

    class Slower(RooflineCost):
        def components(self, shape):
            return super().components(shape)

    base = build("roofline", "llama-2-7b", "a100-80gb", 1)
    assert base.roofline_consts() is not None
    assert Slower(base.model, base.gpu, base.tp, base.params).roofline_consts() is None


def test_small_runs_take_the_numpy_path_until_the_kernels_are_loaded(monkeypatch):
    """`use_for`: never without Numba; below MIN_REQUESTS only once a run has loaded them."""
    monkeypatch.setattr(kernels, "MIN_REQUESTS", 100)
    monkeypatch.setattr(kernels, "_loaded", False)
    monkeypatch.setattr(kernels, "JIT", True)
    assert not kernels.use_for(99)
    assert not kernels.loaded()
    assert kernels.use_for(100)
    assert kernels.loaded()
    assert kernels.use_for(1)  # loaded now: any run takes them
    monkeypatch.setattr(kernels, "JIT", False)
    assert not kernels.use_for(10**6)

