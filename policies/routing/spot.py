"""Preemptible instances as a router wrapper (mechanics in `llmsched.sim.spot`): any registered router
decides; the wrapper hides doomed and dead instances from its choices and drives preemption
notices, grace-period migration and restarts at its ticks.
"""

from __future__ import annotations

import math

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import Param, declare, flag, mapping, number, one_of, text
from llmsched.sim.policy_api import ActingClusterView, ClusterView
from llmsched.sim.spot import (
    DEFAULT_GRACE_S,
    SPOTSERVE_TRACES,
    Notice,
    SpotController,
    poisson_notices,
    spotserve_trace,
)


@register(ROUTING, "spot")
class Spot:
    """SpotServe-style preemptible instances around `inner` (default round-robin): Poisson
    preemption notices (rate per instance-hour) or an explicit list, a grace period in which
    decoding requests live-migrate away (migrate=True) and waiting ones move, then the instance
    goes down for down_s (inf = for good) and everything left on it restarts elsewhere.

    A choice of the inner router that is not live goes to the next live instance (cyclic).
    Notices are acted on at the wrapper's ticks (tick_interval_s, default 0.5 s).
    trace="As" | "Bs": replay SpotServe's node-availability trace instead (instance j = node j;
    nodes not yet added are down; a "remove" is the notice), `sim.spot.SPOTSERVE_TRACES`;
    trace_removals=False keeps the joins and drops the preemptions (an ablation).
    """

    PARAMS = declare(inner=text(doc="a registered router other than spot"), inner_params=mapping(),
              preemptions_per_hour=number(0), notices=Param("list", doc="(instance, time s) pairs"),
              grace_s=number(0), down_s=number(0, finite=False), migrate=flag(),
              horizon_s=number(0, low_open=True), tick_interval_s=number(0, low_open=True),
              trace=one_of("", *sorted(SPOTSERVE_TRACES)), trace_removals=flag())

    def __init__(self, rng: np.random.Generator, inner: str = "round-robin", inner_params=None,
                 preemptions_per_hour: float = 0.0, notices=(), grace_s: float = DEFAULT_GRACE_S,
                 down_s: float = math.inf, migrate: bool = True, horizon_s: float = 86400.0,
                 tick_interval_s: float = 0.5, trace: str = "", trace_removals: bool = True) -> None:
        if inner == "spot":
            raise ValueError("spot cannot wrap itself")
        params = dict(inner_params or {})
        from llmsched.sim.run import make_policy

        self.inner = make_policy(ROUTING, inner, params, rng=rng, source="spot.inner")
        self.rng = rng
        self.rate = float(preemptions_per_hour)
        self.explicit = [Notice(int(j), float(t)) for j, t in notices]
        self.horizon_s = float(horizon_s)
        self.trace = trace
        self.trace_removals = bool(trace_removals)
        self._grace_s, self._down_s, self._migrate = grace_s, down_s, migrate
        self.ctl: SpotController | None = None
        inner_tick = getattr(self.inner, "tick_interval_s", None)
        self.tick_interval_s = float(tick_interval_s) if not inner_tick else min(float(tick_interval_s), float(inner_tick))
        self._inner_tick = float(inner_tick) if inner_tick else None
        self._inner_next: float | None = None

    def _setup(self, view: ClusterView) -> None:
        if self.trace:
            tr = spotserve_trace(self.trace)
            if tr.n_slots > view.n_instances:
                raise ValueError(f"trace {self.trace} needs {tr.n_slots} instances, the pool has {view.n_instances}")
            down = tuple(j for j in range(view.n_instances) if j not in tr.initially_up)
            notices = list(tr.notices) if self.trace_removals else []
            self.ctl = SpotController(notices, grace_s=self._grace_s, down_s=self._down_s,
                                      migrate=self._migrate, adds=tr.adds, initially_down=down)
            return
        notices = self.explicit or poisson_notices(self.rng, view.n_instances, self.rate, self.horizon_s)
        self.ctl = SpotController(notices, grace_s=self._grace_s, down_s=self._down_s, migrate=self._migrate)

    def _controller(self, view: ClusterView) -> SpotController:
        """The preemption controller, made at the first route or tick (it needs the pool size)."""
        if self.ctl is None:
            self._setup(view)
        assert self.ctl is not None
        return self.ctl

    def _live(self, ctl: SpotController, j: int, view: ClusterView) -> int:
        n = view.n_instances
        for k in range(n):
            x = (j + k) % n
            if ctl.live(x):
                return x
        return j

    def route(self, rid: int, view: ClusterView) -> int:
        ctl = self._controller(view)
        return self._live(ctl, self.inner.route(rid, view), view)

    def tick(self, view: ActingClusterView) -> None:
        self._controller(view).step(view, self.route)
        if self._inner_tick:
            if self._inner_next is None:
                self._inner_next = view.now
            if view.now >= self._inner_next:
                self._inner_next = view.now + self._inner_tick
                self.inner.tick(view)

    def stats(self) -> dict:
        out = dict(self.ctl.stats) if self.ctl else {}
        inner = getattr(self.inner, "stats", None)
        if callable(inner):
            out["inner"] = inner()
        return out
