"""SLAI (SLO-Aware LLM Inference) batching, as in its authors' code (`agrimUT/SLAI`).

Rule from `sarathi/core/scheduler/slai_scheduler.py` (`SLAIScheduler._schedule`, commit 5098a7a)
and defaults from `sarathi/config.py` / `sarathi/benchmark/config/default.yml`; paper arXiv
2508.01002. Decisions depend on the clock, so every plan asks to be replanned each iteration
(`Plan.replan_each_iteration`), which keeps fast-forward equal to step mode. Owns its decision
state only (last schedulable times, the running mean batch duration); the waiting queue in
shortest-prompt order is kept incrementally by `waiting_queues.SortedQueue`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from llmsched.policies.batching.waiting_queues import QueueHooks, SortedQueue
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, flag, integer, number
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder

# Defaults of SLAISchedulerConfig / default.yml in agrimUT/SLAI (notes/throughput_placement.md §1.3).
TOKEN_BUDGET = 512
LIMIT_TOTAL_DECODES = 128
TIME_BETWEEN_TOKENS_S = 0.2
BELOW_MEMORY_LIMIT_OFFSET = 5.0
ABOVE_MEMORY_LIMIT_OFFSET = 10.0
MEMORY_LIMIT = 0.96


@register(BATCHING, "slai")
class SLAI(QueueHooks):
    """SLAI: time-critical decodes by last schedulable time, paused prefills, new prefills
    shortest-prompt-first (paid tier first if `user_priority`), then non-critical decodes.

    A decode's last schedulable time is LST = (end of the batch that produced its last token)
    + TBT − offset · (mean batch duration so far); it is critical once now ≥ LST. offset is
    `below_memory_limit_offset` (5) or, when KV use ≥ `memory_limit` (0.96) at that batch end,
    `above_memory_limit_offset` (10); `fixed_offset` keeps the first. TBT is the request's
    `tbt_slo_s` when finite, else `time_between_tokens_s` (0.2 s). `token_budget` (512) and
    `limit_total_decodes` (128) bound each batch; `max_active_requests` (None = no limit besides
    the engine's) stops admissions like SLAI's `max_num_seqs`; `fcfs=True` admits in arrival order.
    Paid tier (`user_priority`): requests whose TBT is below `time_between_tokens_s`.
    KV preemption is the engine's (latest admitted first), not SLAI's paused-prefill-first rule.
    """

    PARAMS = declare(token_budget=integer(1), limit_total_decodes=integer(0),
              time_between_tokens_s=number(0, low_open=True, doc="TBT deadline, s"),
              below_memory_limit_offset=number(0, doc="offset in mean batch durations"),
              above_memory_limit_offset=number(0, doc="offset in mean batch durations"),
              memory_limit=number(0, 1, low_open=True, doc="KV fraction"), fixed_offset=flag(),
              fcfs=flag(), user_priority=flag(), max_active_requests=integer(1, optional=True))

    def __init__(self, token_budget: int = TOKEN_BUDGET, limit_total_decodes: int = LIMIT_TOTAL_DECODES,
                 time_between_tokens_s: float = TIME_BETWEEN_TOKENS_S,
                 below_memory_limit_offset: float = BELOW_MEMORY_LIMIT_OFFSET,
                 above_memory_limit_offset: float = ABOVE_MEMORY_LIMIT_OFFSET,
                 memory_limit: float = MEMORY_LIMIT, fixed_offset: bool = False, fcfs: bool = False,
                 user_priority: bool = False, max_active_requests: int | None = None) -> None:
        self.token_budget = int(token_budget)
        self.limit_total_decodes = int(limit_total_decodes)
        self.time_between_tokens_s = float(time_between_tokens_s)
        self.below_offset = float(below_memory_limit_offset)
        self.above_offset = float(above_memory_limit_offset)
        self.memory_limit = float(memory_limit)
        self.fixed_offset = bool(fixed_offset)
        self.fcfs = bool(fcfs)
        self.user_priority = bool(user_priority)
        self.max_active_requests = None if max_active_requests is None else int(max_active_requests)
        # decision state
        self._lst: dict[int, tuple[float, float]] = {}  # rid -> (last token time it was set for, LST)
        self._mean_batch_s = 0.0
        self._batches_seen = 0
        self._plan_time = -math.inf  # time of the latest plan call
        self._plan_ran = False  # whether the latest plan at that time runs a batch
        self.queue = SortedQueue(self._new_prefill_key)  # waiting requests, new-prefill order

    # -- measurements ------------------------------------------------------------------------
    def _observe(self, now: float) -> None:
        """A plan that ran a batch is followed by the next call exactly at that batch's end
        (replan_each_iteration), so the gap is the batch duration (SLAI's set_last_batch_times)."""
        if now > self._plan_time:
            if self._plan_ran:
                dur = now - self._plan_time
                self._batches_seen += 1
                self._mean_batch_s += (dur - self._mean_batch_s) / self._batches_seen
            self._plan_time = now
            self._plan_ran = False

    def _tbt(self, view: InstanceView, rid: int) -> float:
        tbt = view.tbt_slo_s(rid)
        return tbt if math.isfinite(tbt) and tbt > 0 else self.time_between_tokens_s

    def _offset(self, view: InstanceView) -> float:
        if self.fixed_offset:
            return self.below_offset
        used = 1.0 - view.kv_free_fraction()
        return self.above_offset if used >= self.memory_limit else self.below_offset

    def _decode_queue(self, view: InstanceView) -> list[tuple[float, float, int]]:
        """(LST, arrival, rid) for every decoding request; LSTs are set when a token is produced."""
        offset = None
        out = []
        lst = self._lst
        for rid in view.decoding:
            last = view.last_token_s(rid)
            entry = lst.get(rid)
            if entry is None or entry[0] != last:
                if offset is None:
                    offset = self._offset(view)
                entry = (last, last + self._tbt(view, rid) - offset * self._mean_batch_s)
                lst[rid] = entry
            out.append((entry[1], view.arrival_s(rid), rid))
        if len(lst) > 4 * len(out) + 64:  # forget finished requests
            keep = set(view.decoding)
            self._lst = {r: e for r, e in lst.items() if r in keep}
        heapq.heapify(out)
        return out

    def _new_prefill_key(self, view: InstanceView, rid: int) -> tuple[int, ...]:
        """Shortest prompt first (paid tier first with `user_priority`); ties in queue order."""
        if self.user_priority:
            return (0 if self._tbt(view, rid) < self.time_between_tokens_s else 1, view.prompt_tokens(rid))
        return (view.prompt_tokens(rid),)

    def _new_prefill_order(self, view: InstanceView) -> Iterable[int]:
        return view.waiting if self.fcfs else self.queue.ordered(view)

    # -- the rule ------------------------------------------------------------------------------
    def plan(self, view: InstanceView) -> Plan:
        now = view.now
        self._observe(now)
        queue = self._decode_queue(view)
        b = PlanBuilder(view, self.token_budget)
        b.replan_each_iteration = True
        limit = self.limit_total_decodes
        n_dec = 0
        # 1. time-critical decodes, in LST order
        while queue and n_dec < limit and b.budget_left > 0 and now >= queue[0][0]:
            _, _, rid = heapq.heappop(queue)
            if not b.decode(rid):
                break
            n_dec += 1
        # 2. paused (started) prefills, in the order they were first scheduled
        for rid in view.prefilling:
            if b.budget_left < 1:
                break
            b.chunk(rid)
        # 3. new prefills, shortest prompt first (paid tier first), while KV and slots allow
        active = len(view.prefilling) + len(view.decoding)
        for rid in self._new_prefill_order(view):
            if b.budget_left < 1:
                break
            if self.max_active_requests is not None and active >= self.max_active_requests:
                break
            if not b.admit(rid):
                break
            active += 1
        # 4. non-critical decodes fill the rest, still in LST order
        while queue and n_dec < limit and b.budget_left > 0:
            _, _, rid = heapq.heappop(queue)
            if not b.decode(rid):
                break
            n_dec += 1
        plan = b.plan()
        self._plan_ran = bool(plan.chunks) or bool(plan.decodes)
        return plan
