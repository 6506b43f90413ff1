"""Preemptible (spot) instances, after SpotServe (Miao et al., ASPLOS'24): an instance gets a
preemption notice, keeps serving for a grace period, then goes down (optionally coming back
later). During the grace period its decoding requests may live-migrate away (the destination reserves
their blocks first; a refused migration is tried again at the next tick); whatever is still
there at the end restarts elsewhere (KV lost, recomputed). No request is ever lost.

Also replays SpotServe's node-availability traces (nodes join and get preempted over time).
Owns the preemption schedule and the grace/kill/restore mechanics, acting only through the
`ClusterView` hooks (`migrate_live`, `restart`, `set_down`); routing choices stay with the wrapped router.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmsched.sim.policy_api import ActingClusterView, InstanceStats

# Notice lengths of the clouds SpotServe targets: 30 s (GCP preemptible / Azure spot eviction
# notice); AWS spot gives 2 minutes. SpotServe §2 discusses both; we default to the shorter.
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Notice:
    instance: int  # pool index
    time_s: float  # when the notice arrives


# SpotServe's AWS availability traces of g4dn.12xlarge spot nodes (Hsword/SpotServe, Apache-2.0,
# elastic-switch/trace/trace_seg/; As = trace_0304_real.txt @0a6812a, Bs = trace_0506_real.txt
# @9c68c46, chosen by scripts_ae/aws_e2e.sh): (time_s, "add" | "remove", node ids), and the end.
SPOTSERVE_TRACES: dict[str, tuple[tuple[tuple[float, str, tuple[int, ...]], ...], float]] = {
    "As": (((0.0, "add", (0, 1, 2, 3, 4, 5, 6)), (240.0, "add", (7,)), (360.0, "add", (8, 9)),
            (600.0, "remove", (8,)), (900.0, "add", (10,)), (1200.0, "remove", (3, 10))), 1320.0),
    "Bs": (((0.0, "add", (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)), (120.0, "remove", (4, 8)), (240.0, "remove", (0,)),
            (720.0, "add", (10,)), (960.0, "add", (11,))), 1020.0),
    # spot plus on-demand nodes (trace_0304_ondemand.txt, trace_0506_ondemand.txt @832b29f; "As+o", "Bs+o")
    "As+o": (((0.0, "add", (0, 1, 2, 3, 4, 5, 6)), (120.0, "add", (7, 8, 9)), (600.0, "remove", (8,)),
              (690.0, "add", (10,)), (1200.0, "remove", (0, 7)), (1290.0, "add", (11, 12))), 1380.0),
    "Bs+o": (((0.0, "add", (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)), (120.0, "remove", (4, 8)), (210.0, "add", (10, 11)),
              (240.0, "remove", (0,)), (330.0, "add", (12,))), 720.0),
    # on-demand only: n fixed nodes for 1,020 s (trace_0506_node{3,4,6,8}.txt, run by scripts_ae/aws_ondemand.sh)
    **{f"node{n}": (((0.0, "add", tuple(range(n))),), 1020.0) for n in (3, 4, 6, 8)},
}


@dataclass(frozen=True)
class AvailabilityTrace:
    """Node slots, the ones up at 0, later additions (time, slot) and preemption notices."""

    n_slots: int
    initially_up: tuple[int, ...]
    adds: tuple[tuple[float, int], ...]
    notices: tuple[Notice, ...]
    end_s: float

    def node_seconds(self, grace_s: float) -> float:
        """Node-seconds paid over [0, end]: each node from its addition to its kill (notice +
        grace) or the end."""
        start = {j: 0.0 for j in self.initially_up} | {j: t for t, j in self.adds}
        stop = {n.instance: min(n.time_s + grace_s, self.end_s) for n in self.notices}
        return sum(stop.get(j, self.end_s) - t for j, t in start.items())


def spotserve_trace(name: str) -> AvailabilityTrace:
    """One of SpotServe's availability traces. A "remove" is read as the preemption notice (the
    node serves through the grace period, then goes); our reading, the trace files do not say."""
    events, end = SPOTSERVE_TRACES[name]
    up = tuple(j for t, kind, nodes in events if t == 0.0 and kind == "add" for j in nodes)
    adds = tuple((t, j) for t, kind, nodes in events if t > 0.0 and kind == "add" for j in nodes)
    notices = tuple(Notice(j, t) for t, kind, nodes in events if kind == "remove" for j in nodes)
    n = 1 + max(j for _, _, nodes in events for j in nodes)
    return AvailabilityTrace(n, up, adds, notices, end)


def poisson_notices(rng: np.random.Generator, n_instances: int, rate_per_hour: float,
                    horizon_s: float) -> list[Notice]:
    """Independent Poisson notices per instance (rate per instance-hour) up to `horizon_s`."""
    out: list[Notice] = []
    if rate_per_hour <= 0:
        return out
    lam = rate_per_hour / 3600.0
    for j in range(n_instances):
        t = 0.0
        while True:
            t += float(rng.exponential(1.0 / lam))
            if t > horizon_s:
                break
            out.append(Notice(j, t))
    out.sort(key=lambda x: (x.time_s, x.instance))
    return out


class SpotController:
    """Drives notices at each tick: mark doomed → (migrate) → kill at notice + grace → restore.

    At least one instance always stays up: a notice that would take down the last live
    instance is ignored (counted in `stats["ignored"]`)."""

    def __init__(self, notices: list[Notice], grace_s: float = DEFAULT_GRACE_S, down_s: float = math.inf,
                 migrate: bool = True, max_stages: int = 3, last_stage_max_blocks: int = 4,
                 adds: tuple[tuple[float, int], ...] = (), initially_down: tuple[int, ...] = ()) -> None:
        if grace_s < 0 or down_s <= 0:
            raise ValueError("grace_s must be >= 0 and down_s > 0")
        self.notices = sorted(notices, key=lambda x: (x.time_s, x.instance))
        self.grace_s = float(grace_s)
        self.down_s = float(down_s)
        self.migrate = bool(migrate)
        self.max_stages = max_stages
        self.last_max = last_stage_max_blocks
        self._next = 0
        self.doomed: dict[int, float] = {}  # instance -> kill time
        self.dead: dict[int, float] = {j: math.inf for j in initially_down}  # instance -> restore time
        self.adds = sorted((float(t), int(j)) for t, j in adds)  # (time, instance) that come up
        self._next_add = 0
        self._initial_down = tuple(initially_down)
        self._moving: set[int] = set()  # requests a migration was started for
        self.stats = {"notices": 0, "ignored": 0, "kills": 0, "migrations": 0, "restarts": 0,
                      "lost_kv_tokens": 0, "restores": 0, "adds": 0}

    def live(self, j: int) -> bool:
        return j not in self.doomed and j not in self.dead

    def step(self, view: ActingClusterView, reroute: Callable[[int, ActingClusterView], int]) -> None:
        """Apply everything due at `view.now`; `reroute(rid, view)` picks a live instance."""
        now = view.now
        self._bring_up(view, now)
        self._take_notices(now, view.n_instances)
        for j, kill in sorted(self.doomed.items()):
            s = view.instance(j)
            if now >= kill:
                self._kill(view, s, j, kill, reroute)
            elif self.migrate:
                self._evacuate(view, s, reroute)

    def _bring_up(self, view: ActingClusterView, now: float) -> None:
        """Slots of nodes not yet joined go down once; nodes that join or whose down time ended come up."""
        for j in self._initial_down:  # slots of nodes that have not joined yet
            view.set_down(j, True)
        self._initial_down = ()
        while self._next_add < len(self.adds) and self.adds[self._next_add][0] <= now:
            j = self.adds[self._next_add][1]
            self._next_add += 1
            if self.dead.pop(j, None) is not None:
                view.set_down(j, False)
                self.stats["adds"] += 1
        for j, t in list(self.dead.items()):
            if now >= t:
                del self.dead[j]
                view.set_down(j, False)
                self.stats["restores"] += 1

    def _take_notices(self, now: float, n: int) -> None:
        """Notices due by `now` doom their live instance (unless it is the last live one)."""
        while self._next < len(self.notices) and self.notices[self._next].time_s <= now:
            note = self.notices[self._next]
            self._next += 1
            j = note.instance
            if j >= n or not self.live(j):
                continue
            if sum(self.live(x) for x in range(n)) <= 1:
                self.stats["ignored"] += 1
                continue
            self.doomed[j] = note.time_s + self.grace_s
            self.stats["notices"] += 1

    def _kill(self, view: ActingClusterView, s: InstanceStats, j: int, kill: float,
              reroute: Callable[[int, ActingClusterView], int]) -> None:
        """The grace period of instance j (`s`) ended: it goes down and every request on it restarts elsewhere."""
        del self.doomed[j]
        self.dead[j] = kill + self.down_s
        view.set_down(j, True)
        self.stats["kills"] += 1
        for rid in (*s.waiting, *s.ready, *s.running):
            self.stats["lost_kv_tokens"] += view.kv_tokens(rid) if rid not in s.waiting else 0
            if view.restart(rid, reroute(rid, view)):
                self.stats["restarts"] += 1

    def _evacuate(self, view: ActingClusterView, s: InstanceStats,
                  reroute: Callable[[int, ActingClusterView], int]) -> None:
        """During the grace period of instance `s`: waiting requests move now, decoding ones live-migrate."""
        for rid in s.waiting:  # no KV yet: move now, nothing is lost
            view.restart(rid, reroute(rid, view))
        for rid in s.decoding:
            if rid in self._moving:
                continue
            # a destination without room refuses (nothing reserved): retried next tick
            if view.migrate_live(rid, reroute(rid, view), self.max_stages, self.last_max):
                self._moving.add(rid)
                self.stats["migrations"] += 1
