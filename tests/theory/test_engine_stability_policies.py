"""RAD and SLAI on the engine: fast-forward == step for both (with non-default parameters too),
RAD's tile-aligned budget derived from the cost model, and SLAI's four-stage order on hand cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.batching.rad import tile_plan
from sim.config import ClusterSpec, InstanceSpec
from sim.cost import StaircaseCost
from sim.run import simulate
from tests.sim.helpers import LinearCost, UnitCost, workload
from tests.sim.strategies import clusters, cost_models, workloads

SLAI_PARAMS = [
    (),
    (("token_budget", 64), ("limit_total_decodes", 3), ("time_between_tokens_s", 0.05)),
    (("fcfs", True), ("fixed_offset", True), ("below_memory_limit_offset", 0.5)),
    (("user_priority", True), ("memory_limit", 0.2), ("max_active_requests", 4)),
]


def _same(a, b):
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.service, b.service, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)


@st.composite
def scenarios(draw):
    w = draw(workloads())
    name = draw(st.sampled_from(["rad", "slai"]))
    cluster = draw(clusters(w, [name], ["round-robin"]))
    params = draw(st.sampled_from(SLAI_PARAMS)) if name == "slai" else draw(st.sampled_from([(), (("token_budget", 40),)]))
    inst = tuple(InstanceSpec(**{**s.__dict__, "batching_params": params}) for s in cluster.instances)
    cluster = ClusterSpec(instances=inst, router=cluster.router)
    if draw(st.booleans()):  # give SLAI finite per-request TBT SLOs (some below the default: paid tier)
        tbt = np.asarray(draw(st.lists(st.sampled_from([0.05, 0.1, 0.5, np.inf]), min_size=w.n, max_size=w.n)))
        w = w.with_columns(tbt_slo_s=tbt)
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_rad_slai_fast_equals_step(scenario):
    w, cluster, cost, seed = scenario
    fast = simulate(w, cluster, seed=seed, mode="fast", cost_models=lambda s: cost)
    step = simulate(w, cluster, seed=seed, mode="step", cost_models=lambda s: cost)
    _same(fast, step)


def test_tile_plan_staircase_and_linear():
    # staircase c + a*ceil(b/128): rate k*128/(c+a*k) grows with k, so b* = 128*floor(B/128) when the
    # partial step is small (docs/theory/throughput.md §1: 520 -> 512); tile ends are the multiples of 128
    best, ends = tile_plan(StaircaseCost(), 520)
    assert best == 512 and ends == (128, 256, 384, 512)
    assert tile_plan(StaircaseCost(), 1024) == (1024, tuple(range(128, 1025, 128)))
    # linear and constant round times: the rate b/t(b) increases, so the whole budget, one "tile"
    assert tile_plan(LinearCost(), 300) == (300, (300,))
    assert tile_plan(UnitCost(), 77) == (77, (77,))
    assert tile_plan(None, 64) == (64, (64,))


def _run(policy, w, budget=512, cap=10**6, params=(), cost=None):
    cl = ClusterSpec(instances=(InstanceSpec(batching=policy, batching_params=params, token_budget=budget,
                                             max_batch_requests=cap, kv_capacity_tokens=10**7),))
    return simulate(w, cl, cost_models=lambda s: cost or UnitCost())


def test_rad_uses_tile_aligned_budget_not_instance_budget():
    # one 1000-token prompt, instance budget 520, staircase: RAD chunks 512 per round, Sarathi 520
    w = workload([0.0], [1000], [1])
    rad = _run("rad", w, budget=520, cost=StaircaseCost())
    sar = _run("sarathi", w, budget=520, cost=StaircaseCost())
    assert rad.timeline.prefill_tokens.tolist()[:1] == [512]
    assert sar.timeline.prefill_tokens.tolist()[:1] == [520]


def test_rad_pads_only_to_the_decode_tile_when_the_cap_binds():
    # cap 4, three requests decoding (cap - 1), one long prompt waiting; staircase b0 = 128: RAD's
    # round is 3 decodes + 125 prefill tokens (end of the first tile), Sarathi fills 512.
    w = workload([0.0, 0.0, 0.0, 0.5], [1, 1, 1, 2000], [50, 50, 50, 1])
    cost = StaircaseCost(c=0.01, a=0.03, b0=128)
    rad = _run("rad", w, budget=512, cap=4, cost=cost)
    sar = _run("sarathi", w, budget=512, cap=4, cost=cost)
    mixed_rad = rad.timeline[(rad.timeline.prefill_tokens > 0) & (rad.timeline.decode_tokens == 3)]
    mixed_sar = sar.timeline[(sar.timeline.prefill_tokens > 0) & (sar.timeline.decode_tokens == 3)]
    assert set(mixed_rad.prefill_tokens) == {125}
    assert set(mixed_sar.prefill_tokens) == {509}


def test_slai_order_critical_paused_shortest_noncritical():
    # Unit-time rounds. TBT 0.2 s < 1 s round: every decode is critical at every round after its first
    # token (LST = t_end + 0.2 - 5 * mean(1 s) < now). Budget 3 and 1-token decodes.
    # r0 (prompt 1, out 3) arrives at 0; at t=0.5 r1 (prompt 5) and r2 (prompt 2) arrive.
    w = workload([0.0, 0.5, 0.5], [1, 5, 2], [3, 1, 1])
    res = _run("slai", w, params=(("token_budget", 3),))
    req = res.requests.set_index("request_id") if "request_id" in res.requests else res.requests
    ft = req.first_token_s.to_numpy()
    # round [0,1): r0 prefill -> first token at 1. Round [1,2): critical decode r0 (1 token), then
    # shortest-first: r2 (2 tokens) fills the budget -> r2 first token at 2; r1 waits.
    assert ft[0] == 1.0 and ft[2] == 2.0
    # Round [2,3): r0's last decode (critical), then r1's first chunk of 2 tokens (paused at 3 left);
    # round [3,4): r1 continues (paused prefills come before anything new): 3 tokens -> first token at 4.
    assert ft[1] == 4.0


def test_slai_fcfs_flag_admits_in_arrival_order():
    w = workload([0.0, 0.5, 0.5], [1, 5, 2], [3, 1, 1])
    res = _run("slai", w, params=(("token_budget", 3), ("fcfs", True)))
    ft = res.requests.first_token_s.to_numpy()
    # FCFS: round [1,2) = r0 decode + r1 chunk 2; [2,3) = r0 decode + r1 chunk 2; [3,4) = r1's last token
    # + r2's 2 tokens: both first tokens at 4 (shortest-first gave r2 its first token at 2).
    assert ft[1] == 4.0 and ft[2] == 4.0


def test_slai_noncritical_decodes_wait_for_prefill():
    # Long TBT (100 s): decodes are never critical, so a waiting prompt takes the budget first.
    # r0 decoding; r1 (prompt 4) arrives at 0.5; budget 4 -> round [1,2) is r1's whole prompt, no decode.
    w = workload([0.0, 0.5], [1, 4], [5, 1])
    res = _run("slai", w, params=(("token_budget", 4), ("time_between_tokens_s", 100.0)))
    tl = res.timeline
    row = tl[tl.time_s == 1.0].iloc[0]
    assert row.prefill_tokens == 4 and row.decode_tokens == 0
    # with the default 0.2 s TBT the decode is critical and goes first: 1 decode + 3 prefill tokens
    res2 = _run("slai", w, params=(("token_budget", 4),))
    row2 = res2.timeline[res2.timeline.time_s == 1.0].iloc[0]
    assert row2.prefill_tokens == 3 and row2.decode_tokens == 1
