"""Baseline routers: round-robin, uniform random, least outstanding tokens, power of two choices.

Each maps one arriving request to an instance of the pool it is shown; ties go to the lowest
index, so every router is deterministic given its random stream.
"""

from __future__ import annotations

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "round-robin")
class RoundRobin:
    """Instances in turn, ignoring their state."""

    PARAMS = declare()

    def __init__(self) -> None:
        self._next = 0

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        i = self._next % view.n_instances
        self._next = i + 1
        return i


@register(ROUTING, "random")
class Random:
    """A uniformly random instance (from the run's seeded stream)."""

    PARAMS = declare()

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        return int(self.rng.integers(view.n_instances))


@register(ROUTING, "least-outstanding-tokens")
class LeastOutstandingTokens:
    """The instance with the fewest outstanding tokens (remaining prefill + decode of its requests)."""

    PARAMS = declare()

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        loads = [view.instance(i).outstanding_tokens for i in range(view.n_instances)]
        return int(np.argmin(loads))


@register(ROUTING, "power-of-two")
class PowerOfTwo:
    """Two distinct instances at random; the one with fewer outstanding tokens (Mitzenmacher 2001)."""

    PARAMS = declare()

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        n = view.n_instances
        if n == 1:
            return 0
        a, b = (int(x) for x in self.rng.choice(n, size=2, replace=False))
        la, lb = view.instance(a).outstanding_tokens, view.instance(b).outstanding_tokens
        return a if (la, a) <= (lb, b) else b
