"""One engine instance: queues, KV memory, and exact fast-forward over iteration segments.

An instance asks its batching policy for a plan at each decision point and then runs that plan
for as many iterations as no decision can change ("a segment"), computing every iteration's
duration in one vectorised call and applying progress lazily. In step mode a segment is one
iteration; both modes produce identical numbers. Routing, transfers and the event heap belong to
`llmsched.sim.engine`; this module never pushes events itself.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from llmsched.sim import kernels
from llmsched.sim.config import InstanceSpec
from llmsched.sim.cost.base import BatchShape, CostModel
from llmsched.sim.cost.encode import EncodeCost, encode_time_s, tiles_of
from llmsched.sim.cost.roofline import RooflineCost
from llmsched.sim.energy import busy_power_w
from llmsched.sim.kvcache import KVPool, PrefixTree
from llmsched.sim.policy_api import ArrivalHook, BatchPolicy, LeaveHook, Plan, RequeueHook
from llmsched.sim.runlog import RunLog
from llmsched.sim.state import (
    ACCURACY_SCALE,
    DECODING,
    DONE,
    NJ_PER_J,
    NO_YIELD,
    PENDING,
    PREFILLING,
    PUSD_PER_USD,
    TRANSFERRING,
    WAITING,
    RequestFacts,
    RequestTable,
)
from llmsched.sim.swap import SwapTier

MAX_SEGMENT_ITERATIONS = 8192  # bounds the arrays of one fast-forward segment
_NO_DECODES = np.zeros(0, dtype=np.int64)
_sum = np.add.reduce
_NO_DECODES.flags.writeable = False
_NO_INTS = _NO_DECODES  # an empty int64 array for a kernel argument that is absent
_NO_CLIENTS: frozenset[int] = frozenset()


def _affine_shape(sum_c: int, sum_c2: int, pairs0: int, pctx0: int, k: int, ctx0: int, nreq: int,
                  n: int) -> BatchShape:
    """The n iterations' shapes of a segment laid out by `Instance._layout` (affine in the
    iteration index j: each prefill chunk grows its past by its size, each decode its context by 1)."""
    if n == 1:
        one = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
        return BatchShape(one(sum_c), one(pairs0), one(pctx0), one(k), one(ctx0), one(nreq))
    j = np.arange(n, dtype=np.int64)
    return BatchShape(
        prefill_tokens=np.full(n, sum_c, dtype=np.int64),
        prefill_attention_pairs=pairs0 + j * sum_c2,
        prefill_context_tokens=pctx0 + j * sum_c,
        decode_tokens=np.full(n, k, dtype=np.int64),
        decode_context_tokens=ctx0 + j * k,
        num_requests=np.full(n, nreq, dtype=np.int64),
    )

# Where a request sits on an instance (the instance's list of that name), the state it has there,
# and which per-client counter counts it: `waiting` is the queue policies admit from; `ready`
# (arrived with KV, awaiting memory) and `swapped` (KV in host memory) wait outside both counters.
STATE_AT = {"waiting": WAITING, "ready": WAITING, "swapped": WAITING, "prefilling": PREFILLING,
            "decoding": DECODING}
COUNTED_AS = {"waiting": "waiting_count", "prefilling": "running_count", "decoding": "running_count"}


class ServiceFacts:
    """Per-client accounting of one instance (`_inst`), read-only."""

    __slots__ = ()
    _inst: Instance

    def input_service(self, client: int) -> int:
        return int(self._inst.reqs.input_service[self._inst.index, client])

    def cached_input_service(self, client: int) -> int:
        return int(self._inst.reqs.cached_input_service[self._inst.index, client])

    def output_service(self, client: int) -> int:
        return int(self._inst.reqs.output_service[self._inst.index, client])


class InstanceView(RequestFacts, ServiceFacts):
    """The read-only window a batching policy gets on its instance (see `llmsched.sim.policy_api`)."""

    # the instance's queues (the same list objects for its lifetime) and its fixed numbers, read
    # directly rather than through properties: policies read them at every plan
    __slots__ = ("_inst", "decoding", "instance", "max_batch_requests", "now", "prefilling", "role",
                 "token_budget", "waiting")
    _reqs = property(lambda self: self._inst.reqs)

    def __init__(self, inst: Instance) -> None:
        self._inst = inst
        self.now = 0.0
        self.instance = inst.index
        self.token_budget = inst.spec.token_budget
        self.max_batch_requests = inst.spec.max_batch_requests
        self.role = inst.spec.role
        self.waiting = inst.waiting
        self.prefilling = inst.prefilling
        self.decoding = inst.decoding

    admission_open = property(lambda self: self._inst.admission_open())

    def remaining_prefill(self, rid: int) -> int:
        r = self._inst.reqs
        if r.state.item(rid) == WAITING:  # .item: Python ints, no NumPy scalars (hot path)
            return r.prompt.item(rid) + r.generated.item(rid)
        return max(r.prefill_target.item(rid) - r.computed.item(rid), 0)

    def cached_prefix_tokens(self, rid: int) -> int:
        return self._inst.cached_tokens_if_admitted(rid)[0]

    def admissible(self, rids: Sequence[int]) -> bool:
        return self._inst.admissible(rids)

    def client_weight(self, client: int) -> float:
        return float(self._inst.reqs.workload.client_weight[client])

    def waiting_count(self, client: int) -> int:
        return int(self._inst.reqs.waiting_count[self._inst.index, client])

    def kv_free_fraction(self) -> float:
        pool = self._inst.pool
        return pool.available_blocks / pool.total_blocks

    @property
    def n_clients(self) -> int:
        return self._inst.reqs.workload.n_clients


class Instance:
    """State and mechanics of one instance. The engine drives it through `arrive`, `sync`,
    `finish_segment` and `start_segment`."""

    def __init__(
        self,
        index: int,
        spec: InstanceSpec,
        cost: CostModel,
        policy: BatchPolicy,
        reqs: RequestTable,
        total_blocks: int,
        step_mode: bool,
        logger: RunLog,
        on_prefilled: Callable[[int, int, float], None] | None = None,
        swap: SwapTier | None = None,
        encode: EncodeCost | None = None,
        power_w: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.index = index
        self.spec = spec
        self.cost = cost
        self.policy = policy
        self.reqs = reqs
        self.step_mode = step_mode
        self.log = logger
        self.on_prefilled = on_prefilled  # disaggregation: called when a prefill-role request has its first token
        self.on_finished: Callable[[int, float], None] | None = None  # releases child requests
        # generation slices: a request whose slice ended leaves; the engine routes it again
        self.on_slice_end: Callable[[int, float], None] | None = None
        self.block_size = spec.block_size
        hb = reqs.workload.hash_block_tokens
        use_tree = spec.prefix_cache and reqs.workload.has_prefixes and hb % spec.block_size == 0
        self.hash_block_tokens = hb
        self.tree = PrefixTree(hb // spec.block_size, spec.prefix_eviction) if use_tree else None
        self.pool = KVPool(total_blocks, spec.block_size, self.tree)
        self.waiting: list[int] = []
        self.ready: list[int] = []  # arrived with KV (transfer/migration), awaiting memory
        self.swap = swap  # host KV tier for swap-style preemption (None: recompute only)
        # the vision encoder this instance runs itself (no encode pool): a request's images are
        # encoded in the iteration that admits it, before its prefill (vLLM runs the encoder inside
        # the prompt's forward pass); None = text-only, or every image arrives already embedded
        self.encode = encode
        self.swapped: list[int] = []  # preempted decodes whose KV is in host memory, oldest first
        self.prefilling: list[int] = []
        self.decoding: list[int] = []
        self.view = InstanceView(self)  # after the queues: it keeps references to them
        self.iterations = 0
        self.last_iteration_end_s = 0.0  # end of the last applied iteration (timeline run ends)
        self._row_shape: tuple[int, int] | None = None  # (prefill, decode) tokens of the last timeline row
        self.outstanding_tokens = 0
        self.admit_counter = 0
        self.version = 0  # bumps whenever the pending wake-up is superseded
        self.changed = False  # a change point happened since the last log
        self.dirty: set[int] = set()  # clients whose counters changed since the last log
        # (rid, destination, downtime_s | None | event_kinds.RESTART, KV tokens already copied)
        self.pending_migrations: list[tuple[int, int, float | None, int]] = []
        self.reserved: dict[int, int] = {}  # rid -> blocks reserved here for its incoming migration
        self._has_tbt_slo = bool(np.isfinite(reqs.tbt_slo_s).any())
        self._jit = kernels.use_for(len(reqs.prompt))  # the compiled kernels, or the NumPy path
        # the kernels' arguments after the segment's own (the request table's arrays are never replaced)
        self._k_apply = (reqs.kernel_ints, reqs.kernel_floats, self._has_tbt_slo, self.block_size)
        self._k_stats = (reqs.kernel_ints, self.block_size)
        self._need_now: int | None = None  # cached decode block needs during one planning step
        # the same step's kernels.decode_stats of all decodes (array, need, context, tokens left), if taken
        self._decoding_stats: tuple[np.ndarray, int, int, int] | None = None
        self._planning = False
        self._arrival_hook = policy if isinstance(policy, ArrivalHook) else None
        self._leave_hook = policy if isinstance(policy, LeaveHook) else None
        self._requeue_hook = policy if isinstance(policy, RequeueHook) else None
        # (active, idle) power of the instance's GPUs, W; busy time of applied iterations, integer ns
        self.active_power_w, self.idle_power_w = power_w
        self.busy_ns = 0
        # serverless function (InstanceSpec price_*/memory_gb/cold_start_s/keep_alive_s/pad_batches)
        self.usd_per_s = spec.memory_gb * spec.price_per_gb_s_usd
        self.invocations = 0  # batches admitted while idle
        self.cold_starts = 0
        self.padding_tokens = 0
        # invalid tokens of static batches (InstanceSpec.decode_until_batch_ends): finished requests
        # whose slot keeps decoding until the batch ends, and the KV tokens those slots read
        self.invalid_tokens = 0
        self.ghost_decodes = 0
        self.ghost_context_tokens = 0
        self.seg_busy_ns: np.ndarray | None = None
        self._scales: dict[int, tuple[float, float]] = {}  # tokens -> _rate_scales
        self._k_ends = np.empty(0)  # kernels.roofline_segment's output buffers (_grow_kernel_buffers)
        self._k_rates = np.zeros((3, 0), dtype=np.int64)
        self._k_rows: tuple[np.ndarray, ...] = ()
        self._k_stopped = np.empty(64, dtype=np.int64)  # kernels.apply_segment's decodes at their stop
        self.variant_name: str | None = None  # the model variant last run (Plan.variant), for actuation
        self._clear_segment()

    # ------------------------------------------------------------------ basic state
    def _clear_segment(self) -> None:
        self.seg_n = 0
        self.seg_done = 0
        self.seg_ends: np.ndarray | None = None
        self.seg_end_list: list[float] | None = None  # seg_ends as Python floats, made on first use (_end_list)
        self.seg_decodes = _NO_DECODES
        self.seg_decode_client_counts: np.ndarray | None = None
        self.seg_chunks: Sequence[tuple[int, int]] = ()
        self.seg_clients: AbstractSet[int] = _NO_CLIENTS
        self.seg_one_client = -1  # the decodes' client when they all share one (-1: several, or none)
        self.seg_busy_ns = None
        self.seg_cost_pusd: np.ndarray | None = None  # GB-second cost per token of each iteration
        self.seg_padding = 0  # padding tokens per iteration of the segment (pad_batches)
        self.seg_energy_nj: np.ndarray | None = None  # energy per token of each iteration (nJ)
        self.seg_accuracy = -1  # accuracy of the segment's model variant x ACCURACY_SCALE (-1: no variant)
        self.seg_stops = -1  # decodes at their stop after the last apply (compiled path; -1: not counted)

    @property
    def busy(self) -> bool:
        return self.seg_ends is not None

    @property
    def running_count(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def admission_open(self) -> bool:
        interval = self.spec.admission_interval
        return interval == 1 or self.iterations % interval == 0 or not (self.prefilling or self.decoding)

    # ------------------------------------------------------------------ memory helpers
    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def _prefix_blocks(self, rid: int) -> np.ndarray:
        return self.reqs.full_prompt_blocks(rid)

    def cached_tokens_if_admitted(self, rid: int) -> tuple[int, list[int]]:
        r = self.reqs
        if self.tree is None:
            return 0, []
        path = self.tree.match(self._prefix_blocks(rid))
        target = r.prompt.item(rid) + r.generated.item(rid)
        while path and len(path) * self.hash_block_tokens >= target:
            path.pop()  # at least one token must be computed to produce the next token
        return len(path) * self.hash_block_tokens, path

    def _decode_block_needs_now(self, rids) -> int:
        """Blocks the given decodes need for their next iteration."""
        r = self.reqs
        if len(rids) == 0:
            return 0
        idx = np.asarray(rids, dtype=np.int64)
        if self._jit:
            need, ctx0, left = kernels.decode_stats(idx, *self._k_stats)
            if rids is self.decoding and self._planning:  # _plan reuses them if the plan decodes all
                self._decoding_stats = (idx, need, ctx0, left)
            return need
        return int(np.count_nonzero((r.computed[idx] - r.shared_tokens[idx]) % self.block_size == 0))

    def admissible(self, rids: Sequence[int]) -> bool:
        """Would the KV of all `rids` (waiting requests) fit now, keeping the running decodes'
        next-iteration blocks and the watermark free?"""
        r = self.reqs
        if not self._planning:
            need = self._decode_block_needs_now(self.decoding)
        else:
            if self._need_now is None:
                self._need_now = self._decode_block_needs_now(self.decoding)
            need = self._need_now
        need += self.spec.watermark_blocks
        tree = self.tree
        if tree is None:  # nothing cached: each request needs the blocks of its whole prompt
            for rid in rids:
                need += self._blocks_for(r.prompt.item(rid) + r.generated.item(rid))
            return need <= self.pool.available_blocks
        pinned: set[int] = set()
        for rid in rids:
            cached, path = self.cached_tokens_if_admitted(rid)
            target = r.prompt.item(rid) + r.generated.item(rid)
            need += self._blocks_for(target - cached)
            pinned.update(path)
        avail = self.pool.available_blocks
        if pinned:
            avail -= sum(1 for node in pinned if not tree.is_referenced(node)) * tree.blocks_per_node
        return need <= avail

    # ------------------------------------------------------------------ state transitions
    def _move(self, rid: int, src: str | None, dst: str | None, *, off_state: int | None = None,
              at_head: bool = False) -> None:
        """Move a request from place `src` to place `dst` on this instance (None: off it), keeping
        every per-client counter, its state and the change flags in step: the one place that does.
        `off_state` is the state of a request leaving the instance (None: unchanged); `at_head`
        puts it first in `dst` (a preempted request requeued)."""
        r = self.reqs
        c = r.client.item(rid)
        at = (self.index, c)
        if src is not None:
            getattr(self, src).remove(rid)
            counter = COUNTED_AS.get(src)
            if counter is not None:
                counts = getattr(r, counter)
                counts[at] = counts.item(at) - 1
        if dst is not None:
            queue = getattr(self, dst)
            if at_head:
                queue.insert(0, rid)
            else:
                queue.append(rid)
            r.state[rid] = STATE_AT[dst]
            counter = COUNTED_AS.get(dst)
            if counter is not None:
                counts = getattr(r, counter)
                counts[at] = counts.item(at) + 1
        elif off_state is not None:
            r.state[rid] = off_state
        self.dirty.add(c)
        self.changed = True

    def place_of(self, rid: int) -> str:
        """The place (a key of `STATE_AT`) a request on this instance is in."""
        state = self.reqs.state.item(rid)
        if state == PREFILLING:
            return "prefilling"
        if state == DECODING:
            return "decoding"
        return next(p for p in ("waiting", "ready", "swapped") if rid in getattr(self, p))

    # ------------------------------------------------------------------ arrivals
    def arrive(self, rid: int, now: float) -> None:
        """A request joins this instance's waiting queue (engine has synced us to `now`)."""
        r = self.reqs
        r.instance[rid] = self.index
        if r.kv_ready[rid]:
            self._move(rid, None, "ready")
            if rid in self.reserved:  # a migration's reserved blocks now hold its KV
                exact = self._blocks_for(int(r.computed[rid]))
                held = self.reserved.pop(rid)
                if held > exact:
                    self.pool.release(held - exact)
                r.held_blocks[rid] = min(held, exact)
            self.outstanding_tokens += int(r.output[rid] - r.generated[rid])
        else:
            target = r.prompt.item(rid) + r.generated.item(rid)
            r.prefill_target[rid] = target
            self._move(rid, None, "waiting")
            self.outstanding_tokens += target + r.output.item(rid) - r.generated.item(rid)
            if self._arrival_hook is not None:
                self.view.now = now
                self._arrival_hook.on_arrival(rid, self.view)
        self.log.change_point(self, now)

    # ------------------------------------------------------------------ lazy progress
    def sync(self, t: float, inclusive: bool = False) -> None:
        """Apply every iteration of the current segment that ended before `t` (or at `t` too)."""
        if self.seg_ends is None or self.seg_done >= self.seg_n - 1:
            return  # idle, or only the last iteration left (applied by its own wake-up)
        # bisect over the array itself (a few scalar reads), not a list of all its ends
        m = (bisect_right if inclusive else bisect_left)(self.seg_ends, t, 0, self.seg_n)
        if m >= self.seg_n:
            m = self.seg_n - 1
        if m > self.seg_done:
            self._apply(self.seg_done, m)

    def truncate_to_inflight(self) -> float | None:
        """End the segment after the iteration in flight; returns the new wake time if changed."""
        if self.seg_ends is None:
            return None
        new_n = self.seg_done + 1
        if new_n >= self.seg_n:
            return None
        self.seg_n = new_n
        return self.seg_ends.item(new_n - 1)

    def _end_list(self) -> list[float]:
        """The segment's iteration ends as Python floats (for the NumPy apply's scalar loops), made
        once per segment when first asked for."""
        if self.seg_end_list is None:
            assert self.seg_ends is not None  # only asked for during a segment
            self.seg_end_list = self.seg_ends[:self.seg_n].tolist()
        return self.seg_end_list

    def _apply(self, a: int, m: int) -> None:
        """Apply iterations a..m-1 of the current segment (progress, memory, tokens, service)."""
        r = self.reqs
        k = m - a
        ends = self.seg_ends
        assert ends is not None  # applied only during a segment
        if self.seg_cost_pusd is not None:
            cost = int(self.seg_cost_pusd[a:m].sum())
            for rid, c in self.seg_chunks:
                r.cost_pusd[rid] += c * cost
            if len(self.seg_decodes):
                r.cost_pusd[self.seg_decodes] += cost
        if self.seg_padding:
            self.padding_tokens += k * self.seg_padding
        if self.ghost_decodes:
            self.invalid_tokens += k * self.ghost_decodes
            self.ghost_context_tokens += k * self.ghost_decodes
        if self._jit:  # `kernels.apply_segment` does the array work (the operations of _apply_decodes)
            d = self.seg_decodes
            energy_per: np.ndarray = _NO_INTS
            busy: np.ndarray | None = _NO_INTS
            if self.seg_energy_nj is not None:
                energy_per, busy = self.seg_energy_nj, self.seg_busy_ns  # set together
            if self._k_stopped.shape[0] < len(d):
                self._k_stopped = np.empty(max(len(d), 2 * self._k_stopped.shape[0]), dtype=np.int64)
            energy, busy_ns, alloc, self.seg_stops = kernels.apply_segment(
                d, a, m, ends, energy_per, busy, *self._k_apply, self._k_stopped)
            self.busy_ns += busy_ns
            if self.seg_chunks:
                self._credit_chunks(k, energy)
            nd = len(d)
            if nd:
                self.pool.allocate(alloc)
                self._credit_decodes(d, k, nd)
            self.iterations += k
            self.last_iteration_end_s = ends.item(m - 1)
            self.seg_done = m
            return
        energy = 0
        if self.seg_energy_nj is not None:
            assert self.seg_busy_ns is not None  # set together
            if k == 1:
                energy = int(self.seg_energy_nj[a])
                self.busy_ns += int(self.seg_busy_ns[a])
            else:
                energy = int(self.seg_energy_nj[a:m].sum())
                self.busy_ns += int(self.seg_busy_ns[a:m].sum())
        if self.seg_chunks:
            self._credit_chunks(k, energy)
        if len(self.seg_decodes):
            self._apply_decodes(a, m, energy)
        self.iterations += k
        self.last_iteration_end_s = ends.item(m - 1)
        self.seg_done = m

    def _apply_decodes(self, a: int, m: int, energy: int) -> None:
        """The decodes' part of `_apply`: tokens, KV blocks, token gaps, output service."""
        r = self.reqs
        k = m - a
        ends = self._end_list()
        d = self.seg_decodes
        nd = len(d)
        if nd:
            # 1-D gathers and scatters are cheap (~0.2 us); ufunc calls are not (~1 us): few of them
            comp = r.computed[d]
            comp += k
            r.computed[d] = comp
            gen = r.generated[d]
            gen += k
            r.generated[d] = gen
            if energy:
                spent = r.energy_nj[d]
                spent += energy
                r.energy_nj[d] = spent
            bs = self.block_size
            new_held = comp - r.shared_tokens[d]
            new_held += bs - 1
            new_held //= bs
            self.pool.allocate(int(_sum(new_held)) - int(_sum(r.held_blocks[d])))
            r.held_blocks[d] = new_held
            first_gap = ends[a] - r.last_token_s[d]
            if k > 1:
                inner_max = max(ends[j + 1] - ends[j] for j in range(a, m - 1)) if k <= 16 \
                    else float(np.diff(self.seg_ends[a:m]).max())  # type: ignore[index]
                gap_max = np.maximum(first_gap, inner_max)
            else:
                gap_max = first_gap
            tbt = r.tbt_max_s[d]
            np.maximum(tbt, gap_max, out=tbt)
            r.tbt_max_s[d] = tbt
            r.last_token_s[d] = ends[m - 1]
            if self._has_tbt_slo:
                slo = r.tbt_slo_s[d]
                misses = (first_gap > slo).astype(np.int64)
                if k > 1:
                    inner_sorted = np.sort(np.diff(self.seg_ends[a:m]))  # type: ignore[index]
                    misses += len(inner_sorted) - np.searchsorted(inner_sorted, slo, side="right")
                r.tbt_misses[d] += misses
            self._credit_decodes(d, k, nd)

    def _credit_chunks(self, k: int, energy: int) -> None:
        """After k iterations: the segment's prefill chunks computed, with their energy (nJ per
        token); both apply paths use it."""
        r = self.reqs
        computed = r.computed
        energy_nj = r.energy_nj
        for rid, c in self.seg_chunks:
            computed[rid] += k * c
            self.outstanding_tokens -= k * c
            if energy:
                energy_nj[rid] += c * energy

    def _credit_decodes(self, d: np.ndarray, k: int, nd: int) -> None:
        """After k iterations of the segment's nd decodes `d`: their accuracy (model variants), the
        clients' output service, and the tokens no longer outstanding. Both apply paths end here."""
        r = self.reqs
        if self.seg_accuracy >= 0:  # a model variant's tokens
            r.accuracy_sum[d] += k * self.seg_accuracy
            r.accuracy_tokens[d] += k
        if self.seg_one_client >= 0:
            r.output_service[self.index, self.seg_one_client] += nd * k
            self.dirty.add(self.seg_one_client)
        else:
            counts = self.seg_decode_client_counts
            assert counts is not None  # set with the segment's decodes
            r.output_service[self.index] += counts * k
            self.dirty.update(self.seg_clients)
        self.outstanding_tokens -= k * nd

    # ------------------------------------------------------------------ segment end
    def finish_segment(self) -> None:
        """Apply the rest of the segment and handle prefill completions and finished requests."""
        if self.seg_ends is None:
            return
        if self.seg_n > self.seg_done:
            self._apply(self.seg_done, self.seg_n)
        r = self.reqs
        t = self.seg_ends.item(self.seg_n - 1)
        finished: list[int] = []
        sliced: list[int] = []
        for rid, _ in self.seg_chunks:
            if r.computed.item(rid) >= r.prefill_target.item(rid):
                self._prefill_done(rid, t, finished, sliced)
        if self.seg_stops != 0:
            self._stopped_decodes(finished, sliced)
        if finished:
            if self.spec.decode_until_batch_ends:  # their slots decode invalid tokens from now on
                self.ghost_decodes += len(finished)
                self.ghost_context_tokens += int(r.computed[np.asarray(finished, dtype=np.int64)].sum())
            for rid in finished:
                self._finish(rid, t)
        self._clear_segment()
        for rid in sliced:
            self._end_slice(rid, t)
        if self.ghost_decodes:
            self._end_batch_if_empty()

    def _end_batch_if_empty(self) -> None:
        """A static batch ends when none of its requests runs here any more: its invalid-token
        slots (`decode_until_batch_ends`) go with it."""
        if self.ghost_decodes and not self.decoding and not self.prefilling:
            self.ghost_decodes = 0
            self.ghost_context_tokens = 0

    def _prefill_done(self, rid: int, t: float, finished: list[int], sliced: list[int]) -> None:
        r = self.reqs
        c = r.client.item(rid)
        generated = r.generated.item(rid) + 1
        r.generated[rid] = generated
        self.outstanding_tokens -= 1
        at = (self.index, c)
        r.output_service[at] = r.output_service.item(at) + 1
        if self.seg_accuracy >= 0:  # a model variant's token
            r.accuracy_sum[rid] += self.seg_accuracy
            r.accuracy_tokens[rid] += 1
        if math.isnan(r.first_token_s.item(rid)):
            r.first_token_s[rid] = t
        else:  # token produced by a recompute after preemption / a resumed request
            gap = t - r.last_token_s[rid]
            r.tbt_max_s[rid] = max(r.tbt_max_s[rid], gap)
            r.tbt_misses[rid] += int(gap > r.tbt_slo_s[rid])
        r.last_token_s[rid] = t
        if self.tree is not None:
            path = r.paths.setdefault(rid, [])
            blocks = self._prefix_blocks(rid)
            if len(blocks) > len(path):
                self.tree.insert(blocks, len(path), path)
                shared = len(path) * self.hash_block_tokens
                new_held = self._blocks_for(int(r.prefill_target[rid]) - shared)
                self.pool.release(int(r.held_blocks[rid]) - new_held)
                r.held_blocks[rid] = new_held
                r.shared_tokens[rid] = shared
        if generated >= r.output.item(rid):
            finished.append(rid)  # leaves from "prefilling" in _finish
        elif self.spec.role == "prefill" and self.on_prefilled is not None:
            self._release(rid)
            self._move(rid, "prefilling", None, off_state=TRANSFERRING)
            self.outstanding_tokens -= int(r.output[rid] - r.generated[rid])
            self.on_prefilled(rid, self.index, t)
        else:
            self._move(rid, "prefilling", "decoding")
            if generated >= r.yield_at.item(rid):
                sliced.append(rid)  # a one-token slice ends with its prefill

    def _stopped_decodes(self, finished: list[int], sliced: list[int]) -> None:
        """Add the segment's decodes now at their stop to `finished` (all tokens generated) or
        `sliced` (their generation slice ended), in the order of the segment's decodes."""
        r = self.reqs
        if self.seg_stops > 0:  # compiled path: listed by the last apply, in the order of d
            generated, output, yield_at = r.generated, r.output, r.yield_at
            for rid in self._k_stopped[:self.seg_stops].tolist():
                tokens = generated.item(rid)
                if tokens >= output.item(rid):
                    finished.append(rid)
                elif tokens >= yield_at.item(rid):
                    sliced.append(rid)
            return
        d = self.seg_decodes  # NumPy path (seg_stops == -1: not counted)
        if not len(d):
            return
        gen = r.generated[d]
        stop = gen >= r.stop_at[d]  # finished, or its generation slice ended
        if stop.any():
            d, gen = d[stop], gen[stop]
            done = gen >= r.output[d]
            finished.extend(d[done].tolist())
            sliced.extend(d[~done & (gen >= r.yield_at[d])].tolist())

    def _end_slice(self, rid: int, t: float) -> None:
        """The request's generation slice is over (`Plan.slice_tokens`): it leaves this instance
        with its KV dropped (its next slice recomputes prompt + generated tokens) and goes back to
        the router, as SCLS returns unfinished requests to its scheduler after every slice."""
        r = self.reqs
        self._release(rid)
        r.computed[rid] = 0
        r.yield_at[rid] = NO_YIELD
        r.stop_at[rid] = r.output[rid]
        r.slices[rid] += 1
        self._move(rid, "decoding", None, off_state=PENDING)
        self.outstanding_tokens -= int(r.output[rid] - r.generated[rid])
        if self.on_slice_end is None:  # no engine to route it again: back into this queue
            self.arrive(rid, t)
            return
        r.instance[rid] = -1
        self.on_slice_end(rid, t)

    def _release(self, rid: int) -> None:
        r = self.reqs
        self.pool.release(r.held_blocks.item(rid))
        r.held_blocks[rid] = 0
        path = r.paths.pop(rid, None) if r.paths else None
        if path:
            assert self.tree is not None  # a request holds a cached path only with a prefix tree
            self.tree.release(path)
        r.shared_tokens[rid] = 0

    def _finish(self, rid: int, t: float) -> None:
        r = self.reqs
        r.finish_s[rid] = t
        r.instance[rid] = self.index
        self._release(rid)
        self._move(rid, self.place_of(rid), None, off_state=DONE)
        if self.on_finished is not None:
            self.on_finished(rid, t)

    def _preempt_for_memory(self, rid: int) -> None:
        """Preemption when a plan's decodes do not fit: swap the KV to host memory where the
        instance swaps and the host tier has room (decoding requests only), else recompute."""
        r = self.reqs
        if self.swap is not None and r.state[rid] == DECODING:
            tokens = int(r.computed[rid])
            if self.swap.can_hold(self._blocks_for(tokens)):
                self._swap_out(rid, tokens)
                return
        self.preempt(rid)

    def _swap_out(self, rid: int, tokens: int) -> None:
        r = self.reqs
        self._release(rid)
        assert self.swap is not None  # only _preempt_for_memory swaps out, with a host tier
        self.swap.swap_out(self._blocks_for(tokens), tokens)
        r.preemptions[rid] += 1
        self._move(rid, "decoding", "swapped")

    def _swap_in_ready(self) -> None:
        """Swapped requests come back, oldest first, before any new admission (vLLM serves its
        swapped queue before its waiting queue) as soon as their KV and the decodes' next blocks fit."""
        r = self.reqs
        while self.swapped:
            rid = self.swapped[0]
            tokens = int(r.computed[rid])
            held = self._blocks_for(tokens)
            need = self._blocks_for(tokens + 1) + self._decode_block_needs_now(self.decoding)
            if need > self.pool.available_blocks or self.running_count >= self.spec.max_batch_requests:
                break
            assert self.swap is not None  # requests are swapped out only with a host tier
            self.swap.swap_in(held, tokens)
            self.pool.allocate(held)
            r.held_blocks[rid] = held
            r.shared_tokens[rid] = 0
            self.admit_counter += 1
            r.admit_seq[rid] = self.admit_counter
            self._move(rid, "swapped", "decoding")

    def take_swapped(self, rid: int) -> None:
        """Take a swapped-out request off this instance; its host KV is dropped (recomputed elsewhere)."""
        r = self.reqs
        self._move(rid, "swapped", None)
        assert self.swap is not None  # requests are swapped out only with a host tier
        self.swap.drop(self._blocks_for(int(r.computed[rid])))
        self.outstanding_tokens -= int(r.output[rid] - r.generated[rid])
        r.computed[rid] = 0
        r.instance[rid] = -1

    def preempt(self, rid: int) -> None:
        """Recompute-style preemption: drop the request's KV and requeue it at the head."""
        r = self.reqs
        old_remaining = max(int(r.prefill_target[rid] - r.computed[rid]), 0)
        src = self.place_of(rid)
        self._release(rid)
        r.computed[rid] = 0
        r.prefill_target[rid] = r.prompt[rid] + r.generated[rid]
        r.preemptions[rid] += 1
        self.outstanding_tokens += int(r.prefill_target[rid]) - old_remaining
        self._move(rid, src, "waiting", at_head=True)
        if self._requeue_hook is not None:
            self._requeue_hook.on_requeue(rid, self.view)

    def take_waiting(self, rid: int) -> None:
        """Take a waiting request off this instance (it is about to arrive elsewhere)."""
        r = self.reqs
        self._move(rid, "waiting", None)
        self.outstanding_tokens -= int(r.prefill_target[rid] + r.output[rid] - r.generated[rid])
        r.instance[rid] = -1

    def take_ready(self, rid: int) -> None:
        """Take a request that arrived with its KV but is still waiting for memory off this
        instance; its KV is dropped (it will be recomputed elsewhere)."""
        r = self.reqs
        self._move(rid, "ready", None)
        self.pool.release(int(r.held_blocks[rid]))  # blocks reserved by its migration, if any
        r.held_blocks[rid] = 0
        self.outstanding_tokens -= int(r.output[rid] - r.generated[rid])
        r.kv_ready[rid] = False
        r.computed[rid] = 0
        r.preemptions[rid] += 1
        r.instance[rid] = -1

    def remove_for_migration(self, rid: int) -> int:
        """Take a decoding request out (its KV leaves with it); returns the KV tokens moved."""
        r = self.reqs
        kv_tokens = int(r.computed[rid])
        self._release(rid)
        self._move(rid, "decoding", None, off_state=TRANSFERRING)
        r.kv_ready[rid] = True
        r.migrations[rid] += 1
        self.outstanding_tokens -= int(r.output[rid] - r.generated[rid])
        return kv_tokens

    # ------------------------------------------------------------------ migration reservations
    def in_flight_block_needs(self) -> int:
        """Blocks the iteration in flight will still allocate when it is applied (its decodes'
        new blocks; prefill chunks hold their blocks from admission). 0 when idle."""
        if self.seg_ends is None:
            return 0
        return self._decode_block_needs_now(self.seg_decodes)

    def reserve_for_migration(self, rid: int, blocks: int) -> bool:
        """Reserve `blocks` more KV blocks for incoming migration `rid`, as Llumnix's destination
        pre-allocation does: granted only if free memory stays at or above the watermark
        (`num_free - num_required >= watermark`, AlibabaPAI/llumnix
        llumnix/backends/vllm/scheduler.py @5f42bcb, BlockManagerLlumnix.get_free_blocks), here
        after the blocks the iteration in flight still needs. Returns False (nothing reserved)
        otherwise."""
        if blocks > 0:
            free = self.pool.available_blocks - self.spec.watermark_blocks - self.in_flight_block_needs()
            if blocks > free:
                return False
            self.pool.allocate(blocks)
        self.reserved[rid] = self.reserved.get(rid, 0) + max(blocks, 0)
        return True

    def release_reservation(self, rid: int) -> int:
        """Free every block reserved for `rid` (an aborted migration); returns how many."""
        n = self.reserved.pop(rid, 0)
        if n:
            self.pool.release(n)
        return n

    # ------------------------------------------------------------------ planning
    def _victim(self) -> int:
        r = self.reqs
        running = self.prefilling + self.decoding
        return max(running, key=lambda x: r.admit_seq[x])

    def _admit_ready(self) -> None:
        """Requests that arrive with their KV join the decode set as soon as memory allows."""
        r = self.reqs
        while self.ready:
            rid = self.ready[0]
            reserved = int(r.held_blocks[rid])  # > 0 only for a migration that reserved them here
            need = (self._blocks_for(int(r.computed[rid]) + 1) - reserved
                    + self._decode_block_needs_now(self.decoding))
            if need > self.pool.available_blocks or self.running_count >= self.spec.max_batch_requests:
                break
            held = self._blocks_for(int(r.computed[rid]))
            self.pool.allocate(held - reserved)
            r.held_blocks[rid] = held
            r.shared_tokens[rid] = 0
            r.kv_ready[rid] = False
            self.admit_counter += 1
            r.admit_seq[rid] = self.admit_counter
            r.instance[rid] = self.index
            self._move(rid, "ready", "decoding")

    def _admit(self, rid: int, now: float) -> None:
        r = self.reqs
        c = r.client.item(rid)
        cached, path = self.cached_tokens_if_admitted(rid) if self.tree is not None else (0, None)
        if path:
            assert self.tree is not None  # a cached path exists only with a prefix tree
            self.tree.acquire(path)
            r.paths[rid] = path
        prompt = r.prompt.item(rid)
        target = prompt + r.generated.item(rid)
        r.prefill_target[rid] = target
        r.shared_tokens[rid] = cached
        r.computed[rid] = cached
        held = self._blocks_for(target - cached)
        self.pool.allocate(held)
        r.held_blocks[rid] = held
        r.cached_tokens[rid] = r.cached_tokens.item(rid) + cached
        r.admitted_prompt_tokens[rid] = r.admitted_prompt_tokens.item(rid) + target
        self.outstanding_tokens -= cached
        if not r.charged.item(rid):
            r.charged[rid] = True
            at = (self.index, c)
            r.input_service[at] = r.input_service.item(at) + prompt
            r.cached_input_service[at] = r.cached_input_service.item(at) + min(cached, prompt)
        if math.isnan(r.dispatch_s.item(rid)):
            r.dispatch_s[rid] = now
        r.prefill_instance[rid] = self.index
        self.admit_counter += 1
        r.admit_seq[rid] = self.admit_counter
        self._move(rid, "waiting", "prefilling")
        if self._leave_hook is not None:
            self._leave_hook.on_leave_queue(rid, self.view)

    def _plan(self, now: float) -> Plan:
        """Ask the policy; preempt (latest admitted first) until the plan's decodes fit."""
        self.view.now = now
        if self.swapped:
            self._swap_in_ready()  # not after a preemption below: vLLM swaps in only in steps without one
        policy_plan = self.policy.plan
        view = self.view
        while True:
            if self.ready:
                self._admit_ready()  # again after a preemption: freed memory may admit them now
            self._need_now = None
            self._decoding_stats = None
            self._planning = True
            plan = policy_plan(view)
            self._planning = False
            decodes = self.decoding if plan.decodes is None else plan.decodes
            if self._jit:  # one kernel call: the blocks needed, and what the layout reads later
                taken = self._decoding_stats  # by admissible during the plan, for all decodes
                if taken is not None and (decodes is self.decoding or decodes == self.decoding):
                    arr, need, ctx0, left = taken
                else:
                    arr = np.array(decodes, dtype=np.int64) if len(decodes) else _NO_DECODES
                    need, ctx0, left = kernels.decode_stats(arr, *self._k_stats)
                self._decode_stats = (arr, ctx0, left)
                self._decoding_stats = None
            elif len(decodes) == len(self.decoding) and self._need_now is not None:
                need = self._need_now  # the plan decodes everything (the common case)
            else:
                need = self._decode_block_needs_now(decodes)
            self._need_now = None
            if need <= self.pool.available_blocks or not decodes:
                return plan
            self._preempt_for_memory(self._victim())

    def _segment_length(self, chunks: list[tuple[int, int]], decodes: np.ndarray, left: int | None = None) -> int:
        """How many iterations of this batch can run before any decision can change (>= 1): no
        chunk finishes its prompt, no decode its output or its generation slice, memory suffices, admission stays closed."""
        r = self.reqs
        n = MAX_SEGMENT_ITERATIONS
        for rid, c in chunks:
            n = min(n, max((r.prefill_target.item(rid) - r.computed.item(rid)) // c, 1))
        if len(decodes):
            # `left`: the same minimum, computed by kernels.decode_stats
            n = min(n, int((r.stop_at[decodes] - r.generated[decodes]).min()) if left is None else left)
            # each decode needs at most n // block + 1 new blocks in n iterations
            if self.pool.available_blocks < len(decodes) * (n // self.block_size + 1):
                n = min(n, self._memory_horizon(decodes))
        interval = self.spec.admission_interval
        if interval > 1 and (self.waiting or self.ready):
            n = min(n, interval - self.iterations % interval)
        return max(n, 1)

    def _segment_iterations(self, plan: Plan, chunks: list[tuple[int, int]], decodes: np.ndarray,
                            left: int | None) -> int:
        """Iterations the segment runs: one in step mode or when the plan asks again every
        iteration, else `_segment_length`, at most the plan's `replan_after_iterations`."""
        if self.step_mode or plan.replan_each_iteration:
            return 1
        n = self._segment_length(chunks, decodes, left)
        after = plan.replan_after_iterations
        if after is not None:
            if after < 1:
                raise ValueError(f"Plan.replan_after_iterations must be >= 1, got {after}")
            n = min(n, after)
        return n

    def start_segment(self, now: float) -> float | None:
        """Plan at `now` and lay out the next segment; returns its end time (None if idle).

        Returns -retry_time when the policy asked to be woken at a later time while idle.
        """
        if self.ghost_decodes:
            self._end_batch_if_empty()  # e.g. after a preemption or migration emptied the instance
        plan = self._plan(now)
        cold = False
        if plan.admit:
            if not self.prefilling and not self.decoding:
                cold = self._invoke(plan, now)
            self._admit_all(plan, now)
        decode_list = self.decoding if plan.decodes is None else plan.decodes
        k = len(decode_list)
        stats = None
        if self._jit:
            stats = self._decode_stats
            decodes = stats[0]
        else:
            decodes = np.array(decode_list, dtype=np.int64) if k else _NO_DECODES
        chunks = [(int(rid), int(c)) for rid, c in plan.chunks.items() if c > 0] if plan.chunks else []
        if not chunks and k == 0:
            if self.changed:
                self.log.change_point(self, now)
            self._clear_segment()
            if plan.retry_at_s is not None and plan.retry_at_s > now:
                return -float(plan.retry_at_s)
            return None
        n = self._segment_iterations(plan, chunks, decodes, None if stats is None else stats[2])
        prefill = sum([c for _, c in chunks]) if chunks else 0  # real prompt tokens of an iteration (before padding)
        cost = plan.variant or self.cost
        layout = self._layout(chunks, decodes, None if stats is None else stats[1])
        consts = cost.roofline_consts() if self._jit and isinstance(cost, RooflineCost) else None
        if consts is not None:  # the compiled path: ends and rates in one call
            assert isinstance(cost, RooflineCost)  # consts come only from one
            if self._k_ends.shape[0] < n:
                self._grow_kernel_buffers(n)
            ends, rates, rows = self._k_ends, self._k_rates, self._k_rows  # the segment reads their first n entries
            extra_s = self._extra_s(plan, cold) if (
                cold or plan.variant is not None or self.swap is not None or self.encode is not None) else 0.0
            scales = self._scales.get(prefill + k) or self._rate_scales(prefill + k)
            first = kernels.roofline_segment(
                consts, cost.comm_s(float(layout[0] + layout[4])) if cost.tp > 1 else 0.0, now, extra_s,
                *layout, n, *scales, ends, rates)
            self._take_kernel_rates(rows)
        else:
            ends, first = self._segment_ends(plan, cost, layout, n, now, cold, prefill + k)
        # record the segment
        self.seg_n = n
        self.seg_done = 0
        self.seg_ends = ends
        self.seg_end_list = None
        self.seg_decodes = decodes
        self.seg_chunks = chunks
        self.seg_accuracy = -1 if plan.variant is None else round(plan.variant.accuracy * ACCURACY_SCALE)
        if k:
            r = self.reqs
            if r.n_clients == 1:
                self.seg_one_client = 0
            else:
                self.seg_decode_client_counts = np.bincount(r.client[decodes], minlength=r.n_clients)
                self.seg_clients = set(np.flatnonzero(self.seg_decode_client_counts).tolist())
                self.seg_one_client = -1
        # a timeline row at every change point and wherever the iteration's token counts change
        # (e.g. a prompt's last, partial chunk), so each row starts a run of identical iterations
        if self.changed or self._row_shape != (prefill, k):
            was_changed = self.changed
            self._row_shape = (prefill, k)
            self.log.timeline(self, now, prefill, k, len(chunks), first)
            if was_changed:
                self.log.change_point(self, now)
        return ends.item(n - 1)

    def _segment_ends(self, plan: Plan, cost: CostModel, layout: tuple[int, int, int, int, int, int, int], n: int, now: float, cold: bool,
                      tokens: int) -> tuple[np.ndarray, float]:
        """`start_segment` for a cost model other than the roofline (and for every model without
        Numba): the segment's iteration ends (an array, at least n long), and its first iteration's
        duration; sets the cost and energy rates (`kernels.segment_ends` when compiled, NumPy else)."""
        fast = getattr(cost, "segment_times", None)
        if fast is not None:
            times = fast(*layout, n)
            durations = np.array([times]) if n == 1 else times
        else:
            durations = np.asarray(cost.iteration_times(_affine_shape(*layout, n)), dtype=np.float64)
        extra_s = self._extra_s(plan, cold)
        if self._jit:  # the running sum and the rates in one call, into the instance's buffers
            if self._k_ends.shape[0] < n:
                self._grow_kernel_buffers(n)
            ends, rows = self._k_ends, self._k_rows
            first = kernels.segment_ends(np.ascontiguousarray(durations, dtype=np.float64), now, extra_s,
                                         *self._rate_scales(tokens), ends, self._k_rates)
            self._take_kernel_rates(rows)
            return ends, first
        if extra_s:
            durations = durations.copy()
            durations[0] += extra_s
        if n == 1:
            first = float(durations[0])
            ends = np.array([now + first])
        else:
            ends = np.empty(n + 1)
            ends[0] = now
            ends[1:] = durations
            np.cumsum(ends, out=ends)
            ends = ends[1:]
            first = float(durations[0])
        self._segment_rates(durations, tokens)
        return ends, first

    def _take_kernel_rates(self, rows: tuple[np.ndarray, ...]) -> None:
        """The segment's cost, energy and busy-time rates are the rows a kernel wrote (unless the
        instance has no price, or no power)."""
        self.seg_cost_pusd = rows[0] if self.usd_per_s > 0 else None
        if self.active_power_w > 0:
            self.seg_energy_nj = rows[1]
            self.seg_busy_ns = rows[2]

    def _grow_kernel_buffers(self, n: int) -> None:
        """Make this instance's buffers for `kernels.roofline_segment` (iteration ends; cost, energy
        and busy-time rates and their rows) at least n long; one segment uses them at a time."""
        cap = min(max(n, 2 * self._k_ends.shape[0], 64), MAX_SEGMENT_ITERATIONS)
        self._k_ends = np.empty(cap)
        self._k_rates = np.zeros((3, cap), dtype=np.int64)
        self._k_rows = (self._k_rates[0], self._k_rates[1], self._k_rates[2])

    def _admit_all(self, plan: Plan, now: float) -> None:
        """Admit the plan's requests, each with the plan's generation slice (if any)."""
        r = self.reqs
        for rid in plan.admit:
            self._admit(rid, now)
        if plan.slice_tokens is not None and plan.slice_tokens < 1:
            raise ValueError(f"Plan.slice_tokens must be >= 1, got {plan.slice_tokens}")
        for rid in plan.admit:
            if plan.slice_tokens is None:
                r.yield_at[rid] = NO_YIELD
                r.stop_at[rid] = r.output[rid]
            else:
                r.yield_at[rid] = r.generated[rid] + int(plan.slice_tokens)
                r.stop_at[rid] = min(r.output[rid], r.yield_at[rid])

    def _invoke(self, plan: Plan, now: float) -> bool:
        """A plan that admits requests on an idle instance is one invocation (serverless): count it
        and share its fee among them. Returns whether it is a cold start (first batch, or idle for
        longer than keep_alive_s, on an instance with a cold start)."""
        if not plan.admit or self.prefilling or self.decoding:
            return False
        self.invocations += 1
        fee = self.spec.price_per_invocation_usd
        if fee:
            self.reqs.cost_pusd[np.asarray(plan.admit, dtype=np.int64)] += round(fee * PUSD_PER_USD / len(plan.admit))
        return self.spec.cold_start_s > 0 and (
            self.iterations == 0 or now - self.last_iteration_end_s > self.spec.keep_alive_s)

    def _layout(self, chunks: list[tuple[int, int]], decodes: np.ndarray,
                ctx: int | None = None) -> tuple[int, int, int, int, int, int, int]:
        """The segment's iteration shapes, affine in the iteration index j, as integers
        (prefill tokens, sum of squared chunks, attention pairs and prefill context at j = 0, decode
        tokens, decode context at j = 0, requests): see `_affine_shape`. With `pad_batches` every
        chunk counts as long as the longest (a padded static batch), and the padding is recorded."""
        r = self.reqs
        # a static batch's invalid-token slots decode like the real decodes (decode_until_batch_ends)
        k = len(decodes) + self.ghost_decodes
        if ctx is None:  # else the decodes' computed tokens, summed by kernels.decode_stats
            ctx = int(r.computed[decodes].sum()) if len(decodes) else 0
        ctx0 = ctx + self.ghost_context_tokens
        sum_c = sum_c2 = pairs0 = pctx0 = 0
        if chunks:
            pad = self.spec.pad_batches
            cmax = max(c for _, c in chunks)
            self.seg_padding = cmax * len(chunks) - sum(c for _, c in chunks) if pad else 0
            computed = r.computed
            for rid, real in chunks:
                c = cmax if pad else real
                past = computed.item(rid)
                sum_c += c
                sum_c2 += c * c
                pairs0 += c * past + c * (c + 1) // 2
                pctx0 += past + c
        else:
            self.seg_padding = 0
        return sum_c, sum_c2, pairs0, pctx0, k, ctx0, k + len(chunks)

    def _extra_s(self, plan: Plan, cold: bool) -> float:
        """Seconds the segment's first iteration spends before the model runs: a model variant's
        actuation, pending swap copies (vLLM runs them first), the encoder for admitted images, a
        serverless cold start."""
        extra = 0.0
        if plan.variant is not None:
            if self.variant_name is not None and plan.variant.name != self.variant_name:
                extra += plan.variant.actuation_s  # switching models: load the new one first
            self.variant_name = plan.variant.name
        if self.swap is not None and self.swap.pending_s:
            extra += self.swap.take_pending_s()
        if self.encode is not None and plan.admit:
            extra += self._encode_s(plan.admit)
        if cold:
            extra += self.spec.cold_start_s
            self.cold_starts += 1
        return extra

    def _rate_scales(self, tokens: int) -> tuple[float, float]:
        """The factors `_segment_rates` multiplies durations by, for cost and energy (-1.0: none),
        remembered per token count."""
        scales = self._scales.get(tokens)
        if scales is None:
            scales = self._scales[tokens] = self._compute_rate_scales(tokens)
        return scales

    def _compute_rate_scales(self, tokens: int) -> tuple[float, float]:
        cost = self.usd_per_s * PUSD_PER_USD / tokens if self.usd_per_s > 0 else -1.0
        energy = -1.0
        if self.active_power_w > 0:
            energy = busy_power_w(self.spec.gpu, self.active_power_w, tokens) * NJ_PER_J / tokens
        return cost, energy

    def _segment_rates(self, durations: np.ndarray, tokens: int) -> None:
        """Per token of each iteration: GB-second cost (integer pico-dollars) and energy (integer
        nanojoules), plus busy time (integer ns); shares are split by the iteration's real tokens."""
        if self.usd_per_s > 0:
            self.seg_cost_pusd = np.rint(durations * (self.usd_per_s * PUSD_PER_USD / tokens)).astype(np.int64)
        if self.active_power_w > 0:
            power_w = busy_power_w(self.spec.gpu, self.active_power_w, tokens)  # llmsched.sim.energy
            self.seg_energy_nj = np.rint(durations * (power_w * NJ_PER_J / tokens)).astype(np.int64)
            self.seg_busy_ns = np.rint(durations * 1e9).astype(np.int64)

    def _encode_s(self, admitted: list[int]) -> float:
        """Seconds to encode the images of the admitted requests that are not embedded yet, as one
        encoder batch (0.0 if none). Embeddings are not kept: a request admitted again after a
        recompute preemption is encoded again (vLLM 0.6 has no encoder cache)."""
        r = self.reqs
        encode = self.encode
        assert encode is not None  # called only when this instance runs the encoder itself
        tiles = 0
        for rid in admitted:
            if not r.embedded[rid]:
                tiles += tiles_of(int(r.workload.image_tokens[rid]), encode)
        return encode_time_s(encode, tiles) if tiles else 0.0

    def _memory_horizon(self, decodes: np.ndarray) -> int:
        """Iterations the decodes can run before KV (free + evictable) runs out."""
        r = self.reqs
        bs = self.block_size
        first_new = (-(r.computed[decodes] - r.shared_tokens[decodes])) % bs  # iteration of 1st new block
        avail = self.pool.available_blocks
        k = len(decodes)
        rounds, rem = divmod(avail, k)
        return int(rounds * bs + np.sort(first_new)[rem])
