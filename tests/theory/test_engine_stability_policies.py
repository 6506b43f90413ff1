"""RAD and SLAI on the engine: fast-forward == step for both (with non-default parameters too),
RAD's tile-aligned budget derived from the cost model, and SLAI's four-stage order on hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching.rad import tile_plan
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost import StaircaseCost
from llmsched.sim.run import simulate
from tests.sim.helpers import LinearCost, UnitCost, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads

SLAI_PARAMS = [
    (),
    (("token_budget", 64), ("limit_total_decodes", 3), ("time_between_tokens_s", 0.05)),
    (("fcfs", True), ("fixed_offset", True), ("below_memory_limit_offset", 0.5)),
    (("user_priority", True), ("memory_limit", 0.2), ("max_active_requests", 4)),
]


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
    # staircases give RAD several tile ends (the clock-dependent MaxWeight path)
    cost = draw(st.one_of(cost_models(), st.sampled_from([StaircaseCost(c=0.01, a=0.03, b0=16),
                                                            StaircaseCost(c=0.002, a=0.05, b0=4)])))
    return w, cluster, cost, draw(st.integers(0, 3))


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_rad_slai_fast_equals_step(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)


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


class RecordingStaircase:
    """StaircaseCost that records every single iteration's (prefill, decode) tokens (step mode)."""

    def __init__(self, **kw):
        self.inner = StaircaseCost(**kw)
        self.name = "recording"
        self.rounds: list[tuple[int, int]] = []

    def iteration_times(self, shape):
        if len(shape) == 1:
            self.rounds.append((int(shape.prefill_tokens[0]), int(shape.decode_tokens[0])))
        return self.inner.iteration_times(shape)


def _mixed_prefills(policy, w):
    cost = RecordingStaircase(c=0.01, a=0.03, b0=128)
    cl = ClusterSpec(instances=(InstanceSpec(batching=policy, token_budget=512, max_batch_requests=10**6,
                                             kv_capacity_tokens=10**7),))
    simulate(w, cl, mode="step", cost_models=lambda s: cost)
    return [p for p, d in cost.rounds if p > 0 and d == 3]


@pytest.mark.parametrize("output,prompt,expected", [
    # Staircase c=0.01, a=0.03, b0=128: t(128)=0.04, t(256)=0.07, t(384)=0.10, t(512)=0.13 s. Three
    # 1-token prompts start at 0 and decode in 0.04-s rounds; at 0.52 (first round end after the 0.5-s
    # arrival) each has generated 13 tokens. Score of tile end T: (Q_p·p + Q_d·3)/t(p + 3).
    # Decode-heavy (output 2000, Q_d = 3·1987 = 5961; prompt 200): T=128 -> (200·125 + 17883)/0.04
    # = 1.07e6 beats T>=256 -> (200·200 + 17883)/0.07 = 8.3e5, so 125 then the last 75 tokens.
    (2000, 200, [125, 75]),
    # Prefill-heavy (output 50, Q_d = 111; prompt 2000): T=512 (509 tokens) -> 7.83e6 beats T=384
    # -> 7.62e6 and T=128 -> 6.26e6; again at Q_p = 1491 and 982; at Q_p = 473 T=384 (381 tokens)
    # -> 1.81e6 beats T=512 (473) -> 1.72e6; the last 92 fit in the first tile.
    (50, 2000, [509, 509, 509, 381, 92]),
])
def test_rad_backlog_weighted_tile_choice(output, prompt, expected):
    w = workload([0.0, 0.0, 0.0, 0.5], [1, 1, 1, prompt], [output, output, output, 1])
    assert _mixed_prefills("rad", w) == expected
    sarathi = _mixed_prefills("sarathi", w)  # control: always fills 512
    assert sarathi == ([200] if prompt == 200 else [509, 509, 509, 473])


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
