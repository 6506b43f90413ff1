"""Llumnix (Sun et al., OSDI'24, arXiv 2406.03243; `AlibabaPAI/llumnix`, constants per
notes/throughput_placement.md §6 and ../shared/reference/llumnix): virtual usage and freeness
F = (M − ΣV)/B, dispatch to the freest instance, periodic migration pairing the least-free with
the freest instances (migrate out when F < 3) by multi-stage live migration, priority headroom,
and auto-scaling out/in at average F < 10 / > 60.

Owns only its decisions (which instances are active, draining or starting, and the migration
pairs); the migration mechanics are the engine's (`ClusterView.migrate_live`).
"""

from __future__ import annotations

import math

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, flag, integer, number
from llmsched.sim.policy_api import ActingClusterView, ClusterView

MIGRATE_OUT_THRESHOLD = 3.0  # --migrate-out-threshold 3.0 (llumnix/arg_utils.py @37d8e5ea)
SCALE_UP_THRESHOLD = 10.0  # --scale-up-threshold 10 (ibid.)
SCALE_DOWN_THRESHOLD = 60.0  # --scale-down-threshold 60 (ibid.)
SCALING_INTERVAL_S = 10.0  # --scaling-interval 10 (ibid.)
MIGRATION_INTERVAL_S = 0.2  # poll 0.05 s x need_migrate_frequency 4 (artifact configs)
MAX_STAGES = 3  # migration_coordinator.py: at most 3 stages
LAST_STAGE_MAX_BLOCKS = 4  # initial release (16 on main)
HIGH_PRIORITY_TARGET_TOKENS = 1600  # osdi24ae vllm/instance_info.py: "target 2k tokens load", 1600/16 blocks


def _blocks(tokens: int, bs: int) -> int:
    return -(-int(tokens) // bs)


@register(ROUTING, "llumnix")
class Llumnix:
    """Llumnix: dispatch to max freeness F = (M − ΣV)/B; every migration_interval_s pair
    instances with F < migrate_out_threshold (least free first) with the freest ones and
    live-migrate one request per pair (the shortest normal-priority one; any request when draining)
    with destination blocks reserved before each stage (aborted if the destination has no room,
    and, as in Llumnix's coordinator, if `max_stages` stages do not reach the last one);
    auto-scale on the average F.

    Virtual usage V: a running request's KV blocks; the head-of-line waiting request's demand
    (migration freeness) or every waiting request's (dispatch freeness), as the code's two load
    metrics; plus a headroom for high priority (priority > 0): M − target/block_size blocks
    (artifact: keep such instances at a 1,600-token load); ∞ on an instance being scaled in.
    migration: False gives the load-balancing dispatcher without migration (INFaaS++-like).
    autoscale: start with `initial_instances` (default min_instances) active; scale out when avg
    F < 10, in when > 60 (checked every 10 s); a new instance serves after instance_startup_s.
    """

    PARAMS = declare(migration=flag(), migrate_out_threshold=number(doc="freeness, blocks per request"),
              migration_interval_s=number(0, low_open=True), max_stages=integer(1),
              last_stage_max_blocks=integer(0), abort_after_max_stages=flag(),
              high_priority_target_tokens=integer(0), autoscale=flag(),
              scale_up_threshold=number(), scale_down_threshold=number(),
              scaling_interval_s=number(0, low_open=True), min_instances=integer(1),
              initial_instances=integer(1, optional=True), instance_startup_s=number(0))

    def __init__(self, migration: bool = True, migrate_out_threshold: float = MIGRATE_OUT_THRESHOLD,
                 migration_interval_s: float = MIGRATION_INTERVAL_S, max_stages: int = MAX_STAGES,
                 last_stage_max_blocks: int = LAST_STAGE_MAX_BLOCKS, abort_after_max_stages: bool = True,
                 high_priority_target_tokens: int = HIGH_PRIORITY_TARGET_TOKENS,
                 autoscale: bool = False, scale_up_threshold: float = SCALE_UP_THRESHOLD,
                 scale_down_threshold: float = SCALE_DOWN_THRESHOLD,
                 scaling_interval_s: float = SCALING_INTERVAL_S, min_instances: int = 1,
                 initial_instances: int | None = None, instance_startup_s: float = 0.0) -> None:
        self.migration = bool(migration)
        self.threshold = float(migrate_out_threshold)
        self.max_stages = int(max_stages)
        self.last_max = int(last_stage_max_blocks)
        self.abort_after_max_stages = bool(abort_after_max_stages)
        self.hp_target = int(high_priority_target_tokens)
        self.autoscale = bool(autoscale)
        self.up = float(scale_up_threshold)
        self.down = float(scale_down_threshold)
        self.scaling_interval_s = float(scaling_interval_s)
        self.min_instances = int(min_instances)
        self.initial = initial_instances
        self.startup_s = float(instance_startup_s)
        self.tick_interval_s = float(migration_interval_s) if (migration or autoscale) else None
        self.active: list[bool] = []  # per pool instance; filled at the first route or tick
        self.terminating: set[int] = set()
        self.starting: dict[int, float] = {}
        self._next_scale = 0.0
        self._last_t = 0.0  # set with `active`
        self.instance_seconds = 0.0
        self.counts = {"migrations": 0, "scale_out": 0, "scale_in": 0}

    # ------------------------------------------------------------------ freeness
    def _setup(self, view: ClusterView) -> None:
        n = view.n_instances
        k = n if not self.autoscale else (self.initial or self.min_instances)
        self.active = [j < k for j in range(n)]
        self._next_scale = view.now + self.scaling_interval_s
        self._last_t = view.now

    def virtual_usage(self, view: ClusterView, j: int, waiting: str) -> tuple[float, int]:
        """(Σ V in blocks, B) of instance j; waiting = "head" (migration) or "all" (dispatch)."""
        s = view.instance(j)
        if j in self.terminating:
            return math.inf, max(s.running_count, 1)
        bs = s.block_size
        used = s.kv_blocks_total - s.kv_blocks_available
        queue = list(s.ready) + list(s.waiting)
        pending = 0
        for rid in (queue[:1] if waiting == "head" else queue):
            pending += _blocks(view.prompt_tokens(rid) + view.generated_tokens(rid), bs)
        headroom = 0
        if any(view.priority(r) > 0 for r in (*s.running, *queue)):
            headroom = max(s.kv_blocks_total - self.hp_target // bs, 0)
        b = s.running_count + (len(queue) if waiting == "all" else int(bool(queue)))
        return used + pending + headroom, max(b, 1)

    def freeness(self, view: ClusterView, j: int, waiting: str = "head") -> float:
        v, b = self.virtual_usage(view, j, waiting)
        return (view.instance(j).kv_blocks_total - v) / b

    def serving(self, j: int) -> bool:
        return self.active[j] and j not in self.terminating and j not in self.starting

    # ------------------------------------------------------------------ dispatch
    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; dispatch ignores the request
        if not self.active:
            self._setup(view)
        cand = [j for j in range(view.n_instances) if self.serving(j)] or list(range(view.n_instances))
        return max(cand, key=lambda j: (self.freeness(view, j, "all"), -j))

    # ------------------------------------------------------------------ periodic work
    def tick(self, view: ActingClusterView) -> None:
        if not self.active:
            self._setup(view)
        now = view.now
        self.instance_seconds += sum(self.active) * (now - self._last_t)
        self._last_t = now
        for j, t in list(self.starting.items()):
            if now >= t:
                del self.starting[j]
        if self.migration or self.terminating:
            self.migrate(view)
        if self.autoscale:
            self._drain(view)
            if now >= self._next_scale:
                self._next_scale = now + self.scaling_interval_s
                self.scale(view)

    def migrate(self, view: ActingClusterView) -> None:
        """Pair sources (F < threshold or terminating; least free first) with destinations
        (F ≥ threshold; freest first) and move one request per pair when it narrows the gap."""
        n = view.n_instances
        up = [j for j in range(n) if self.active[j] and j not in self.starting]
        f = {j: self.freeness(view, j) for j in up}
        src = sorted((j for j in up if f[j] < self.threshold or j in self.terminating), key=lambda j: (f[j], j))
        dst = sorted((j for j in up if f[j] >= self.threshold and j not in self.terminating),
                     key=lambda j: (-f[j], j))
        for s, d in zip(src, dst, strict=False):
            cands = list(view.instance(s).decoding)
            if s not in self.terminating:  # headroom exists to keep high-priority requests where they are
                cands = [r for r in cands if view.priority(r) <= 0]
            if not cands:
                continue
            rid = min(cands, key=lambda r: (view.priority(r), view.kv_tokens(r), r))
            if s not in self.terminating and not self._narrows(view, s, d, rid, f):
                continue
            if view.migrate_live(rid, d, self.max_stages, self.last_max, self.abort_after_max_stages):
                self.counts["migrations"] += 1

    def _narrows(self, view: ClusterView, s: int, d: int, rid: int, f: dict[int, float]) -> bool:
        """Balanced pairing (llumnix migration_policy.py): accept if 0 < load(src') − load(dst')
        < load(src) − load(dst), load = −F, and the destination stays at F ≥ threshold."""
        bs = view.instance(s).block_size
        b = _blocks(view.kv_tokens(rid), bs)
        vs, ns = self.virtual_usage(view, s, "head")
        vd, nd = self.virtual_usage(view, d, "head")
        ms, md = view.instance(s).kv_blocks_total, view.instance(d).kv_blocks_total
        fs2 = (ms - vs + b) / max(ns - 1, 1)
        fd2 = (md - vd - b) / (nd + 1) if view.instance(d).running_count else (md - vd - b)
        if fd2 < self.threshold:
            return False
        return 0 < fd2 - fs2 < f[d] - f[s]

    def scale(self, view: ClusterView) -> None:
        serving = [j for j in range(view.n_instances) if self.serving(j)]
        if not serving:
            return
        avg = sum(self.freeness(view, j, "all") for j in serving) / len(serving)
        idle = [j for j in range(view.n_instances) if not self.active[j]]
        if avg < self.up and idle:
            j = idle[0]
            self.active[j] = True
            if self.startup_s > 0:
                self.starting[j] = view.now + self.startup_s
            self.counts["scale_out"] += 1
        elif avg > self.down and len(serving) > self.min_instances:
            j = min(serving, key=lambda x: (view.instance(x).running_count, -x))
            self.terminating.add(j)
            self.counts["scale_in"] += 1

    def _drain(self, view: ActingClusterView) -> None:
        """A terminating instance re-dispatches its waiting requests (no KV yet) and is switched
        off once empty; its running requests leave by migration (∞ virtual usage)."""
        for j in sorted(self.terminating):
            s = view.instance(j)
            for rid in s.waiting:
                dst = self.route(rid, view)
                if dst != j:
                    view.restart(rid, dst)
            if not (s.waiting or s.ready or s.running_count):
                self.terminating.discard(j)
                self.active[j] = False

    def stats(self) -> dict:
        return {**self.counts, "instance_seconds": self.instance_seconds,
                "active_at_end": int(sum(self.active)) if self.active else 0}
