"""Migration, restart and failure mechanics of the cluster: stop-and-copy and Llumnix-style live
migration with destination reservation, restarts that drop KV, instances going down or starting
later, and the pending moves an instance carries out at the end of its iteration in flight.

A mixin of `llmsched.sim.engine.Engine`: the engine owns the clock, the event heap, the instances
and the link (`transfer_time_s`); this module owns what moving a request between instances does to
them. Nothing here runs on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmsched.sim.event_kinds import EV_STAGE, EV_TRANSFER, LATE, RESTART
from llmsched.sim.state import DECODING, DONE, PENDING, REJECTED, TRANSFERRING, RequestTable

if TYPE_CHECKING:
    from llmsched.sim.instance import Instance
    from llmsched.sim.policy_api import Router



class Mobility:
    """Requests moving between instances, and instances failing (see the module docstring)."""

    reqs: RequestTable
    instances: list[Instance]
    down: set[int]
    ready_at: dict[int, float]
    migration_counts: dict[str, int]
    router: Router
    entry_view: Any
    now: float
    _live: set[int]

    if TYPE_CHECKING:
        def sync(self, inst: Instance) -> None: ...
        def _poke(self, inst: Instance) -> None: ...
        def _push(self, t: float, prio: int, key: int, kind: str, payload: Any) -> None: ...
        def transfer_time_s(self, inst: Instance, kv_tokens: int) -> float: ...

    def migrate(self, rid: int, dst: int, downtime_s: float | None = None) -> bool:
        """Request a stop-and-copy migration of decoding request `rid` to instance `dst`.

        The destination first reserves the blocks of the request's KV (plus the token of the
        iteration in flight); if it cannot, nothing happens and False is returned. Otherwise the
        move takes effect at the end of the source's iteration in flight; the request stops
        decoding for `downtime_s` (default: the whole KV over the link) and resumes on `dst` in
        its reserved blocks. Returns False if the request is not decoding or is already moving.
        """
        reqs = self.reqs
        src_idx = int(reqs.instance[rid])
        if (src_idx < 0 or src_idx == dst or reqs.state[rid] != DECODING or dst in self.down
                or rid in self._live):
            return False
        src = self.instances[src_idx]
        if rid not in src.decoding or any(m[0] == rid for m in src.pending_migrations):
            return False
        self.sync(src)
        if not self._reserve(rid, dst, -(-(int(reqs.computed[rid]) + 1) // src.block_size)):
            self.migration_counts["aborted_dst"] += 1
            return False
        src.pending_migrations.append((rid, dst, downtime_s, 0))
        self._poke(src)
        return True

    def migrate_live(self, rid: int, dst: int, max_stages: int = 3, last_stage_max_blocks: int = 4,
                     abort_after_max_stages: bool = False) -> bool:
        """Llumnix-style multi-stage live migration of decoding request `rid` to instance `dst`.

        Before each stage the destination reserves that stage's blocks (Llumnix's
        `migrate_in_pre_alloc`, AlibabaPAI/llumnix llumnix/llumlet/migration_coordinator.py
        @c490017); if it cannot, the migration aborts: the request keeps running on the source
        and every block reserved for it is freed. A live stage copies the whole blocks written
        since the previous stage while the request keeps decoding. When the uncopied rest is at
        most `last_stage_max_blocks` blocks (the partly written block included), the last stage
        reserves the rest plus the token of the iteration in flight, stops the request at the end
        of that iteration, and its downtime is the transfer of the rest only. After
        `max_stages` stages without reaching that point, the migration is forced into its last
        stage, or aborted if `abort_after_max_stages` (Llumnix: "exceed max stages" ->
        ABORTED_SRC; we abort at the decision instead of after one more copy). It also aborts
        when the request finishes, is preempted or moved meanwhile, or an end goes down.
        Returns False if the request is not decoding, is already moving, or the first
        reservation fails.
        """
        reqs = self.reqs
        src_idx = int(reqs.instance[rid])
        if src_idx < 0 or src_idx == dst or reqs.state[rid] != DECODING or dst in self.down:
            return False
        src = self.instances[src_idx]
        if rid not in src.decoding or any(m[0] == rid for m in src.pending_migrations):
            return False
        if rid in self._live:
            return False
        self.sync(src)
        self._live.add(rid)
        return self._next_stage(rid, src, dst, 0, 0, max_stages, last_stage_max_blocks, abort_after_max_stages)

    def _next_stage(self, rid, src, dst, copied, stage, max_stages, last_max, abort) -> bool:
        """Decide the next step of a live migration after `stage` live stages: the last stage,
        another live stage, or an abort. Returns False if the migration was aborted."""
        bs = src.block_size
        computed = int(self.reqs.computed[rid])
        last = -(-(computed - copied) // bs) <= last_max
        if not last and stage >= max_stages:
            if abort:
                self._abort_migration(rid, "aborted_src")
                return False
            last = True
        if last:
            need = -(-(computed + 1) // bs) - self.instances[dst].reserved.get(rid, 0)
            if not self._reserve(rid, dst, need):
                self._abort_migration(rid, "aborted_dst")
                return False
            self._live.discard(rid)
            src.pending_migrations.append((rid, dst, None, copied))
            self._poke(src)
            return True
        upto = max((computed // bs) * bs, copied)  # the block being written stays behind
        if not self._reserve(rid, dst, (upto - copied) // bs):
            self._abort_migration(rid, "aborted_dst")
            return False
        delay = self.transfer_time_s(src, upto - copied)
        self._push(self.now + delay, LATE, rid, EV_STAGE,
                   (rid, src.index, dst, upto, stage + 1, max_stages, last_max, abort))
        return True

    def _migration_stage(self, rid, src_idx, dst, copied, stage, max_stages, last_max, abort) -> None:
        reqs = self.reqs
        src = self.instances[src_idx]
        if (reqs.state[rid] != DECODING or int(reqs.instance[rid]) != src_idx or rid not in src.decoding
                or dst in self.down or src_idx in self.down
                or any(m[0] == rid for m in src.pending_migrations)):
            self._abort_migration(rid, "aborted_src")
            return  # aborted: finished, preempted, someone else moved it, or an end went down
        self.sync(src)
        self._next_stage(rid, src, dst, copied, stage, max_stages, last_max, abort)

    def _reserve(self, rid: int, dst: int, blocks: int) -> bool:
        """Reserve `blocks` KV blocks on `dst` for migrating request `rid` (see
        `Instance.reserve_for_migration`); `dst` re-plans after its iteration in flight."""
        inst = self.instances[dst]
        if dst in self.down:
            return False
        self.sync(inst)
        if not inst.reserve_for_migration(rid, blocks):
            return False
        if blocks > 0:
            self._poke(inst)
        return True

    def _unreserve(self, rid: int) -> None:
        """Free the blocks reserved anywhere for `rid`'s migration (none: no-op)."""
        for inst in self.instances:
            if rid in inst.reserved:
                self.sync(inst)
                if inst.release_reservation(rid):
                    self._poke(inst)

    def _abort_migration(self, rid: int, why: str) -> None:
        """A migration ends without moving the request: it stays where it is, reservation freed."""
        self._live.discard(rid)
        self._unreserve(rid)
        self.migration_counts[why] += 1

    def restart(self, rid: int, dst: int) -> bool:
        """Move request `rid` to instance `dst`, dropping its KV: it is recomputed there (prompt
        plus the tokens generated so far; a running request counts one preemption). A waiting
        request moves now; a running one at the end of its instance's iteration in flight.
        Returns False if the request is not on an instance (finished, pending, in transfer)."""
        reqs = self.reqs
        src_idx = int(reqs.instance[rid])
        if src_idx < 0 or reqs.state[rid] in (DONE, REJECTED, TRANSFERRING, PENDING):
            return False
        src = self.instances[src_idx]
        self.sync(src)
        if rid in src.waiting or rid in src.ready or rid in src.swapped:
            if rid in src.waiting:
                src.take_waiting(rid)
            elif rid in src.ready:
                src.take_ready(rid)
            else:
                src.take_swapped(rid)
            src.log.change_point(src, self.now)
            self._poke(src)
            dst_inst = self.instances[dst]
            self.sync(dst_inst)
            dst_inst.arrive(rid, self.now)
            self._poke(dst_inst)
            return True
        if rid not in src.prefilling and rid not in src.decoding:
            return False
        if any(m[0] == rid for m in src.pending_migrations):
            self._abort_migration(rid, "aborted_src")  # a migration that had not left yet
        src.pending_migrations[:] = [m for m in src.pending_migrations if m[0] != rid]
        src.pending_migrations.append((rid, dst, RESTART, 0))
        self._poke(src)
        return True

    def set_ready_at(self, idx: int, t: float) -> None:
        """Instance `idx` starts no iteration before time `t` (its start-up: weights loading or a
        re-parallelization, `llmsched.sim.reparallel`); requests sent to it wait there until then."""
        self.ready_at[idx] = float(t)
        inst = self.instances[idx]
        self.sync(inst)
        self._poke(inst)

    def set_down(self, idx: int, down: bool) -> None:
        if down:
            self.down.add(idx)
        else:
            self.down.discard(idx)

    def _reroute_lost(self, rid: int) -> int:
        """KV sent to an instance that went down is lost: route the request again to recompute."""
        reqs = self.reqs
        self._unreserve(rid)  # its reservation there is gone with the instance
        reqs.kv_ready[rid] = False
        reqs.computed[rid] = 0
        reqs.preemptions[rid] += 1
        view = self.entry_view
        view.now = self.now
        dst = view.pool[self.router.route(rid, view)]
        if dst in self.down:
            dst = next(i for i in view.pool if i not in self.down)
        return dst

    def _do_migrations(self, src: Instance, t: float) -> None:
        for rid, dst, downtime_s, copied in src.pending_migrations:
            if downtime_s == RESTART:
                if rid in src.prefilling or rid in src.decoding:
                    src.preempt(rid)
                if rid in src.waiting:
                    src.take_waiting(rid)
                    self._push(t, LATE, rid, EV_TRANSFER, (rid, dst))
                continue
            if self.reqs.state[rid] != DECODING or rid not in src.decoding:
                # finished or preempted in the meantime: the abort (which frees the destination's
                # reservation) is a generated event, so both modes see the destination alike
                self._push(t, LATE, rid, EV_STAGE, (rid, src.index, dst, copied, 0, 0, 0, False))
                continue
            kv_tokens = src.remove_for_migration(rid)
            delay = self.transfer_time_s(src, kv_tokens - copied) if downtime_s is None else downtime_s
            self._push(t + delay, LATE, rid, EV_TRANSFER, (rid, dst))
        src.pending_migrations.clear()
        src.log.change_point(src, t)
