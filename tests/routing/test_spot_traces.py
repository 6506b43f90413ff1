"""SpotServe's node-availability traces (sim/spot.py): hand-derived parsing and node-seconds, and
a replay that keeps every invariant, equals step mode, and actually adds and kills nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.spot import Notice, spotserve_trace
from tests.routing.test_migration_invariants import check_invariants, run
from tests.sim.helpers import LinearCost, workload


def test_as_trace_parsed_as_published():
    # trace_0304_real.txt: nodes 0-6 at 0; +7 at 240 s; +8, 9 at 360 s; -8 at 600 s; +10 at 900 s;
    # -3, -10 at 1200 s; DONE at 1320 s
    tr = spotserve_trace("As")
    assert tr.n_slots == 11 and tr.initially_up == (0, 1, 2, 3, 4, 5, 6) and tr.end_s == 1320.0
    assert tr.adds == ((240.0, 7), (360.0, 8), (360.0, 9), (900.0, 10))
    assert tr.notices == (Notice(8, 600.0), Notice(3, 1200.0), Notice(10, 1200.0))
    # node-seconds with a 30 s grace: six nodes x 1320 + node 3 (0 -> 1230) + node 7 (240 -> 1320)
    # + node 8 (360 -> 630) + node 9 (360 -> 1320) + node 10 (900 -> 1230)
    # = 7920 + 1230 + 1080 + 270 + 960 + 330 = 11790
    assert tr.node_seconds(30.0) == 11790.0


def _bs_cluster(migrate: bool, grace_s: float):
    common = dict(block_size=16, token_budget=256, max_batch_requests=4, kv_capacity_tokens=4096, count=12)
    return ClusterSpec(instances=(InstanceSpec(**common),), router="spot",
                       router_params=freeze_params({"inner": "least-outstanding-tokens", "trace": "Bs",
                                                    "grace_s": grace_s, "migrate": migrate, "tick_interval_s": 0.5}),
                       kv_link_bandwidth_Bps=2e9, kv_link_latency_s=1e-3)


def test_bs_replay_keeps_invariants_and_fast_equals_step():
    rng = np.random.default_rng(2)
    n = 120
    # long outputs (10 ms per decode -> 6-20 s per request) so requests are running at the kills
    w = workload(np.sort(rng.uniform(0, 1000.0, n)), rng.integers(50, 400, n), rng.integers(600, 2000, n))
    cost = LinearCost(a=0.01, b=1e-5, c=0.0, d=0.0)
    for migrate, grace in ((False, 0.0), (True, 30.0)):  # rerouting at the notice vs grace-period migration
        fast, eng = run(w, _bs_cluster(migrate, grace), cost)
        check_invariants(fast, eng)
        step, eng2 = run(w, _bs_cluster(migrate, grace), cost, mode="step")
        check_invariants(step, eng2)
        pd.testing.assert_frame_equal(fast.requests, step.requests, check_exact=True)
        s = fast.summary["router"]
        # Bs: 3 removals (nodes 4, 8 at 120 s; node 0 at 240 s), 2 additions (10 at 720 s, 11 at 960 s)
        assert s["kills"] == 3 and s["adds"] == 2 and s["notices"] == 3
        r = fast.requests
        # nodes 10 and 11 serve nothing before they join; nodes killed serve nothing after the kill
        for j, t_up in ((10, 720.0), (11, 960.0)):
            assert (r.loc[r["instance"] == j, "arrival_s"] >= t_up - grace).all()
        assert int((r["instance"] == 4).sum()) == 0 or (r.loc[r["instance"] == 4, "finish_s"] <= 150.0).all()
        if migrate:
            assert s["migrations"] > 0
        else:
            assert s["lost_kv_tokens"] > 0 and fast.summary["migrations"] == 0


def test_trace_without_removals_only_adds_nodes_negative_control():
    rng = np.random.default_rng(3)
    n = 30
    w = workload(np.sort(rng.uniform(0, 1000.0, n)), rng.integers(50, 400, n), rng.integers(100, 400, n))
    cluster = _bs_cluster(False, 0.0)
    params = dict(cluster.router_params) | {"trace_removals": False}
    import dataclasses

    cluster = dataclasses.replace(cluster, router_params=freeze_params(params))
    res, eng = run(w, cluster, LinearCost(a=0.01, b=1e-5, c=0.0, d=0.0))
    check_invariants(res, eng)
    s = res.summary["router"]
    assert s["kills"] == 0 and s["notices"] == 0 and s["adds"] == 2 and s["lost_kv_tokens"] == 0
