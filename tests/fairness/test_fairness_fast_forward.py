"""The fairness policies with non-default parameters keep the engine's stability contract: fast
forward and step mode record identical runs (the default-parameter case is in tests/sim)."""

from __future__ import annotations

import pandas as pd
from fairness_sim import run_saved, scenarios
from hypothesis import given, settings
from hypothesis import strategies as st

VARIANTS = [
    ("vtc", {"admission": "reserve"}), ("vtc", {"admission": "peak"}), ("vtc", {"lift": "artifact"}),
    ("lcf", {"admission": "reserve"}), ("vtc-predict", {"admission": "reserve"}),
    ("vtc-oracle", {"rho": 0.5}), ("vtc-h", {"cost": "profiled", "admission": "peak"}),
    ("dlpm", {"quantum": 64.0}), ("dlpm", {"quantum": 8.0, "admission": "reserve"}),
    ("lpm", {"admission": "reserve"}), ("rpm", {"limit": 2, "window_s": 0.5}),
    ("fcfs", {"admission": "peak"}), ("vtc-weighted", {"admission": "reserve"}),
]


@settings(max_examples=120)
@given(scenarios(max_clients=5, prefixes=True), st.sampled_from(VARIANTS))
def test_fast_equals_step(sc, variant):
    name, params = variant
    _, fast = run_saved(sc, name, "fast", **params)
    _, step = run_saved(sc, name, "step", **params)
    for a, b in ((fast.requests, step.requests), (fast.service, step.service),
                 (fast.timeline, step.timeline)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
