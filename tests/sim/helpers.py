"""Small cost models and workload builders shared by the simulator tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmsched.sim.cost.base import BatchShape
from llmsched.sim.workload.core import Workload


@dataclass(frozen=True)
class LinearCost:
    """a + b*prefill + c*decode + d*context (seconds); a test-only stand-in for sim.cost models."""

    name: str = "test-linear"
    a: float = 0.01
    b: float = 1e-4
    c: float = 2e-4
    d: float = 1e-7

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        ctx = s.decode_context_tokens + s.prefill_context_tokens
        return self.a + self.b * s.prefill_tokens + self.c * s.decode_tokens + self.d * ctx


@dataclass(frozen=True)
class UnitCost:
    """Every iteration takes one second: rounds are easy to read off the clock."""

    name: str = "unit"

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        return np.ones(len(s), dtype=np.float64)


def workload(arrivals, prompts, outputs, clients=None, **kw) -> Workload:
    n = len(arrivals)
    return Workload(
        arrival_s=np.asarray(arrivals, dtype=float),
        client=np.zeros(n, dtype=int) if clients is None else np.asarray(clients),
        prompt_tokens=np.asarray(prompts),
        output_tokens=np.asarray(outputs),
        **kw,
    )


def fast_equals_step(w, cluster, cost, seed: int = 0):
    """Run `w` on `cluster` in fast-forward and in step mode, assert the runs agree bit for bit, and
    return (fast, step)."""
    from llmsched.sim.run import simulate

    fast = simulate(w, cluster, seed=seed, mode="fast", cost_models=lambda s: cost)
    step = simulate(w, cluster, seed=seed, mode="step", cost_models=lambda s: cost)
    assert_same_run(fast, step)
    return fast, step


def assert_same_run(a, b) -> None:
    """Two RunResults agree on every recorded number, bit for bit."""
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.service, b.service, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)
