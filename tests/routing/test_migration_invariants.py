"""Invariants under live migration (Llumnix) and preemptible instances (spot): every request
finishes exactly once with all its tokens, no KV block leaks (at the end each instance holds only
unreferenced cached-prefix blocks), service accounting is exact, the engine's queues are empty,
and fast-forward equals step mode. Negative control: the leak checker catches a leaked block."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmsched.sim.run
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.engine import Engine
from llmsched.sim.run import simulate
from llmsched.sim.state import DONE
from tests.sim.helpers import LinearCost
from tests.sim.strategies import cost_models, workloads


class _Recording(Engine):
    last: Engine | None = None

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        _Recording.last = self


def run(w, cluster, cost, seed=0, mode="fast"):
    with mock.patch.object(llmsched.sim.run, "Engine", _Recording):
        res = simulate(w, cluster, seed=seed, mode=mode, cost_models=lambda s: cost)
    return res, _Recording.last


def kv_leaks(engine) -> list[str]:
    """Instances whose memory at the end is not exactly their unreferenced cached prefixes."""
    bad = []
    for inst in engine.instances:
        tree = inst.tree
        cached = tree.blocks if tree else 0
        if inst.pool.private_blocks != 0 or inst.pool.used_blocks != cached:
            bad.append(f"instance {inst.index}: private {inst.pool.private_blocks}, used {inst.pool.used_blocks}")
        if tree is not None and tree.nodes_evictable != tree.nodes_alive:
            bad.append(f"instance {inst.index}: referenced prefix nodes left")
        if inst.waiting or inst.ready or inst.prefilling or inst.decoding or inst.pending_migrations:
            bad.append(f"instance {inst.index}: queues not empty")
        if inst.outstanding_tokens != 0:
            bad.append(f"instance {inst.index}: outstanding {inst.outstanding_tokens}")
    return bad


def check_invariants(res, engine) -> None:
    req = res.requests
    served = ~req["rejected"]
    assert req.loc[served, "finish_s"].notna().all()
    assert (engine.reqs.state[served.to_numpy()] == DONE).all()
    done = req[served]
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    assert (done["first_token_s"] <= done["finish_s"]).all()
    assert kv_leaks(engine) == []
    r = engine.reqs
    # service: each dispatched prompt charged once, each generated token once, per client
    for c in range(r.workload.n_clients):
        mine = done[done["client"] == c]
        assert int(r.input_service[:, c].sum()) == int(mine["prompt_tokens"].sum())
        assert int(r.output_service[:, c].sum()) == int(mine["output_tokens"].sum())
    final = res.service.groupby(["instance", "client"]).last()
    assert final["output_tokens"].sum() == done["output_tokens"].sum()
    assert (r.running_count == 0).all() and (r.waiting_count == 0).all()


def _two_sizes(w, router, params, prefix_cache=True, block=16):
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    small = -(-(biggest + 32) // block) * block
    common = dict(block_size=block, token_budget=64, max_batch_requests=8, prefix_cache=prefix_cache)
    return ClusterSpec(
        instances=(InstanceSpec(kv_capacity_tokens=small, **common),
                   InstanceSpec(kv_capacity_tokens=small * 20, count=2, **common)),
        router=router, router_params=freeze_params(params),
        kv_link_bandwidth_Bps=2e9, kv_link_latency_s=1e-3)


@st.composite
def llumnix_cases(draw):
    w = draw(workloads(max_requests=30, hash_block_tokens=16))
    params = {"migrate_out_threshold": draw(st.sampled_from([3.0, 50.0, 100.0, 150.0, 250.0])),
              "migration_interval_s": draw(st.sampled_from([0.01, 0.05])),
              "last_stage_max_blocks": draw(st.sampled_from([0, 1, 4])),
              "max_stages": draw(st.sampled_from([1, 3]))}
    return w, _two_sizes(w, "llumnix", params, draw(st.booleans())), draw(cost_models()), draw(st.integers(0, 3))


def _both_modes_keep_invariants(case):
    """Run fast and step mode, check the invariants in both, and require equal request tables."""
    w, cluster, cost, seed = case
    fast, eng = run(w, cluster, cost, seed)
    check_invariants(fast, eng)
    step, eng2 = run(w, cluster, cost, seed, mode="step")
    check_invariants(step, eng2)
    pd.testing.assert_frame_equal(fast.requests, step.requests, check_exact=True)
    return fast, step


@settings(max_examples=40, deadline=None)
@given(llumnix_cases())
def test_llumnix_live_migration_keeps_every_invariant(case):
    fast, step = _both_modes_keep_invariants(case)
    pd.testing.assert_frame_equal(fast.timeline, step.timeline, check_exact=True)


@st.composite
def spot_cases(draw):
    w = draw(workloads(max_requests=30, hash_block_tokens=16))
    span = float(w.arrival_s.max()) + 1.0
    k = draw(st.integers(1, 4))
    notices = [(draw(st.integers(0, 2)), draw(st.floats(0.0, span))) for _ in range(k)]
    params = {"inner": draw(st.sampled_from(["round-robin", "least-outstanding-tokens", "llumnix"])),
              "notices": notices, "grace_s": draw(st.sampled_from([0.0, 0.05, 0.5, 3.0])),
              "down_s": draw(st.sampled_from([0.3, 2.0, math.inf])), "migrate": draw(st.booleans()),
              "tick_interval_s": draw(st.sampled_from([0.02, 0.1]))}
    return w, _two_sizes(w, "spot", params, draw(st.booleans())), draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=40, deadline=None)
@given(spot_cases())
def test_preemptible_instances_lose_no_request(case):
    _both_modes_keep_invariants(case)


def _busy_workload(n=60, seed=1):
    from tests.sim.helpers import workload

    rng = np.random.default_rng(seed)
    return workload(np.sort(rng.uniform(0, 2.0, n)), rng.integers(20, 200, n), rng.integers(20, 120, n))


def test_spot_scenario_actually_migrates_and_restarts():
    """Not vacuous: the property tests above reach migrations, kills and restarts."""
    w = _busy_workload()
    cluster = _two_sizes(w, "spot", {"notices": [(1, 0.5), (2, 1.0), (0, 1.2)], "grace_s": 0.2,
                                     "migrate": True, "tick_interval_s": 0.02})
    res, eng = run(w, cluster, LinearCost())
    check_invariants(res, eng)
    s = res.summary["router"]
    assert s["kills"] == 2 and s["ignored"] == 1  # the third notice would leave no live instance
    assert s["migrations"] > 0 and res.summary["migrations"] > 0
    no_mig = _two_sizes(w, "spot", {"notices": [(1, 0.5)], "grace_s": 0.2, "migrate": False,
                                    "tick_interval_s": 0.02})
    res2, eng2 = run(w, no_mig, LinearCost())
    check_invariants(res2, eng2)
    assert res2.summary["router"]["restarts"] > 0 and res2.summary["migrations"] == 0
    assert res2.summary["router"]["lost_kv_tokens"] > 0


def test_llumnix_scenario_actually_migrates():
    w = _busy_workload(n=80)
    cluster = _two_sizes(w, "llumnix", {"migrate_out_threshold": 10.0, "migration_interval_s": 0.02})
    res, eng = run(w, cluster, LinearCost())
    check_invariants(res, eng)
    assert res.summary["migrations"] > 0 and res.summary["router"]["migrations"] > 0


def test_leak_checker_catches_a_leaked_block_negative_control():
    w = _busy_workload(n=10)
    res, eng = run(w, _two_sizes(w, "round-robin", {}), LinearCost())
    assert kv_leaks(eng) == []
    eng.instances[0].pool.allocate(1)
    assert kv_leaks(eng) and "private 1" in kv_leaks(eng)[0]
    with pytest.raises(AssertionError):
        check_invariants(res, eng)


def _shared_prefix_workload(n=80, seed=3):
    from tests.sim.helpers import workload

    rng = np.random.default_rng(seed)
    prompts = rng.integers(64, 160, n)
    offsets, values = [0], []
    for p in prompts:  # 6 prefix families of 4 blocks, then unique blocks
        fam = int(rng.integers(6))
        for i in range(int(p) // 16):
            values.append(fam * 1000 + i if i < 4 else int(rng.integers(1, 2**40)))
        offsets.append(len(values))
    return workload(np.sort(rng.uniform(0, 4.0, n)), prompts, rng.integers(10, 60, n),
                    hash_offsets=offsets, hash_values=values, hash_block_tokens=16)


@pytest.mark.parametrize("delay, applied", [(0.0, True), (1e9, False)])
def test_d2lpm_global_tree_learns_evictions_after_the_delay(delay, applied):
    w = _shared_prefix_workload()
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    cluster = ClusterSpec(instances=(InstanceSpec(kv_capacity_tokens=(biggest // 16 + 8) * 16, block_size=16, count=2,
                                                  batching="dlpm", token_budget=64),),
                          router="d2lpm", router_params=freeze_params({"eviction_delay_s": delay}))
    res, eng = run(w, cluster, LinearCost())
    check_invariants(res, eng)
    # small KV: instances evict cached prefixes; the router applies the reports only after the
    # delay (an infinite delay is the negative control: nothing ever reaches the global tree)
    assert (res.summary["router"]["evictions_applied"] > 0) == applied
