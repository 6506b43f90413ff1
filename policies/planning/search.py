"""Searches over parallelism configurations: exhaustive (ground truth), RRL (Qin et al., "Swift
Machine Learning Model Serving Scheduling: A Region Based Reinforcement Learning Approach", SC'19)
and Bayesian optimisation with optuna's TPE sampler (the model-based baseline).

RRL as published: Q-learning over configurations in which the measured performance of a
configuration also estimates the performance of similar, unmeasured configurations in its region,
so the agent can rank moves it has not measured; the paper reports near-optimal configurations
found over 8x faster than prior search. The paper's exact region shape, reward and stopping rule
are not in the material we could read (abstract and slides): the choices below are ours and are
listed in docs/policies.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from llmsched.policies.planning.base import Measurements, SearchResult, grid_coordinates
from llmsched.policies.registry import PLANNING, register
from llmsched.sim.parallelism import ParallelConfig
from llmsched.sim.params import declare, integer, number

Evaluate = Callable[[ParallelConfig], float]


@register(PLANNING, "exhaustive")
class Exhaustive:
    """Exhaustive search: measure every feasible configuration; the ground truth."""

    PARAMS = declare()

    def search(self, space: Sequence[ParallelConfig], evaluate: Evaluate) -> SearchResult:
        measure = Measurements(evaluate)
        for config in sorted(space):
            measure(config)
        return measure.result()


@register(PLANNING, "rrl")
class RegionRL:
    """RRL (SC'19): Q-learning over the configuration grid; each measurement also estimates the
    unmeasured configurations within `region_radius` grid steps, so moves are ranked before they
    are measured; stops after `patience` measurements without improvement.

    Our reconstruction (docs/policies.md): states are configurations, actions are moves to a grid
    neighbour (at most one doubling or halving of tp, pp and replicas each); the value of a configuration is its
    measured objective, else a local linear fit (in log2 coordinates, log objective, weights
    1/(1 + d)) of the measured ones within its region (their weighted mean below 4 points), else
    unknown (ranked first: optimism); reward = best so far / measured
    objective (1 for the best); epsilon-greedy on Q + value, ties at random; when every neighbour of the current
    state is measured, the agent jumps to the unmeasured configuration with the best estimate.
    The first state is the grid's centre.
    """

    PARAMS = declare(region_radius=number(0, doc="grid steps (doublings) a measurement estimates"),
                     learning_rate=number(0, 1, low_open=True), discount=number(0, 1),
                     epsilon=number(0, 1, doc="probability of a random move"),
                     patience=integer(1, doc="measurements without improvement before stopping"),
                     max_evaluations=integer(1, optional=True), seed=integer(0))

    def __init__(self, region_radius: float = 1.0, learning_rate: float = 0.5, discount: float = 0.9,
                 epsilon: float = 0.1, patience: int = 6, max_evaluations: int | None = None,
                 seed: int = 0) -> None:
        self.region_radius = float(region_radius)
        self.learning_rate = float(learning_rate)
        self.discount = float(discount)
        self.epsilon = float(epsilon)
        self.patience = int(patience)
        self.max_evaluations = max_evaluations
        self.seed = int(seed)

    def search(self, space: Sequence[ParallelConfig], evaluate: Evaluate) -> SearchResult:
        space = sorted(space)
        pos = grid_coordinates(space)
        rng = np.random.default_rng(self.seed)
        measure = Measurements(evaluate)
        budget = self.max_evaluations or len(space)
        q: dict[tuple[ParallelConfig, ParallelConfig], float] = {}

        def distance(a: ParallelConfig, b: ParallelConfig) -> float:
            return max(abs(x - y) for x, y in zip(pos[a], pos[b]))

        neighbours = {c: [n for n in space if n != c and distance(c, n) <= 1.0] for c in space}

        def estimate(c: ParallelConfig) -> float | None:
            """Measured value, else the region's local linear fit in log2 coordinates (weights
            1/(1 + d)), else its weighted mean when fewer than 4 points; None with no point."""
            if c in measure.values:
                return measure.values[c]
            near = [(m, v) for m, v in measure.values.items()
                    if distance(c, m) <= self.region_radius and math.isfinite(v) and v > 0]
            if not near:
                return None
            w = np.array([1.0 / (1 + distance(c, m)) for m, _ in near])
            y = np.log([v for _, v in near])
            if len(near) < 4:
                return float(np.exp(np.sum(w * y) / np.sum(w)))
            x = np.array([[1.0, *(a - b for a, b in zip(pos[m], pos[c]))] for m, _ in near])
            coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
            return float(np.exp(coef[0]))  # the fitted plane at c

        def score(state: ParallelConfig, nxt: ParallelConfig, best: float) -> float:
            est = estimate(nxt)
            value = 2.0 if est is None else (best / est if est > 0 else 1.0)  # optimism for the unknown
            return q.get((state, nxt), 0.0) + value

        centre = np.mean([pos[c] for c in space], axis=0)
        state = min(space, key=lambda c: (float(np.sum((np.array(pos[c]) - centre) ** 2)), c))
        best = measure(state)
        stale = 0
        for _ in range(10 * len(space)):
            if len(measure) >= budget or stale >= self.patience:
                break
            options = neighbours[state]
            if not options or all(n in measure.values for n in options):
                unmeasured = [c for c in space if c not in measure.values]
                if not unmeasured:
                    break
                options = [min(unmeasured, key=lambda c: (estimate(c) if estimate(c) is not None else -math.inf, c))]
            if rng.random() < self.epsilon:
                nxt = options[int(rng.integers(len(options)))]
            else:  # greedy on Q + value; ties broken at random (no bias toward any axis)
                scores = np.array([score(state, n, best) for n in options])
                top = np.flatnonzero(scores >= scores.max() - 1e-12)
                nxt = options[int(top[rng.integers(len(top))])]
            was_new = nxt not in measure.values
            value = measure(nxt)
            reward = best / value if value > 0 and math.isfinite(value) else 0.0
            future = max((q.get((nxt, n), 0.0) for n in neighbours[nxt]), default=0.0)
            old = q.get((state, nxt), 0.0)
            q[(state, nxt)] = old + self.learning_rate * (reward + self.discount * future - old)
            if value < best:
                best, stale = value, 0
            elif was_new:
                stale += 1
            state = nxt
        return measure.result()


@register(PLANNING, "bayes-opt")
class BayesOpt:
    """Bayesian optimisation with optuna's TPE sampler over (tp, pp, replicas): the model-based
    search baseline; infeasible suggestions cost nothing and score as the worst measurement."""

    PARAMS = declare(max_evaluations=integer(1, optional=True), startup_trials=integer(1), seed=integer(0))

    def __init__(self, max_evaluations: int | None = None, startup_trials: int = 4, seed: int = 0) -> None:
        self.max_evaluations = max_evaluations
        self.startup_trials = int(startup_trials)
        self.seed = int(seed)

    def search(self, space: Sequence[ParallelConfig], evaluate: Evaluate) -> SearchResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        feasible = set(space)
        tps = sorted({c.tp for c in space})
        pps = sorted({c.pp for c in space})
        reps = sorted({c.replicas for c in space})
        measure = Measurements(evaluate)
        budget = min(self.max_evaluations or len(feasible), len(feasible))
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.startup_trials)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for _ in range(50 * len(feasible)):
            if len(measure) >= budget:
                break
            trial = study.ask()
            c = ParallelConfig(trial.suggest_categorical("replicas", reps), trial.suggest_categorical("tp", tps),
                               trial.suggest_categorical("pp", pps))
            if c in feasible:
                study.tell(trial, measure(c))
            else:
                worst = max((v for v in measure.values.values() if math.isfinite(v)), default=1.0)
                study.tell(trial, 2.0 * worst)
        for c in sorted(feasible):  # the sampler never proposed the rest: measure in order to finish
            if len(measure) >= budget:
                break
            measure(c)
        return measure.result()
