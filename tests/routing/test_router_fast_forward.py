"""Fast-forward == step for the cluster routers with non-default parameters that the generic
property test (tests/sim/test_fast_forward.py, defaults only) does not reach: short ticks, eviction
delays, tiny trees, early rebalancing, auto-scaling, preemption notices, re-parallelization (start-up holds, KV-keeping moves, restarts)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from tests.sim.helpers import fast_equals_step
from tests.sim.strategies import cost_models, workloads

PARAMS = {
    "d2lpm": [{"quantum": 64.0, "eviction_delay_s": 0.3}, {"quantum": 1e9}],
    "sglang-router": [{"max_tree_size": 32, "eviction_interval_s": 0.1, "balance_abs_threshold": 1}],
    "preble": [{"warmup_per_instance": 0, "window_s": 1.0}],
    "llumnix": [{"migrate_out_threshold": 30.0, "migration_interval_s": 0.03},
                {"autoscale": True, "scaling_interval_s": 0.2, "scale_up_threshold": 1e9, "instance_startup_s": 0.1},
                {"autoscale": True, "scaling_interval_s": 0.2, "scale_down_threshold": 0.0, "initial_instances": 3}],
    "deepflow-published": [{"balance_abs_threshold": 0.0, "balance_rel_threshold": 1.0}],
    "weighted-scorer": [{"prefix_source": "exact", "kv_weight": 5.0}],
    "spot": [{"inner": "sglang-router", "preemptions_per_hour": 3600.0, "grace_s": 0.2, "down_s": 0.5,
              "tick_interval_s": 0.05},
             {"inner": "llumnix", "notices": [[0, 0.1], [1, 0.4]], "grace_s": 0.1, "migrate": True,
              "tick_interval_s": 0.05}],
    # SpotServe's re-parallelization on trace Bs squeezed into 5 s (events at 0.6-4.8 s), fast loading
    "spotserve": [{"system": x, "trace": "Bs", "time_scale": 0.005, "load_Bps": 2e12, "link_Bps": 1e12,
                   "tick_interval_s": 0.05} for x in ("spotserve", "reparallelization", "rerouting")],
}


def _instances(router: str, params: dict) -> int:
    """Pool size: 3, or what a re-parallelization plan needs (one instance per replica id)."""
    if router != "spotserve":
        return 3
    from llmsched.policies.routing.spot import SpotServe

    return SpotServe(**params).n_replicas


@st.composite
def scenarios(draw):
    w = draw(workloads(max_requests=24))
    router = draw(st.sampled_from(sorted(PARAMS)))
    params = draw(st.sampled_from(PARAMS[router]))
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    cap = -(-(biggest + draw(st.sampled_from([16, 200, 2000]))) // 16) * 16
    spec = InstanceSpec(block_size=16, kv_capacity_tokens=cap, count=_instances(router, params),
                        batching=draw(st.sampled_from(["sarathi", "dlpm", "preble-mpq", "vllm"])),
                        token_budget=draw(st.sampled_from([16, 128])), max_batch_requests=draw(st.sampled_from([2, 8])))
    cluster = ClusterSpec(instances=(spec,), router=router, router_params=freeze_params(params),
                          kv_link_bandwidth_Bps=1e8)
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


def _check(scenario):
    w, cluster, cost, seed = scenario
    fast, step = fast_equals_step(w, cluster, cost, seed)
    assert fast.summary.get("router") == step.summary.get("router")


@settings(max_examples=15, deadline=None)
@given(scenarios())
def test_routers_fast_forward_equals_step(scenario):
    _check(scenario)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_routers_fast_forward_equals_step_many(scenario):
    _check(scenario)
