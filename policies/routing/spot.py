"""Preemptible instances as a router wrapper (mechanics in `llmsched.sim.spot`): any registered router
decides; the wrapper hides doomed and dead instances from its choices and drives preemption
notices, grace-period migration and restarts at its ticks.
"""

from __future__ import annotations

import math

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.errors import InputError
from llmsched.sim.params import Param, declare, flag, integer, mapping, number, one_of, text
from llmsched.sim.policy_api import ActingClusterView, ClusterView
from llmsched.sim.reparallel import (
    NODE_LINK_BPS,
    STORAGE_LOAD_BPS,
    SYSTEMS,
    ReparallelController,
    Setup,
    plan_transitions,
    replica_groups,
)
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
    trace="As" | "Bs" | "As+o" | "Bs+o" | "node3" ...: replay SpotServe's node-availability trace instead (instance j = node j;
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


@register(ROUTING, "spotserve")
class SpotServe:
    """SpotServe and its baselines on a node-availability trace (`llmsched.sim.reparallel`):
    system="spotserve" (dynamic re-parallelization, device mapper, stateful recovery),
    "reparallelization" (re-plan on every change, restart everything from storage, KV lost) or
    "rerouting" (fixed tp x pp, preempted pipelines dropped and their requests rerouted, new pipelines
    loaded from storage). Instance j of the pool is replica id j of the plan (the experiment sizes the
    pool with `reparallel.replica_groups`). Requests go to the active replica with the fewest requests,
    ready replicas first (the artifact's API server dispatches to ready replicas only).
    time_scale (tests only) multiplies the trace's times and the grace period.
    """

    PARAMS = declare(
        system=one_of(*SYSTEMS), trace=one_of(*sorted(SPOTSERVE_TRACES)),
        model=text(doc="a catalogue model"), gpu=text(doc="a catalogue GPU"),
        gpus_per_node=integer(1), min_gpus=integer(1), batch=integer(1), prompt_tokens=integer(1),
        output_tokens=integer(2), required_rps=number(0, low_open=True, doc="req/s"),
        grace_s=number(0, doc="s"), match=flag(), overlap=flag(), stateful=flag(),
        link_Bps=number(0, low_open=True, doc="bytes/s"), load_Bps=number(0, low_open=True, doc="bytes/s"),
        tick_interval_s=number(0, low_open=True), time_scale=number(0, low_open=True))

    def __init__(self, system: str = "spotserve", trace: str = "As",
                 model: str = "spotserve-6.7b", gpu: str = "t4-fp32", gpus_per_node: int = 4, min_gpus: int = 4,
                 batch: int = 4, prompt_tokens: int = 512, output_tokens: int = 128, required_rps: float = 2.0,
                 grace_s: float = DEFAULT_GRACE_S, match: bool = True, overlap: bool = True, stateful: bool = True,
                 link_Bps: float = NODE_LINK_BPS, load_Bps: float = STORAGE_LOAD_BPS,
                 tick_interval_s: float = 0.1, time_scale: float = 1.0) -> None:
        self.setup = Setup(model, gpu, int(gpus_per_node), int(min_gpus), int(batch), int(prompt_tokens),
                           int(output_tokens), float(required_rps), float(grace_s) * time_scale, match=bool(match),
                           overlap=bool(overlap), stateful=bool(stateful), link_Bps=float(link_Bps), load_Bps=float(load_Bps))
        tr = spotserve_trace(trace)
        k = float(time_scale)  # tests: the trace's times (and the grace period) scaled by this factor
        self.init, self.transitions = plan_transitions(system, self.setup, tr.initially_up,
                                                       [(t * k, j) for t, j in tr.adds],
                                                       [(n.time_s * k, n.instance) for n in tr.notices])
        self.n_replicas = len(replica_groups(self.init, self.transitions))
        self.ctl = ReparallelController(self.init, self.transitions)
        self.tick_interval_s = float(tick_interval_s)

    def route(self, _rid: int, view: ClusterView) -> int:
        if view.n_instances < self.n_replicas:
            raise InputError("spotserve router", "cluster.instances",
                             f"the plan needs {self.n_replicas} instances (one per replica id), the pool has "
                             f"{view.n_instances}", "size the pool with llmsched.sim.reparallel.replica_groups, "
                             "as experiments/reproductions/spot.py spotserve_cluster does")
        act = sorted(self.ctl.active)
        ready = [j for j in act if view.ready_at(j) <= view.now] or act

        def load(j: int) -> tuple[int, int]:
            s = view.instance(j)
            return (s.waiting_count + s.running_count, j)

        return min(ready, key=load)

    def tick(self, view: ActingClusterView) -> None:
        self.ctl.step(view)

    def stats(self) -> dict:
        tr = self.transitions
        return dict(self.ctl.stats) | {"transitions": len(tr), "weights_s": sum(t.weights_s for t in tr),
                                       "moved_weight_bytes": sum(t.moved_bytes for t in tr),
                                       "storage_loads": sum(t.from_storage for t in tr)}
