"""Router / global-scheduler decision latency (`llmsched.sim.router_latency`, the router queue in
`llmsched.sim.engine`): hand-derived delivery times, bypass when off, fast == step, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.router_latency import RouterLatency
from llmsched.sim.run import simulate
from tests.sim.helpers import UnitCost, assert_same_run, fast_equals_step, workload
from tests.sim.strategies import cost_models, workloads


def _cluster(n: int, **params) -> ClusterSpec:
    spec = InstanceSpec(block_size=16, kv_capacity_tokens=4096, count=n, batching="sarathi",
                        token_budget=512, max_batch_requests=8)
    return ClusterSpec(instances=(spec,), router="preble", router_params=freeze_params(params))


def _prefixed(arrivals, blocks_each: int = 2):
    """Requests with distinct prompts of `blocks_each` 16-token blocks each (no sharing)."""
    n = len(arrivals)
    values = np.arange(1, n * blocks_each + 1, dtype=np.int64)
    offsets = np.arange(0, n * blocks_each + 1, blocks_each, dtype=np.int64)
    return workload(arrivals, [16 * blocks_each] * n, [1] * n, hash_offsets=offsets, hash_values=values,
                    hash_block_tokens=16)


def test_cost_formula():
    lat = RouterLatency(base_s=0.3, per_instance_s=0.1, per_tree_node_s=0.01)
    assert lat.cost_s(2, 5) == pytest.approx(0.3 + 0.2 + 0.05)
    assert not RouterLatency().active
    with pytest.raises(ValueError):
        RouterLatency(base_s=-1.0)


def test_decisions_are_serialised_with_instance_term():
    # cost = 0.3 + 0.1 x 2 instances = 0.5 s per decision, one global scheduler (FIFO):
    # r0 (t=0)   decided [0.0, 0.5] -> reaches its instance at 0.5
    # r1 (t=0)   waits, decided [0.5, 1.0] -> 1.0
    # r2 (t=0.1) waits, decided [1.0, 1.5] -> 1.5
    # Preble explores (no prefixes): r0 -> 0 (tie, lowest index), r1 -> 1 (0 is loaded), r2 -> 0
    # (equal window loads, lowest index); instance 0 finished r0 (one 1 s iteration from 0.5) at
    # 1.5, before r2's delivery event (instance wake-ups come first at equal times): so every
    # request is admitted the moment it is delivered.
    w = workload([0.0, 0.0, 0.1], [8, 8, 8], [1, 1, 1])
    res = simulate(w, _cluster(2, decision_base_s=0.3, decision_per_instance_s=0.1),
                   cost_models=lambda s: UnitCost())
    r = res.requests
    assert r["instance"].tolist() == [0, 1, 0]
    assert r["dispatch_s"].tolist() == pytest.approx([0.5, 1.0, 1.5], abs=1e-12)
    assert r["first_token_s"].tolist() == pytest.approx([1.5, 2.0, 2.5], abs=1e-12)


def test_cost_grows_with_tree_size():
    # per_tree_node_s = 0.1, each request adds 2 distinct blocks to Preble's global tree, and the
    # cost is read after the decision's own insertion: 2, 4, 6 nodes -> 0.2, 0.4, 0.6 s.
    # r0 [0, 0.2] -> 0.2; r1 [0.2, 0.6] -> 0.6; r2 (t=0.1) [0.6, 1.2] -> 1.2. Three instances, so
    # each request is explored to an idle instance (loads 0, then 1 loaded, then 2 loaded).
    w = _prefixed([0.0, 0.0, 0.1])
    res = simulate(w, _cluster(3, decision_per_tree_node_s=0.1), cost_models=lambda s: UnitCost())
    r = res.requests
    assert sorted(r["instance"].tolist()) == [0, 1, 2]
    assert r["dispatch_s"].tolist() == pytest.approx([0.2, 0.6, 1.2], abs=1e-12)


def test_zero_latency_is_the_instant_router():
    # negative control for the bypass: explicit zeros give the same run as the defaults, and a
    # tiny positive latency does not (so the test can fail)
    w = _prefixed([0.0, 0.05, 0.1, 0.4, 0.41], blocks_each=3)
    cost = lambda s: UnitCost()  # noqa: E731
    base = simulate(w, _cluster(2), cost_models=cost)
    zero = simulate(w, _cluster(2, decision_base_s=0.0, decision_per_tree_node_s=0.0), cost_models=cost)
    assert_same_run(base, zero)
    slow = simulate(w, _cluster(2, decision_base_s=1e-3), cost_models=cost)
    assert not np.array_equal(base.requests["dispatch_s"].to_numpy(), slow.requests["dispatch_s"].to_numpy())


def test_pinned_requests_bypass_the_router_queue():
    # a pinned request never goes through the global scheduler: admitted at its arrival
    w = workload([0.0, 0.0], [8, 8], [1, 1], pin_instance=np.array([-1, 1]))
    res = simulate(w, _cluster(2, decision_base_s=0.5), cost_models=lambda s: UnitCost())
    assert res.requests["dispatch_s"].tolist() == pytest.approx([0.5, 0.0], abs=1e-12)


@st.composite
def scenarios(draw):
    w = draw(workloads(max_requests=20))
    params = draw(st.sampled_from([
        {"decision_base_s": 0.05},
        {"decision_base_s": 0.001, "decision_per_instance_s": 0.01},
        {"decision_per_tree_node_s": 0.002, "eviction_cost": True, "capacity_eviction": True},
        {"decision_base_s": 0.2, "eviction_cost": True, "warmup_per_instance": 0, "window_s": 1.0},
    ]))
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    cap = -(-(biggest + draw(st.sampled_from([16, 200, 2000]))) // 16) * 16
    spec = InstanceSpec(block_size=16, kv_capacity_tokens=cap, count=draw(st.sampled_from([1, 3])),
                        batching=draw(st.sampled_from(["sarathi", "preble-mpq", "vllm"])),
                        token_budget=draw(st.sampled_from([16, 128])), max_batch_requests=draw(st.sampled_from([2, 8])))
    cluster = ClusterSpec(instances=(spec,), router="preble", router_params=freeze_params(params))
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


def _check(scenario):
    w, cluster, cost, seed = scenario
    fast, step = fast_equals_step(w, cluster, cost, seed)
    assert fast.summary.get("router") == step.summary.get("router")
    r = fast.requests
    done = r[r["finish_s"].notna()]
    # invariants: every non-rejected request finishes once with all its tokens, never before it
    # could have been routed, and the clock is monotone per request
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    assert (done["dispatch_s"] >= done["arrival_s"]).all()
    assert (done["first_token_s"] > done["dispatch_s"]).all()
    assert (done["finish_s"] >= done["first_token_s"]).all()
    assert len(done) + int(fast.summary["num_rejected"]) == len(r)


@settings(max_examples=15, deadline=None)
@given(scenarios())
def test_fast_forward_equals_step_with_router_latency(scenario):
    _check(scenario)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_fast_forward_equals_step_with_router_latency_many(scenario):
    _check(scenario)
