"""MuxServe's adaptive batch scheduling (ADBS) as a batching policy of the engine.

The engine runs one model per instance, so the LLMs colocated on a MuxServe mesh are represented
by the clients (tenants) of one instance: a request's LLM is its client id. Owns only ADBS's
decision state (per-client KV-block quotas, spare blocks, the next adaptation tick, the round-robin
pointer); per-request numbers are read from the view at every plan, and the quota rule itself lives
in `theory/kv_quota.py`, shared with `theory/placement/muxserve.py`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from llmsched.policies.batching._fair_common import kv_capacity_blocks, waiting_by_client
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.config import InstanceSpec
from llmsched.sim.errors import InputError
from llmsched.sim.params import declare, flag, number, numbers
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder
from llmsched.theory.kv_quota import (
    ADAPT_INTERVAL_S,
    adapt_quotas,
    initial_quotas,
    takers,
)

MIN_ADAPT_INTERVAL_S = 0.01  # ours: below this the policy re-plans nearly every iteration for nothing


@register(BATCHING, "muxserve-adbs")
class MuxServeADBS:
    """MuxServe ADBS (arXiv 2404.02015, `hao-ai-lab/MuxServe` scheduler.py): per-LLM (= per-client)
    KV-block quotas; prefills first, admitted round-robin across LLMs within their quotas; then the
    decodes of all LLMs in the same iteration; quotas adapt every `adapt_interval_s`.

    shares: one number per client, the quota split (MuxServe: rate × KV blocks per token, which on
            one model is the rate); None = the workload's client weights (equal by default).
    adapt_interval_s: seconds between adaptations (MuxServe: 8); adaptive=False keeps the initial
            quotas (MuxServe's fixed-quota variant).
    instance_spec: passed by the engine; gives the instance's KV capacity in blocks.

    A request reserves ceil((prompt + output) / block_size) blocks of its client's quota from
    admission to completion. A client with nothing running may admit its head request even beyond
    its quota (memory permitting), so no LLM can be starved by a quota smaller than one request.
    Adaptation happens at the first decision point at or after each multiple of the interval,
    applied to the quota state and reservations left by the previous decision; while an adaptation
    would move blocks the policy asks to be re-planned every iteration (or woken at the tick when
    idle), so fast-forward and step mode agree.
    """

    PARAMS = declare(shares=numbers(0, optional=True, doc="quota split, one per client"),
              adapt_interval_s=number(MIN_ADAPT_INTERVAL_S, doc="s between adaptations"), adaptive=flag())

    def __init__(self, shares: Sequence[float] | None = None, adapt_interval_s: float = ADAPT_INTERVAL_S,
                 adaptive: bool = True, instance_spec: InstanceSpec | None = None) -> None:
        if shares is not None:
            if isinstance(shares, (int, float)) and not isinstance(shares, bool):
                shares = (shares,)
            try:
                shares = tuple(float(s) for s in shares)
            except (TypeError, ValueError):
                raise ValueError(f"shares must be a list of numbers, one per client (e.g. shares=1,2), "
                                 f"got {shares!r}") from None
            if not shares or any(not (math.isfinite(s) and s >= 0) for s in shares) or sum(shares) <= 0:
                raise ValueError("shares must be finite numbers >= 0 with a positive sum, one per client")
        if instance_spec is None:
            raise ValueError("muxserve-adbs needs the instance spec (KV capacity in blocks)")
        self.shares = shares
        self.adapt_interval_s = float(adapt_interval_s)
        self.adaptive = bool(adaptive)
        self.total_blocks = int(kv_capacity_blocks(instance_spec))
        self.block_size = int(instance_spec.block_size)
        self.quota: dict[int, int] = {}  # client -> KV blocks its running requests may reserve
        self.spare = 0  # blocks lost to rounding, handed to a taker at the next adaptation
        self.last_client = -1  # client of the latest admission: round robin resumes after it
        self._tick = 1  # the next adaptation is due at _tick * adapt_interval_s
        self._snapshot: tuple[dict[int, int], dict[int, int]] = ({}, {})  # (used, backlog) after the last plan

    # -- quotas --------------------------------------------------------------------------------
    def _init_quotas(self, view: InstanceView) -> None:
        n = int(view.n_clients)
        if self.shares is None:
            weights = {c: view.client_weight(c) for c in range(n)}
        else:
            if len(self.shares) < n:
                raise InputError("batching_params", "shares",
                                 f"has {len(self.shares)} entries but the workload has {n} clients",
                                 "give one share per client (LLM)")
            weights = {c: self.shares[c] for c in range(n)}
        self.quota = initial_quotas(weights, self.total_blocks)
        self.spare = self.total_blocks - sum(self.quota.values())

    def blocks(self, view: InstanceView, rid: int) -> int:
        """The quota blocks request `rid` reserves: its whole prompt and output."""
        return -(-(view.prompt_tokens(rid) + view.output_tokens(rid)) // self.block_size)

    def adapted(self, used: dict[int, int], backlog: dict[int, int]) -> tuple[dict[int, int], int] | None:
        """Quotas and spare after one adaptation step on this state, or None if nothing moves.

        The shared rule (`kv_quota.adapt_quotas`) plus MuxServe's fragment rule (scheduler.py
        l.464-473: leftover blocks go to the LLM with the longest queue): the blocks lost to
        rounding, and the spare, go to the taker with the most backlog blocks (ties: lowest id).
        """
        new = adapt_quotas(self.quota, used, backlog)
        if new == self.quota:
            return None
        tk = takers(self.quota, used, backlog)
        lost = sum(self.quota.values()) - sum(new.values())
        new[max(tk, key=lambda u: (backlog[u], -u))] += lost + self.spare
        return new, 0

    def _catch_up(self, now: float) -> None:
        """Apply every adaptation tick at or before `now` to the state the last plan left."""
        if not self.adaptive:
            return
        interval = self.adapt_interval_s
        used, backlog = self._snapshot
        while self._tick * interval <= now:
            step = self.adapted(used, backlog)
            if step is None:  # the state cannot change before the next decision: skip the ticks
                k = max(self._tick, int(now // interval) - 1)
                while k * interval <= now:
                    k += 1
                self._tick = k
                return
            self.quota, self.spare = step
            self._tick += 1

    # -- hooks ---------------------------------------------------------------------------------
    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        self.last_client = view.client(rid)

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, view: InstanceView) -> Plan:
        if not self.quota:
            self._init_quotas(view)
        self._catch_up(view.now)
        used = dict.fromkeys(self.quota, 0)
        for rid in (*view.prefilling, *view.decoding):
            c = view.client(rid)
            used[c] = used.get(c, 0) + self.blocks(view, rid)
        queues = waiting_by_client(view)
        backlog = {u: sum(self.blocks(view, r) for r in q) for u, q in queues.items()}
        b = PlanBuilder(view)
        for rid in view.prefilling:  # prefill jobs first (MuxServe schedules prefill before decode)
            b.chunk(rid)
        if queues and view.admission_open:
            self._admit_round_robin(b, view, queues, used, backlog)
        b.decode_all()
        self._snapshot = (used, backlog)
        plan = b.plan()
        if self.adaptive and self.adapted(used, backlog) is not None:
            if plan.empty:
                plan.retry_at_s = self._tick * self.adapt_interval_s
            else:
                plan.replan_each_iteration = True
        return plan

    def _admit_round_robin(self, b: PlanBuilder, view: InstanceView, queues: dict[int, list[int]],
                           used: dict[int, int], backlog: dict[int, int]) -> None:
        """One admission per client in turn, starting after the last admitted client; a client
        drops out at its first head that exceeds its quota or does not fit (no skipping within a
        client). Quota and memory misfits persist until the next change point, so the plan is
        stable."""
        order = sorted(queues)
        heads = dict.fromkeys(order, 0)
        active = set(order)
        i = bisect.bisect_right(order, self.last_client)
        while active and b.budget_left >= 1 and b.slots_left >= 1:
            u = order[i % len(order)]
            i += 1
            if u not in active:
                continue
            rid = queues[u][heads[u]]
            need = self.blocks(view, rid)
            over_quota = used.get(u, 0) > 0 and used.get(u, 0) + need > self.quota.get(u, 0)
            if over_quota or not b.admit(rid):
                active.discard(u)
                continue
            used[u] = used.get(u, 0) + need
            backlog[u] -= need
            heads[u] += 1
            if heads[u] == len(queues[u]):
                active.discard(u)
