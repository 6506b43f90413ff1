"""Exact fast-forward: the segment engine and the one-iteration-at-a-time reference agree on every
recorded number (per-request metrics, the service log and the timeline), bit for bit."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import registry
from sim.run import simulate
from tests.sim.strategies import clusters, cost_models, workloads

# Policies whose construction needs more than the defaults are exercised in their own tests.
NEEDS_SETUP: set[str] = set()


def _assert_same(a, b):
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.service, b.service, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)


@st.composite
def scenarios(draw):
    w = draw(workloads())
    batching = [n for n in registry.names(registry.BATCHING) if n not in NEEDS_SETUP]
    cluster = draw(clusters(w, batching, registry.names(registry.ROUTING)))
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=250)
@given(scenarios())
def test_fast_forward_equals_step(scenario):
    w, cluster, cost, seed = scenario
    fast = simulate(w, cluster, seed=seed, mode="fast", cost_models=lambda s: cost)
    step = simulate(w, cluster, seed=seed, mode="step", cost_models=lambda s: cost)
    _assert_same(fast, step)
