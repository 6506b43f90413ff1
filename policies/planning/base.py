"""What every planner returns, and the measurement bookkeeping they share: each distinct
configuration measured costs one evaluation; asking again is free (the cache)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmsched.sim.parallelism import ParallelConfig


@dataclass(frozen=True)
class SearchResult:
    """best: the best configuration measured; trace: every measurement in the order it was made."""

    best: ParallelConfig
    best_value: float
    trace: tuple[tuple[ParallelConfig, float], ...]

    @property
    def evaluations(self) -> int:
        return len(self.trace)

    def evaluations_to_reach(self, target: float) -> int | None:
        """Measurements made until one was <= target (None: never)."""
        for i, (_, v) in enumerate(self.trace, start=1):
            if v <= target:
                return i
        return None


class Measurements:
    """The evaluations a search made (objective: lower is better)."""

    def __init__(self, evaluate: Callable[[ParallelConfig], float]) -> None:
        self._evaluate = evaluate
        self.values: dict[ParallelConfig, float] = {}
        self.trace: list[tuple[ParallelConfig, float]] = []

    def __call__(self, config: ParallelConfig) -> float:
        if config not in self.values:
            value = float(self._evaluate(config))
            self.values[config] = value if math.isfinite(value) else math.inf
            self.trace.append((config, self.values[config]))
        return self.values[config]

    def __len__(self) -> int:
        return len(self.trace)

    def result(self) -> SearchResult:
        best, value = min(self.trace, key=lambda cv: (cv[1], cv[0]))
        return SearchResult(best, value, tuple(self.trace))


def grid_coordinates(space: Sequence[ParallelConfig]) -> dict[ParallelConfig, tuple[float, float, float]]:
    """Each configuration's position on the search grid: (log2 tp, log2 pp, log2 replicas), so one
    step doubles or halves a degree (R4-TP2 and R2-TP4 are neighbours: the same GPUs split the
    other way)."""
    return {c: (math.log2(c.tp), math.log2(c.pp), math.log2(c.replicas)) for c in space}
