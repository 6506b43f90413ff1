"""Preble's fcfs-mpq with `rotate` (the artifact's fork: one priority group per step, visited
round-robin from group 9 down to 0, `model_rpc.py` l. 470-493, 790-801): hand-derived orders, the
turn moving only after an admitting step, and fast-forward == step mode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching.preble_mpq import PrebleMPQ
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.policy_api import Plan
from tests.sim.helpers import PrefillFacts, fast_equals_step
from tests.sim.strategies import cost_models, workloads

# hit ratios 0, 0.01, 0.11, 1.0, 0.95, 0.5 -> groups 0, 0, 1, 9, 9, 4 (ceil(10 x hit) - 1)
VIEW = PrefillFacts({0: 0, 1: 1, 2: 11, 3: 100, 4: 95, 5: 50}, {i: 100 for i in range(6)})


def test_rotate_serves_one_group_per_step_from_nine_down():
    p = PrebleMPQ(k=1, rotate=True)
    # turn at 9: group 9 alone (quota 10), FCFS
    assert p.order(VIEW, list(range(6))) == [3, 4]
    # as if that step admitted: the turn moves to 8; 8-5 are empty, so group 4 (quota 5)
    p.turn = (p.picked - 1) % 10
    assert p.order(VIEW, list(range(6))) == [5]
    p.turn = (p.picked - 1) % 10
    assert p.order(VIEW, list(range(6))) == [2]  # group 1
    p.turn = (p.picked - 1) % 10
    assert p.order(VIEW, list(range(6))) == [0]  # group 0, quota k = 1: the first cold request
    p.turn = (p.picked - 1) % 10
    assert p.order(VIEW, list(range(6))) == [3, 4]  # wraps to 9
    # negative control: without rotate every group is offered each step, highest first
    assert PrebleMPQ(k=1).order(VIEW, list(range(6))) == [3, 4, 5, 2, 0]


def test_turn_moves_only_after_a_step_that_admitted(monkeypatch):
    p = PrebleMPQ(k=1, rotate=True)
    admitted: list[int] = []

    def fake_plan(self, view):  # the parent's admission loop, reduced to "admit the order or nothing"
        return Plan(admit=list(admitted) and self.order(view, list(range(6))))

    monkeypatch.setattr("llmsched.policies.batching.lpm._Ordered.plan", fake_plan)
    p.plan(VIEW)  # nothing admitted: still group 9's turn
    assert p.turn == 9
    admitted.append(1)
    assert p.plan(VIEW).admit == [3, 4]
    assert p.turn == 8


@st.composite
def scenarios(draw):
    w = draw(workloads(max_requests=24))
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    cap = -(-(biggest + draw(st.sampled_from([16, 200, 2000]))) // 16) * 16
    spec = InstanceSpec(block_size=16, kv_capacity_tokens=cap, count=2, batching="preble-mpq",
                        batching_params=freeze_params({"rotate": True, "k": draw(st.sampled_from([1, 10]))}),
                        token_budget=draw(st.sampled_from([16, 128])), max_batch_requests=draw(st.sampled_from([2, 8])))
    router = draw(st.sampled_from(["preble", "round-robin"]))
    return w, ClusterSpec(instances=(spec,), router=router), draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=20, deadline=None)
@given(scenarios())
def test_rotate_fast_forward_equals_step(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)
