"""Small cost models and workload builders shared by the simulator tests (the cost models and the
fast-equals-step comparison are public API in `llmsched.testing`, re-exported here)."""

from __future__ import annotations

import numpy as np

from llmsched.sim.workload.core import Workload
from llmsched.testing import LinearCost, UnitCost, assert_same_run, fast_equals_step

__all__ = ["LinearCost", "UnitCost", "assert_same_run", "fast_equals_step", "workload"]


def workload(arrivals, prompts, outputs, clients=None, **kw) -> Workload:
    n = len(arrivals)
    return Workload(
        arrival_s=np.asarray(arrivals, dtype=float),
        client=np.zeros(n, dtype=int) if clients is None else np.asarray(clients),
        prompt_tokens=np.asarray(prompts),
        output_tokens=np.asarray(outputs),
        **kw,
    )


class PrefillFacts:
    """A stand-in for an instance view that answers only the two prefill questions Preble's local
    queue asks: cached prefix tokens and remaining prefill tokens, per request id."""

    def __init__(self, cached: dict[int, int], total: dict[int, int]) -> None:
        self.cached, self.total = cached, total

    def remaining_prefill(self, rid: int) -> int:
        return self.total[rid]

    def cached_prefix_tokens(self, rid: int) -> int:
        return self.cached[rid]
