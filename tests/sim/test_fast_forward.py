"""Exact fast-forward: the segment engine and the one-iteration-at-a-time reference agree on every
recorded number (per-request metrics, the service log and the timeline), bit for bit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies import registry
from llmsched.sim.run import simulate
from tests.sim.helpers import assert_same_run as _assert_same
from tests.sim.helpers import fast_equals_step
from tests.sim.strategies import clusters, cost_models, workloads

# Policies whose construction needs more than the defaults are exercised in their own tests:
# spotserve needs a pool sized to its re-parallelization plan (tests/routing/test_reparallel.py,
# test_router_fast_forward.py).
NEEDS_SETUP: set[str] = {"spotserve"}


@st.composite
def scenarios(draw):
    w = draw(workloads())
    batching = [n for n in registry.names(registry.BATCHING) if n not in NEEDS_SETUP]
    cluster = draw(clusters(w, batching, [n for n in registry.names(registry.ROUTING) if n not in NEEDS_SETUP]))
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=250)
@given(scenarios())
def test_fast_forward_equals_step(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)


@settings(max_examples=30)
@given(st.sampled_from([("roofline", "llama-2-7b", "a100-80gb", 1), ("roofline", "llama-2-70b", "a100-80gb", 4),
                        ("roofline", "mistral-7b", "l4", 1), ("staircase:0.01128,0.03547,128", "codellama-34b", "a100-80gb", 2)]),
       workloads(max_requests=16, prefixes=False), st.sampled_from(["sarathi", "orca", "vllm"]))
def test_fast_equals_step_with_catalogue_cost_models(cost_spec, w, batching):
    """The catalogue's cost models (with their scalar fast paths) keep fast == step exact."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec
    from llmsched.sim.cost import build

    spec_str, model, gpu, tp = cost_spec
    cost = build(spec_str, model, gpu, tp)
    cluster = ClusterSpec(instances=(InstanceSpec(model=model, gpu=gpu, tp=tp, batching=batching, count=2,
                                                  kv_capacity_tokens=2048),), router="least-outstanding-tokens")
    fast = simulate(w, cluster, mode="fast", cost_models=lambda s: cost)
    step = simulate(w, cluster, mode="step", cost_models=lambda s: cost)
    _assert_same(fast, step)
