"""The discrete-event loop of a cluster: arrivals, routing, instance wake-ups, KV transfers,
migrations and router ticks, on one heap of `(time, priority, key, seq, kind, payload)`.

The order of events is total and deterministic: at equal times, external arrivals come before
router ticks, which come before instance wake-ups, which come before events that the run itself
generated (KV transfers landing, child tasks released); ties are then broken by a stable key
(request id / instance index) and finally by the push counter. Events before the wake-ups see
each instance as it was just before `t` (iterations ending at `t` not yet applied); generated
events see it just after. Both views are the same in fast-forward and step mode.
Owns cluster-level mechanics only; per-instance mechanics live in `llmsched.sim.instance`, and
migration, restart and failure mechanics in `llmsched.sim.migration` (a mixin of the engine).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappop
from typing import Any, cast

import numpy as np

from llmsched.sim.encode import EncodeJob, EncodeServer, EncodeView
from llmsched.sim.event_kinds import (
    ARRIVE,
    EV_EMBEDDED,
    EV_ENCODED,
    EV_RELEASE,
    EV_ROUTED,
    EV_SLICE,
    EV_STAGE,
    EV_TICK,
    EV_TRANSFER,
    EV_UPLOADED,
    EV_WAKE,
    LATE,
    TICK,
    WAKE,
)
from llmsched.sim.events import PriorityQueue
from llmsched.sim.instance import Instance, ServiceFacts
from llmsched.sim.migration import Mobility
from llmsched.sim.policy_api import Router, TickingRouter
from llmsched.sim.router_latency import RouterLatency
from llmsched.sim.state import (
    REJECTED,
    TRANSFERRING,
    RequestFacts,
    RequestTable,
)


class InstanceStats(ServiceFacts):
    """What a router sees of one instance (synced to the current time on access)."""

    __slots__ = ("_inst",)

    def __init__(self, inst: Instance) -> None:
        self._inst = inst

    index = property(lambda self: self._inst.index)
    role = property(lambda self: self._inst.spec.role)
    spec = property(lambda self: self._inst.spec)
    cost_model = property(lambda self: self._inst.cost)
    waiting_count = property(lambda self: len(self._inst.waiting) + len(self._inst.ready) + len(self._inst.swapped))
    running_count = property(lambda self: self._inst.running_count)
    outstanding_tokens = property(lambda self: self._inst.outstanding_tokens)
    kv_blocks_available = property(lambda self: self._inst.pool.available_blocks)
    kv_blocks_used = property(lambda self: self._inst.pool.used_blocks)
    kv_blocks_total = property(lambda self: self._inst.pool.total_blocks)
    block_size = property(lambda self: self._inst.block_size)
    waiting = property(lambda self: tuple(self._inst.waiting))
    decoding = property(lambda self: tuple(self._inst.decoding))
    prefilling = property(lambda self: tuple(self._inst.prefilling))
    running = property(lambda self: tuple(self._inst.prefilling) + tuple(self._inst.decoding))
    ready = property(lambda self: tuple(self._inst.ready))

    def drain_evictions(self) -> list[tuple[int, ...]]:
        """Hash paths of prefix-cache nodes evicted since the previous call (recording starts
        at the first call; the order is the eviction order)."""
        tree = self._inst.tree
        if tree is None:
            return []
        log = tree.eviction_log
        tree.eviction_log = []
        return log or []

    def prefix_match_tokens(self, rid: int) -> int:
        inst = self._inst
        if inst.tree is None:
            return 0
        return len(inst.tree.match(inst.reqs.full_prompt_blocks(rid))) * inst.hash_block_tokens


class ClusterView(RequestFacts):
    """What a router sees: the instances of one pool, request attributes, and the migration hook."""

    def __init__(self, engine: Engine, pool: list[int]) -> None:
        self._engine = engine
        self.pool = pool
        self._stats = [InstanceStats(engine.instances[i]) for i in pool]
        self._index = {idx: j for j, idx in enumerate(pool)}
        self._reqs = engine.reqs
        self.now = 0.0

    @property
    def n_instances(self) -> int:
        return len(self.pool)

    def instance(self, j: int) -> InstanceStats:
        self._engine.sync(self._engine.instances[self.pool[j]])
        return self._stats[j]

    def migrate(self, rid: int, to_instance: int, downtime_s: float | None = None) -> bool:
        """Move a decoding request's KV to pool instance `to_instance` (see `Engine.migrate`)."""
        return self._engine.migrate(rid, self.pool[to_instance], downtime_s)

    # -- additions for cluster routers (policies/routing) ------------------------------------
    @property
    def hash_block_tokens(self) -> int:
        return int(self._engine.reqs.workload.hash_block_tokens)

    def kv_tokens(self, rid: int) -> int:
        """Tokens of `rid` whose KV is in memory now."""
        return int(self._engine.reqs.computed[rid])

    def charged(self, rid: int) -> bool:
        """Has the engine charged `rid`'s prompt to its client yet (at admission)?"""
        return bool(self._engine.reqs.charged[rid])

    def migrate_live(self, rid: int, to_instance: int, max_stages: int = 3,
                     last_stage_max_blocks: int = 4, abort_after_max_stages: bool = False) -> bool:
        """Multi-stage live migration (see `Engine.migrate_live`)."""
        return self._engine.migrate_live(rid, self.pool[to_instance], max_stages, last_stage_max_blocks,
                                         abort_after_max_stages)

    def restart(self, rid: int, to_instance: int) -> bool:
        """Drop `rid`'s KV and recompute it on `to_instance` (see `Engine.restart`)."""
        return self._engine.restart(rid, self.pool[to_instance])

    def set_down(self, j: int, down: bool) -> None:
        """Mark pool instance `j` down (KV arriving there is lost and re-routed) or back up."""
        self._engine.set_down(self.pool[j], down)

    def set_ready_at(self, j: int, t: float) -> None:
        """Pool instance `j` starts serving at time `t` (see `Engine.set_ready_at`)."""
        self._engine.set_ready_at(self.pool[j], t)

    def ready_at(self, j: int) -> float:
        """When pool instance `j` may start its next iteration (0 = no start-up pending)."""
        return self._engine.ready_at.get(self.pool[j], 0.0)


class Engine(Mobility):
    def __init__(
        self,
        reqs: RequestTable,
        instances: list[Instance],
        router: Router,
        decode_router: Router | None = None,
        link_bandwidth_Bps: float = 25e9,
        link_latency_s: float = 1e-5,
        kv_bytes_per_token: Callable[[Instance], float] | None = None,
        max_sim_time_s: float = math.inf,
        progress: Callable[[int], None] | None = None,
        max_context_tokens: float = math.inf,
        encoders: list[EncodeServer] | None = None,
        encode_router=None,
        request_bytes_per_token: float = 0.0,
    ) -> None:
        self.reqs = reqs
        self.instances = instances
        self.router = router
        self.decode_router = decode_router
        self.link_bandwidth_Bps = link_bandwidth_Bps
        self.link_latency_s = link_latency_s
        self.kv_bytes_per_token = kv_bytes_per_token or (lambda _inst: 0.0)
        self.max_sim_time_s = max_sim_time_s
        self.progress = progress
        self._events: PriorityQueue[tuple[str, Any]] = PriorityQueue()
        self.now = 0.0
        self._late = False  # processing an event generated at `now` (sees instances just after now)
        roles = {inst.spec.role for inst in instances}
        self.disaggregated = "prefill" in roles
        entry = [i.index for i in instances if i.spec.role in ("mixed", "prefill")]
        decode = [i.index for i in instances if i.spec.role == "decode"]
        self.entry_view = ClusterView(self, entry)
        self.decode_view = ClusterView(self, decode) if self.disaggregated else None
        for inst in instances:
            inst.on_prefilled = self._prefilled if self.disaggregated else None
            inst.on_slice_end = self._slice_ended
        parent = reqs.workload.parent
        self._roots = np.flatnonzero(parent < 0)
        self._children: dict[int, list[int]] = {}
        for child in np.flatnonzero(parent >= 0):
            self._children.setdefault(int(parent[child]), []).append(int(child))
        if self._children:
            for inst in instances:
                inst.on_finished = self._release_children
        # the largest request any entry instance could ever hold (else it is rejected)
        self._max_tokens = min(
            instances[i].pool.total_blocks * instances[i].block_size for i in entry
        )
        if self.disaggregated:
            self._max_tokens = min(
                self._max_tokens,
                *(instances[i].pool.total_blocks * instances[i].block_size for i in decode),
            )
        # the model's context length: a longer request (prompt + output) is rejected at arrival,
        # as a server rejects it, and counted in `rejected_context`
        self._max_context = max_context_tokens
        self.rejected_context = 0
        tick = getattr(router, "tick_interval_s", None)
        self._tick_s = float(tick) if tick else 0.0
        self.down: set[int] = set()  # instances marked down (sim/spot.py)
        self.ready_at: dict[int, float] = {}  # instance -> time before which it starts no iteration (start-up)
        self._live: set[int] = set()  # requests in a multi-stage live migration
        # router decision latency (sim/router_latency.py): one global scheduler, FIFO queue
        lat: RouterLatency | None = getattr(router, "decision_latency", None)
        self._decision = lat if lat is not None and lat.active else None
        self._route_queue: deque[int] = deque()
        self._deciding = False
        self.migration_counts = {"aborted_dst": 0, "aborted_src": 0}  # migrations that did not move
        self._between_slices = 0  # requests whose slice ended, not yet routed again
        # encode pool (EPD): encoder instances, the router that splits a request over them, and
        # per request the encode jobs whose embeddings have not reached the prefill side yet
        self.encoders = encoders or []
        self.encode_router = encode_router
        self.encode_view = EncodeView(self.encoders, reqs) if self.encoders else None
        self._encoding: dict[int, int] = {}
        self.request_bytes_per_token = request_bytes_per_token
        self._uploading = 0  # requests on an instance's uplink
        self._uplink_free_s = [0.0] * len(instances)  # each uplink carries one prompt at a time (FIFO)
        self._any_uplink = any(inst.spec.uplink_latency_s != 0 or inst.spec.uplink_bandwidth_Bps != math.inf
                               for inst in instances)
        self._arrivals_left = True  # whether root arrivals remain (ticks stop once none do and all is idle)
        self._handlers: dict[str, Callable[[Any], None]] = {  # one handler per event kind
            EV_WAKE: self._on_wake_event, EV_TRANSFER: self._on_transfer, EV_RELEASE: self._on_release,
            EV_STAGE: lambda stage: self._migration_stage(*stage),
            EV_ROUTED: lambda routed: self._deliver(*routed), EV_SLICE: self._on_slice_end,
            EV_ENCODED: self._encoded, EV_EMBEDDED: self._embedded, EV_TICK: self._on_tick,
            EV_UPLOADED: self._on_uploaded,
        }

    def sync(self, inst: Instance) -> None:
        inst.sync(self.now, inclusive=self._late)

    # ------------------------------------------------------------------ heap
    def _push(self, t: float, prio: int, key: int, kind: str, payload) -> None:
        self._events.push((t, prio, key), (kind, payload))

    def _wake(self, inst: Instance, t: float) -> None:
        inst.version += 1
        self._events.push((t, WAKE, inst.index), (EV_WAKE, (inst.index, inst.version)))  # _push inlined

    def _poke(self, inst: Instance) -> None:
        """Something changed at `inst`: re-plan after the iteration in flight (or now if idle)."""
        if inst.busy:
            end = inst.truncate_to_inflight()
            if end is not None:
                self._wake(inst, end)
        else:
            self._wake(inst, self.now)

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        reqs = self.reqs
        roots = self._roots.tolist()  # Python numbers: the loop compares and indexes them per event
        arrivals = reqs.arrival_s[self._roots].tolist()
        n = len(roots)
        i = 0
        heap = self._events.heap  # the loop peeks and pops the event queue's heap itself (hot path)
        handlers = self._handlers
        max_time = self.max_sim_time_s
        if self._tick_s > 0 and n:
            self._push(arrivals[0] + self._tick_s, TICK, -1, EV_TICK, None)
        while True:
            if i < n and (not heap or (arrivals[i], ARRIVE, roots[i]) < heap[0][0]):
                t = arrivals[i]
                if t > max_time:
                    break
                self.now = t
                self._late = False
                self._arrive(roots[i])
                i += 1
                continue
            if not heap:
                break
            (t, prio, _), _seq, (kind, payload) = heappop(heap)
            if t > max_time:
                break
            self.now = t
            self._late = prio == LATE
            self._arrivals_left = i < n
            handlers[kind](payload)

    # ------------------------------------------------------------------ event handlers, one per kind
    def _on_wake_event(self, payload: tuple[int, int]) -> None:
        """An instance's wake-up: its segment ends (unless a later wake superseded this one), and
        it plans and lays out the next."""
        idx, version = payload
        inst = self.instances[idx]
        if version != inst.version:
            return
        t = self.now
        inst.finish_segment()
        if inst.pending_migrations:
            self._do_migrations(inst, t)
        if self.ready_at:
            hold = self.ready_at.get(idx, 0.0)
            if t < hold:  # still starting up (loading weights): it serves from `hold` on
                self._wake(inst, hold)
                return
        end = inst.start_segment(t)
        if end is None:
            return
        self._wake(inst, -end if end < 0 else end)

    def _on_transfer(self, payload: tuple[int, int]) -> None:
        rid, dst = payload
        if dst in self.down:
            dst = self._reroute_lost(rid)
        inst = self.instances[dst]
        self.sync(inst)
        inst.arrive(rid, self.now)
        self._poke(inst)

    def _on_uploaded(self, payload: tuple[int, int]) -> None:
        self._uploading -= 1
        self._on_transfer(payload)

    def _book_upload_s(self, rid: int, inst: Instance) -> float:
        """Seconds from now until `rid`'s prompt, sent now, has crossed `inst`'s uplink (0 without
        one), and book the link: prompts cross one at a time in the order they are sent (a shared
        link: each waits for the ones before it), then travel the link's latency."""
        spec = inst.spec
        if spec.uplink_latency_s == 0 and spec.uplink_bandwidth_Bps == math.inf:
            return 0.0
        start = max(self.now, self._uplink_free_s[inst.index])
        sent = start + int(self.reqs.prompt[rid]) * self.request_bytes_per_token / spec.uplink_bandwidth_Bps
        self._uplink_free_s[inst.index] = sent
        return sent + spec.uplink_latency_s - self.now

    def _on_release(self, rid: int) -> None:
        self.reqs.arrival_s[rid] = self.now
        self._arrive(rid)

    def _on_slice_end(self, rid: int) -> None:
        self._between_slices -= 1
        self._route(rid)

    def _on_tick(self, _payload: None) -> None:
        self.entry_view.now = self.now
        # ticks are scheduled only for a router with a positive `tick_interval_s`
        cast(TickingRouter, self.router).tick(self.entry_view)
        if self._arrivals_left or self._busy():
            self._push(self.now + self._tick_s, TICK, -1, EV_TICK, None)

    def _busy(self) -> bool:
        return self._deciding or self._between_slices > 0 or self._uploading > 0 or bool(self._encoding) or any(inst.busy or inst.waiting or inst.ready or inst.swapped for inst in self.instances)

    def _arrive(self, rid: int) -> None:
        reqs = self.reqs
        tokens = reqs.prompt.item(rid) + reqs.output.item(rid)  # .item: Python ints (hot path)
        if tokens > self._max_context:
            self.rejected_context += 1
            self._reject(rid)
            return
        if tokens > self._max_tokens:
            self._reject(rid)
            return
        if self.encoders and reqs.workload.images[rid] > 0:
            self._encode(rid)
            return
        self._route(rid)

    # ------------------------------------------------------------------ encode pool (EPD)
    def _encode(self, rid: int) -> None:
        """Send `rid`'s images to the encode pool: the encode router splits its tiles into jobs,
        one per chosen encoder instance (several = intra-request parallelism)."""
        view = self.encode_view
        assert view is not None and self.encode_router is not None  # image requests come here only with a pool
        view.now = self.now
        tiles = view.tiles(rid)
        parts = [(int(j), int(k)) for j, k in self.encode_router.assign(rid, view)]
        if (not parts or sum(k for _, k in parts) != tiles or any(k < 1 for _, k in parts)
                or any(not 0 <= j < view.n_instances for j, _ in parts)):
            raise RuntimeError(f"encode router returned {parts} for request {rid}'s {tiles} tiles over "
                               f"{view.n_instances} encoders (want positive tiles summing to {tiles})")
        self._encoding[rid] = len(parts)
        for part, (j, k) in enumerate(parts):
            srv = self.encoders[j]
            srv.queue.append(EncodeJob(rid, k, part))
            end = srv.start(self.now)
            if end is not None:
                self._push(end, LATE, j, EV_ENCODED, j)

    def _encoded(self, j: int) -> None:
        """Encoder `j`'s batch ended: each job's embeddings leave for the prefill side over the
        cluster link (latency + bytes / bandwidth, as KV transfers), and the next batch starts."""
        srv = self.encoders[j]
        w = self.reqs.workload
        view = self.encode_view
        assert view is not None  # encoder batches exist only with a pool
        per_token = float(srv.cost.embedding_bytes_per_token)
        for job in srv.finish():
            tiles = view.tiles(job.rid)
            tokens = int(w.image_tokens[job.rid]) * job.tiles / tiles  # this job's share of the image tokens
            delay = self.link_latency_s + tokens * per_token / self.link_bandwidth_Bps
            self._push(self.now + delay, LATE, job.rid, EV_EMBEDDED, job.rid)
        end = srv.start(self.now)
        if end is not None:
            self._push(end, LATE, j, EV_ENCODED, j)

    def _embedded(self, rid: int) -> None:
        """One job's embeddings arrived; with the last of them the request goes to prefill."""
        left = self._encoding[rid] - 1
        if left:
            self._encoding[rid] = left
            return
        del self._encoding[rid]
        self.reqs.embedded[rid] = True
        self.reqs.embedded_s[rid] = self.now
        self._route(rid)

    def _slice_ended(self, rid: int, t: float) -> None:
        """An instance ended `rid`'s generation slice at `t`: the request goes back to the router
        (a generated event, so every instance is seen as it is just after `t`)."""
        self._between_slices += 1
        self._push(t, LATE, rid, EV_SLICE, rid)

    def _route(self, rid: int) -> None:
        """Place `rid` (arriving, or back from a generation slice) on an entry instance."""
        reqs = self.reqs
        view = self.entry_view
        view.now = self.now
        pin = reqs.workload.pin_instance.item(rid)
        if pin < 0 and self._decision is not None:
            self._route_queue.append(rid)
            if not self._deciding:
                self._decide_next()
            return
        j = pin if pin >= 0 else self.router.route(rid, view)
        self._deliver(rid, j)

    def _decide_next(self) -> None:
        """The global scheduler takes the head of its queue: it decides now (seeing the cluster as
        it is now) and the request reaches the chosen instance when the decision's cost is paid."""
        rid = self._route_queue.popleft()
        assert self._decision is not None  # requests queue for a decision only when it is costed
        view = self.entry_view
        view.now = self.now
        j = self.router.route(rid, view)
        nodes = getattr(self.router, "decision_state_nodes", None)
        cost = self._decision.cost_s(view.n_instances, int(nodes()) if callable(nodes) else 0)
        self._deciding = True
        self._push(self.now + cost, LATE, rid, EV_ROUTED, (rid, j, True))

    def _deliver(self, rid: int, j: int, decided: bool = False) -> None:
        view = self.entry_view
        if not (0 <= j < view.n_instances):
            raise RuntimeError(f"router returned instance {j}, outside 0..{view.n_instances - 1}")
        inst = self.instances[view.pool[j]]
        upload = self._book_upload_s(rid, inst) if self._any_uplink else 0.0
        if upload > 0:  # the prompt crosses the instance's uplink first
            self._uploading += 1
            self._push(self.now + upload, LATE, rid, EV_UPLOADED, (rid, inst.index))
        else:
            inst.sync(self.now, self._late)
            inst.arrive(rid, self.now)
            self._poke(inst)
        if self.progress is not None:
            self.progress(rid)
        if decided:  # the global scheduler is free again: its next decision starts now
            self._deciding = False
            if self._route_queue:
                self._decide_next()

    def _reject(self, rid: int) -> None:
        """A request that can never fit is rejected, and so are the tasks it would release."""
        self.reqs.state[rid] = REJECTED
        for child in self._children.get(rid, ()):
            self._reject(child)

    def _release_children(self, rid: int, t: float) -> None:
        for child in self._children.get(rid, ()):
            self._push(t, LATE, child, EV_RELEASE, child)

    # ------------------------------------------------------------------ disaggregation / migration
    def transfer_time_s(self, inst: Instance, kv_tokens: int) -> float:
        """Seconds to send `kv_tokens` tokens of `inst`'s KV over the cluster link."""
        return self.link_latency_s + kv_tokens * self.kv_bytes_per_token(inst) / self.link_bandwidth_Bps

    def _prefilled(self, rid: int, src: int, t: float) -> None:
        """A prefill-pool instance produced the first token: ship the KV to a decode instance."""
        reqs = self.reqs
        view = self.decode_view
        assert view is not None  # _prefilled is wired to the instances only when disaggregated
        view.now = t
        router = self.decode_router or self.router
        j = router.route(rid, view)
        dst = view.pool[j]
        reqs.kv_ready[rid] = True
        reqs.state[rid] = TRANSFERRING
        kv_tokens = int(reqs.computed[rid])
        self._push(t + self.transfer_time_s(self.instances[src], kv_tokens), LATE, rid,
                   EV_TRANSFER, (rid, dst))

