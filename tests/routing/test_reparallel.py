"""SpotServe's re-parallelization mechanisms (sim/reparallel.py): hand-derived start-up and migration
costs, the controller's rule, the device mapper, the engine's start-up hold, and a replay that keeps
the invariants and equals step mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsched.sim import reparallel as rp
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.hardware import derived as hw
from tests.routing.test_migration_invariants import check_invariants, run
from tests.sim.helpers import LinearCost, workload

M = "spotserve-6.7b"


def test_storage_load_time_hand_derived():
    # 6.7B artifact shape, fp32: per layer 4*4096^2 (attention) + 3*4096*10923 (MLP) + 2*4096 (norms)
    # = 67,108,864 + 134,221,824 + 8,192 = 201,338,880 params; 32 layers x 4 bytes / tp 4 = 6,442,844,160 B
    # per GPU; at 1,736,718,336 B / 13.220192670822144 s (tools/s3_load.log) -> 49.04 s
    assert rp.shard_bytes(M, 4, 1) == 6_442_844_160
    assert rp.load_s(M, rp.ParallelConfig(7, 4, 1)) == pytest.approx(6_442_844_160 * 13.220192670822144
                                                                    / 1_736_718_336, rel=1e-12)
    # pipeline x2 halves each GPU's shard
    assert rp.shard_bytes(M, 2, 2) == rp.shard_bytes(M, 4, 1)


def test_kv_context_time_hand_derived():
    # KV per token: 2 x 32 layers x 32 heads x 128 x 4 B = 1,048,576 B; 2560 tokens over 6.25 GB/s
    assert hw.kv_bytes_per_token(M) == 1_048_576
    assert rp.kv_context_s(M, 2560) == pytest.approx(2560 * 1_048_576 / 6.25e9)


def test_device_mapper_reuses_surviving_weights():
    # 2 nodes (GPUs 0-3, 4-7), TP4 x 2 replicas; node 1 leaves, node 2 (GPUs 8-11) joins: replica 0
    # stays in place (nothing moves), replica 1 lands on node 2 and receives a full shard per GPU from
    # peers: 4 x 6,442,844,160 B into node 2 over 6.25 GB/s
    old = rp.ParallelConfig(2, 4, 1)
    assign = rp.layout(old, list(range(8)))
    new = rp.ParallelConfig(2, 4, 1)
    gpus = [0, 1, 2, 3, 8, 9, 10, 11]
    node_of = {g: g // 4 for g in range(12)}
    plan = rp.map_devices(M, old, assign, new, gpus, node_of, sources=list(range(8)))
    shard = rp.shard_bytes(M, 4, 1)
    assert plan.reused_bytes == pytest.approx(4 * shard)
    assert plan.from_peers_bytes == pytest.approx(4 * shard) and plan.from_storage_bytes == 0
    assert plan.time_s == pytest.approx(4 * shard / 6.25e9)
    assert plan.kept_replicas == ((0, 0),)


def test_device_mapper_matching_beats_plain_layout():
    # TP4 x 1 on GPUs 4-7 (node 1); re-parallelize on nodes 0 and 1 as TP4 x 2. The matching keeps the
    # old replica on GPUs 4-7 (reuse 4 shards); the plain layout puts replica 0 on GPUs 0-3 and the
    # old shards land in replica 1 at the same ranks (also reused): equal here. With TP2 x PP2 -> TP4 x 1
    # the matching finds the rank overlaps: each TP4 rank shares half its layers' quarter... hand value:
    # old (tp2, pp2, rank r, stage s) holds layers [16s, 16s+16) x [r/2, r/2+1/2); new (tp4, pp1, rank q)
    # needs 32 layers x [q/4, q/4+1/4): overlap 16 layers x 1/4 when q // 2 == r -> 16 x 1/4 x layer bytes
    layer_b = hw.params_per_layer(hw.get_model(M)) * 4
    assert rp.shared_bytes(M, (2, 2, 0, 1), (4, 1, 1, 0)) == pytest.approx(16 * 0.25 * layer_b)
    assert rp.shared_bytes(M, (2, 2, 1, 0), (4, 1, 1, 0)) == 0.0
    old = rp.ParallelConfig(1, 2, 2)
    assign = rp.layout(old, [0, 1, 2, 3])
    new = rp.ParallelConfig(1, 4, 1)
    node_of = {g: 0 for g in range(4)}
    km = rp.map_devices(M, old, assign, new, [0, 1, 2, 3], node_of, sources=[0, 1, 2, 3])
    plain = rp.map_devices(M, old, assign, new, [0, 1, 2, 3], node_of, sources=[0, 1, 2, 3], match=False)
    assert km.reused_bytes == pytest.approx(4 * 16 * 0.25 * layer_b)
    assert plain.reused_bytes <= km.reused_bytes
    assert km.time_s <= plain.time_s


def test_controller_rule_min_latency_among_feasible_else_max_throughput():
    kw = dict(min_gpus=4, batch=4, prompt=512, output=128)
    perfs = {(tp, pp): rp.config_perf(M, "t4-fp32", 28, tp, pp, 4, 512, 128)
             for tp, pp in rp.candidates(M, "t4-fp32", 28, 4, 4, 4, 640)}
    need = 2.0
    feasible = [p for p in perfs.values() if p.throughput_rps >= need]
    assert rp.choose_config(M, "t4-fp32", 28, required_rps=need, **kw) == min(feasible, key=lambda p: p.latency_s).config
    # an unreachable rate: the highest-throughput configuration
    top = max(perfs.values(), key=lambda p: p.throughput_rps).config
    assert rp.choose_config(M, "t4-fp32", 28, required_rps=1e9, **kw) == top
    assert rp.choose_config(M, "t4-fp32", 3, required_rps=need, **kw) is None  # below the minimum world size


def test_reparallelization_baseline_restarts_everything_spotserve_keeps_replicas():
    s = rp.Setup(M, "t4-fp32", 4, 4, 4, 512, 128, 2.0, 30.0)
    # nodes 0-2 up; node 3 joins at 100 s; node 1 is preempted at 200 s (notice at 170 s)
    base = rp.plan_transitions("reparallelization", s, (0, 1, 2), [(100.0, 3)], [(200.0, 1)])[1]
    ss = rp.plan_transitions("spotserve", s, (0, 1, 2), [(100.0, 3)], [(200.0, 1)])[1]
    w = rp.load_s(M, rp.ParallelConfig(4, 4, 1))
    assert [(t.t_plan, t.t_stop, t.t_ready) for t in base] == [(100.0, 100.5, 100.5 + w), (170.0, 170.5, 170.5 + w)]
    assert base[0].close == (0, 1, 2) and not base[0].keep_kv
    # SpotServe: the join keeps replicas 0-2 and loads node 3 from peers; the preemption moves replica 1's
    # requests with their KV, stopping just in time before the kill
    assert ss[0].keep == ((0, 0), (1, 1), (2, 2)) and ss[0].start == (3,) and ss[0].close == ()
    assert ss[1].close == (1,) and ss[1].keep_kv
    assert ss[1].t_stop == pytest.approx(200.0 - rp.kv_context_s(M, 4 * 640))


def _cluster(system: str):
    # 6.7B plan on trace Bs: sized by the plan; the engine runs a linear cost (fast)
    from llmsched.sim.spot import spotserve_trace

    s = rp.Setup(M, "t4-fp32", 4, 4, 4, 512, 128, 2.0, 30.0)
    tr = spotserve_trace("Bs")
    init, trans = rp.plan_transitions(system, s, tr.initially_up, tr.adds, [(x.time_s, x.instance) for x in tr.notices])
    n = len(rp.replica_groups(init, trans))
    spec = InstanceSpec(block_size=16, token_budget=4096, max_batch_requests=4, kv_capacity_tokens=8192, count=n,
                        batching="fastertransformer")
    return ClusterSpec(instances=(spec,), router="spotserve",
                       router_params=freeze_params({"system": system, "trace": "Bs", "tick_interval_s": 0.5}),
                       kv_link_bandwidth_Bps=6.25e9, kv_link_latency_s=1e-3)


@pytest.mark.parametrize("system", rp.SYSTEMS)
def test_reparallel_replay_keeps_invariants_and_fast_equals_step(system):
    rng = np.random.default_rng(4)
    n = 150
    w = workload(np.sort(rng.uniform(0, 1000.0, n)), np.full(n, 512), rng.integers(100, 600, n))
    cost = LinearCost(a=0.02, b=2e-5, c=0.0, d=0.0)
    fast, eng = run(w, _cluster(system), cost)
    check_invariants(fast, eng)
    step, eng2 = run(w, _cluster(system), cost, mode="step")
    check_invariants(step, eng2)
    pd.testing.assert_frame_equal(fast.requests, step.requests, check_exact=True)
    s = fast.summary["router"]
    assert s["switches"] == 4  # Bs: removals at 120 and 240 s, additions at 720 and 960 s
    r = fast.requests
    assert (r["finish_s"].notna()).all()
    if system == "reparallelization":
        # nothing is served while the first re-configuration loads (stop 90.5 s, ready 90.5 + 49 s)
        w_s = rp.load_s(M, rp.ParallelConfig(8, 4, 1))
        first = r[(r["first_token_s"] > 90.5 + 3.0) & (r["first_token_s"] < 90.5 + w_s)]
        assert len(first) == 0


def test_start_up_hold_negative_control_instant_loading_serves_in_the_window():
    # the same replay with instant weight loading serves requests inside the window the test above
    # finds empty: the hold (not something else) keeps the cluster idle while weights load
    import dataclasses

    rng = np.random.default_rng(4)
    n = 150
    w = workload(np.sort(rng.uniform(0, 1000.0, n)), np.full(n, 512), rng.integers(100, 600, n))
    cluster = _cluster("reparallelization")
    cluster = dataclasses.replace(cluster, router_params=freeze_params(dict(cluster.router_params) | {"load_Bps": 1e18}))
    res, eng = run(w, cluster, LinearCost(a=0.02, b=2e-5, c=0.0, d=0.0))
    check_invariants(res, eng)
    r = res.requests
    w_s = rp.load_s(M, rp.ParallelConfig(8, 4, 1))
    assert len(r[(r["first_token_s"] > 90.5 + 3.0) & (r["first_token_s"] < 90.5 + w_s)]) > 0


class _HoldRouter:
    """Everything to instance 0; at the first tick instance 0 is held until HOLD_S."""

    tick_interval_s = 0.5
    hold_s = 50.0

    def __init__(self) -> None:
        self.done = False

    def route(self, _rid, _view):
        return 0

    def tick(self, view):
        if not self.done and self.hold_s > 0:
            view.set_ready_at(0, self.hold_s)
            assert view.ready_at(0) == self.hold_s
        self.done = True


@pytest.mark.parametrize("hold_s", [50.0, 0.0])
def test_engine_start_up_hold_hand_derived(hold_s):
    # two requests (100 prompt + 5 output tokens each) at t = 1 s and 3 s on a linear cost a = 0.01 s per
    # iteration, b = 1e-4 s per prefill token, c = d = 0: prefill 0.01 + 100e-4 = 0.02 s, each decode 0.01 s.
    # The first tick (1.5 s, after the first arrival) holds instance 0 until 50 s: the second request's
    # first token comes at 50.02, its finish at 50.02 + 4 x 0.01 (negative control: no hold -> 3.02)
    from llmsched.policies import registry

    _HoldRouter.hold_s = hold_s
    registry.register(registry.ROUTING, "test-hold-router")(_HoldRouter)
    try:
        w = workload(np.array([1.0, 3.0]), np.array([100, 100]), np.array([5, 5]))
        spec = InstanceSpec(block_size=16, token_budget=512, max_batch_requests=4, kv_capacity_tokens=1024, count=2)
        res, eng = run(w, ClusterSpec(instances=(spec,), router="test-hold-router"), LinearCost(a=0.01, b=1e-4, c=0.0, d=0.0))
        check_invariants(res, eng)
        assert res.requests.iloc[0]["first_token_s"] == pytest.approx(1.02)
        r = res.requests.iloc[1]
        start = max(hold_s, 3.0)
        assert r["first_token_s"] == pytest.approx(start + 0.02)
        assert r["finish_s"] == pytest.approx(start + 0.02 + 4 * 0.01)
    finally:
        registry.unregister(registry.ROUTING, "test-hold-router")


def test_pool_too_small_is_one_clear_input_error():
    from llmsched.sim.errors import InputError

    w = workload(np.array([1.0]), np.array([100]), np.array([5]))
    cluster = ClusterSpec(instances=(InstanceSpec(count=2),), router="spotserve")
    with pytest.raises(InputError, match="the plan needs 11 instances"):
        run(w, cluster, LinearCost(a=0.01, b=1e-4, c=0.0, d=0.0))
