"""Migration reserves destination memory first and aborts cleanly (engine `migrate`,
`migrate_live`; Llumnix's `migrate_in_pre_alloc`): hand-derived reservation sizes, aborts when the
destination cannot reserve, when the request finishes mid-copy and after too many stages; fast
mode equals step mode and no block leaks under random Llumnix runs on small destinations."""

from __future__ import annotations

from unittest import mock

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import llmsched.sim.run
from llmsched.policies import registry
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.engine import Engine
from llmsched.sim.run import simulate
from tests.routing.test_migration_invariants import check_invariants, kv_leaks
from tests.sim.helpers import LinearCost, workload
from tests.sim.strategies import cost_models, workloads

BW, LAT = 5e8, 1e-3  # slow link: 524,288 B per llama-2-7b KV token -> 1.048576 ms per token
COST = LinearCost(a=0.01, b=1e-5, c=0.0, d=0.0)  # 10 ms per decode iteration, +10 us per prompt token
TICK_S = 1.005  # off the 10 ms iteration grid, so no event ties the tick


class _Recording(Engine):
    last: Engine | None = None

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        _Recording.last = self


class _MoveOnce:
    """Request 0 -> instance 0, request 1 (if any) -> instance 1; at the first tick
    (t = 1.005 s) try to move request 0 to instance 1 by `how` and record what the engine did."""

    tick_interval_s = TICK_S

    def __init__(self, how: str, **kw) -> None:
        self.how, self.kw = how, kw
        self.done = False
        self.accepted: bool | None = None
        self.reserved_after: dict | None = None
        self.private_after: int | None = None

    def route(self, rid, view):
        return min(rid, 1)

    def tick(self, view):
        if self.done:
            return
        self.done = True
        if self.how == "live":
            self.accepted = view.migrate_live(0, 1, **self.kw)
        else:
            self.accepted = view.migrate(0, 1)
        dst = view._engine.instances[1]
        self.reserved_after = dict(dst.reserved)
        self.private_after = dst.pool.private_blocks


def _run(how, w, dst_kv=4096, mode="fast", **kw):
    cluster = ClusterSpec(instances=(InstanceSpec(kv_capacity_tokens=4096, token_budget=2048),
                                     InstanceSpec(kv_capacity_tokens=dst_kv, token_budget=2048)),
                          kv_link_bandwidth_Bps=BW, kv_link_latency_s=LAT)
    router = _MoveOnce(how, **kw)
    orig = llmsched.sim.run.make_policy

    def fake(family, name, params, **k):
        return router if family == registry.ROUTING else orig(family, name, params, **k)

    with mock.patch.object(llmsched.sim.run, "make_policy", fake), \
            mock.patch.object(llmsched.sim.run, "Engine", _Recording):
        res = simulate(w, cluster, mode=mode, cost_models=lambda s: COST)
    return res, _Recording.last, router


# Request 0 (prompt 1000) arrives at 0 on instance 0: prefill takes 0.01 + 1000 x 1e-5 = 0.02 s
# (first token at 0.02, computed = 1000); then one token per 10 ms. At the tick (1.005 s) the
# iterations ending at 0.03 .. 1.00 (98 of them) are applied: computed = 1098 tokens, 69 blocks
# of 16, the 69th partly written.
ONE = workload([0.0], [1000], [400])


def test_live_migration_reserves_the_first_stage_before_copying():
    res, eng, router = _run("live", ONE, max_stages=3, last_stage_max_blocks=4)
    assert router.accepted
    # stage 1 copies the 68 full blocks (1088 tokens) and reserves exactly those on instance 1
    assert router.reserved_after == {0: 68} and router.private_after == 68
    r = res.requests.iloc[0]
    assert r["migrations"] == 1 and r["instance"] == 1 and r["generated_tokens"] == 400
    assert eng.migration_counts == {"aborted_dst": 0, "aborted_src": 0}
    assert kv_leaks(eng) == [] and all(not i.reserved for i in eng.instances)


def test_stop_and_copy_reserves_the_whole_kv_plus_the_token_in_flight():
    res, eng, router = _run("stop", ONE)
    # ceil((1098 + 1) / 16) = 69 blocks: the KV now and the token of the iteration in flight
    assert router.accepted and router.reserved_after == {0: 69} and router.private_after == 69
    assert res.requests.iloc[0]["migrations"] == 1 and res.requests.iloc[0]["instance"] == 1
    assert kv_leaks(eng) == [] and all(not i.reserved for i in eng.instances)


# Request 1 (prompt 1200, output 800) fills instance 1 (2048 tokens = 128 blocks): prefill ends at
# 0.01 + 0.012 = 0.022 s, then iterations end at 0.032 .. 0.992 (97 by the tick): computed = 1297,
# 82 blocks held; 1297 % 16 = 1, so the iteration in flight needs no new block. Free: 128 - 82 = 46.
CROWDED = workload([0.0, 0.0], [1000, 1200], [400, 800])


def test_destination_without_room_aborts_at_once_and_the_source_keeps_the_request():
    res, eng, router = _run("live", CROWDED, dst_kv=2048, max_stages=3, last_stage_max_blocks=4)
    assert router.accepted is False  # 68 blocks wanted, 46 free
    assert router.reserved_after == {} and router.private_after == 82  # nothing was taken
    assert eng.migration_counts["aborted_dst"] == 1
    r = res.requests.set_index("request_id").loc[0]
    assert r["migrations"] == 0 and r["instance"] == 0 and r["generated_tokens"] == 400
    # the request never stopped: every gap is one 10 ms iteration
    assert abs(r["tbt_max_s"] - 0.01) < 1e-9
    check_invariants(res, eng)


def test_stop_and_copy_without_room_is_refused():
    res, eng, router = _run("stop", CROWDED, dst_kv=2048)
    assert router.accepted is False and router.private_after == 82
    assert res.requests.set_index("request_id").loc[0, "migrations"] == 0
    check_invariants(res, eng)


def test_request_finishing_mid_copy_aborts_and_frees_the_reservation():
    # output 150: 99 tokens by the tick, the last at 1.0 + 51 x 0.01 = 1.51 s; stage 1 moves
    # 1088 tokens x 1.048576 ms + 1 ms = 1.142 s, ending at ~2.15 s: the request is done by then
    w = workload([0.0], [1000], [150])
    res, eng, router = _run("live", w, max_stages=3, last_stage_max_blocks=4)
    assert router.accepted and router.reserved_after == {0: 68}
    assert eng.migration_counts == {"aborted_dst": 0, "aborted_src": 1}
    r = res.requests.iloc[0]
    assert r["migrations"] == 0 and r["instance"] == 0
    assert eng.instances[1].pool.private_blocks == 0 and not eng.instances[1].reserved
    check_invariants(res, eng)


def test_too_many_stages_abort_like_llumnix_or_force_the_last_stage():
    # one stage allowed and the rest after it is > 1 block (after stage 1's 1.142 s, ~114 new
    # tokens are uncopied): Llumnix aborts ("exceed max stages"); our default stops and copies
    res, eng, router = _run("live", ONE, max_stages=1, last_stage_max_blocks=1, abort_after_max_stages=True)
    assert router.accepted and eng.migration_counts["aborted_src"] == 1
    assert res.requests.iloc[0]["migrations"] == 0 and res.requests.iloc[0]["instance"] == 0
    check_invariants(res, eng)
    res2, eng2, _ = _run("live", ONE, max_stages=1, last_stage_max_blocks=1)
    assert eng2.migration_counts["aborted_src"] == 0 and res2.requests.iloc[0]["migrations"] == 1


def test_reservation_cases_fast_equal_step():
    for how, w, kv, kw in (("live", ONE, 4096, {"max_stages": 3}), ("live", CROWDED, 2048, {}),
                           ("live", workload([0.0], [1000], [150]), 4096, {}), ("stop", ONE, 4096, {})):
        fast = _run(how, w, kv, "fast", **kw)[0]
        step = _run(how, w, kv, "step", **kw)[0]
        pd.testing.assert_frame_equal(fast.requests, step.requests, check_exact=True)
        pd.testing.assert_frame_equal(fast.timeline, step.timeline, check_exact=True)


# ---------------------------------------------------------------- property test
def _small_destinations(w, params, prefix_cache):
    """One roomy source-sized instance and two destinations barely larger than the biggest
    request, so reservations often fail."""
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    small = -(-(biggest + 32) // 16) * 16
    common = dict(block_size=16, token_budget=64, max_batch_requests=8, prefix_cache=prefix_cache)
    return ClusterSpec(instances=(InstanceSpec(kv_capacity_tokens=small * 3, **common),
                                  InstanceSpec(kv_capacity_tokens=small, count=2, **common)),
                       router="llumnix", router_params=freeze_params(params),
                       kv_link_bandwidth_Bps=2e9, kv_link_latency_s=1e-3)


@st.composite
def cases(draw):
    w = draw(workloads(max_requests=30, hash_block_tokens=16))
    params = {"migrate_out_threshold": draw(st.sampled_from([3.0, 50.0, 150.0, 400.0])),
              "migration_interval_s": draw(st.sampled_from([0.01, 0.05])),
              "last_stage_max_blocks": draw(st.sampled_from([0, 1, 4])),
              "max_stages": draw(st.sampled_from([1, 3])),
              "abort_after_max_stages": draw(st.booleans())}
    return w, _small_destinations(w, params, draw(st.booleans())), draw(cost_models()), draw(st.integers(0, 3))


def _run_mode(w, cluster, cost, seed, mode):
    with mock.patch.object(llmsched.sim.run, "Engine", _Recording):
        res = simulate(w, cluster, seed=seed, mode=mode, cost_models=lambda s: cost)
    return res, _Recording.last


@settings(max_examples=40, deadline=None)
@given(cases())
def test_reserving_migrations_keep_invariants_and_fast_equals_step(case):
    w, cluster, cost, seed = case
    fast, e1 = _run_mode(w, cluster, cost, seed, "fast")
    step, e2 = _run_mode(w, cluster, cost, seed, "step")
    for res, eng in ((fast, e1), (step, e2)):
        check_invariants(res, eng)
        assert all(not i.reserved for i in eng.instances)
    assert e1.migration_counts == e2.migration_counts
    pd.testing.assert_frame_equal(fast.requests, step.requests, check_exact=True)
    pd.testing.assert_frame_equal(fast.timeline, step.timeline, check_exact=True)


def test_property_scenario_reaches_both_aborts_and_moves():
    """Not vacuous: draining the roomy instance onto small destinations (a preemption notice at
    0.5 s) moves some requests and has others refused for lack of room."""
    import dataclasses

    import numpy as np

    rng = np.random.default_rng(5)
    n = 80
    w = workload(np.sort(rng.uniform(0, 2.0, n)), rng.integers(20, 200, n), rng.integers(20, 120, n))
    cluster = dataclasses.replace(
        _small_destinations(w, {}, False), router="spot",
        router_params=freeze_params({"inner": "llumnix", "notices": [(0, 0.5)], "grace_s": 0.5,
                                     "tick_interval_s": 0.02}))
    for mode in ("fast", "step"):
        res, eng = _run_mode(w, cluster, LinearCost(), 0, mode)
        check_invariants(res, eng)
        assert all(not i.reserved for i in eng.instances)
        assert res.summary["migrations"] > 0 and eng.migration_counts["aborted_dst"] > 0
