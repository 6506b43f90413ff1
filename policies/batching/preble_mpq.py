"""Preble's local scheduler "fcfs-mpq" (`WukLab/preble`, Preble's SGLang fork
`python/sglang/srt/managers/router/model_rpc.py`; notes/fairness_locality.md §3.4): waiting
requests fall into 10 priority groups by prefix-cache hit ratio; groups are served from the
highest down, group g admitting at most (g + 1)·k requests per step (k = 10), FCFS inside a group.
With `rotate`, as the artifact's fork runs it (`get_new_fill_batch_v2`, model_rpc.py l. 470-493, and
`get_schedule_group`, l. 790-801): one group per step, visited round-robin from group 9 down to 0
(empty groups skipped), so cold requests get a turn at least every 10 steps. Ours moves to the next
group only after a step that admitted from the current one (a plan that admits nothing changes no
state, which keeps fast-forward equal to step mode); off by default.

Owns only the ordering; admission stops at the first request that does not fit (as `lpm`).
`mpq_order` and `PrebleMPQ.order` state the order on a list of requests; the policy keeps the
groups incrementally (`waiting_queues.BucketQueues`), so a plan does not pass over the whole queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from llmsched.policies.batching.lpm import _Incremental
from llmsched.policies.batching.waiting_queues import BucketQueues
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, flag, integer
from llmsched.sim.policy_api import InstanceView, Plan

N_GROUPS, K = 10, 10  # [CODE] "tune k to trade off between cache hit and fairness"


def hit_group(cached_tokens: int, prefill_tokens: int, n_groups: int = N_GROUPS) -> int:
    """0 for a hit ratio of 0, else ceil(n_groups · hit_ratio) − 1 (hit ratio = cached / prefill)."""
    if prefill_tokens <= 0 or cached_tokens <= 0:
        return 0
    return min(-(-n_groups * cached_tokens // prefill_tokens) - 1, n_groups - 1)  # exact integer ceil


def group_of(view: InstanceView, rid: int, n_groups: int = N_GROUPS) -> int:
    """The priority group of a waiting request, from its prefix-cache hit ratio now."""
    return hit_group(view.cached_prefix_tokens(rid), view.remaining_prefill(rid), n_groups)


def mpq_order(view: InstanceView, rids, k: int = K, n_groups: int = N_GROUPS) -> list[int]:
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    for r in rids:
        groups[group_of(view, r, n_groups)].append(r)
    out: list[int] = []
    for g in range(n_groups - 1, -1, -1):
        out.extend(groups[g][: (g + 1) * k])
    return out


@register(BATCHING, "preble-mpq")
class PrebleMPQ(_Incremental):
    """Preble fcfs-mpq: 10 hit-ratio groups served highest first, group g admitting ≤ (g+1)·k
    per step (k = 10), FCFS within a group."""

    PARAMS = declare(k=integer(1, doc="admissions per group step"),
                     rotate=flag(doc="one group per step, round-robin 9 -> 0 (the artifact's fork)"))

    def __init__(self, k: int = K, rotate: bool = False, admission: str = "engine", instance_spec: Any = None) -> None:
        super().__init__(admission, instance_spec)
        self.k = int(k)
        self.rotate = bool(rotate)
        self.turn = N_GROUPS - 1  # the group whose turn it is (rotate only)
        self.picked: int | None = None

    def new_queue(self) -> BucketQueues:
        return BucketQueues(hit_group, N_GROUPS)

    def order(self, view: InstanceView, rids) -> list[int]:
        """The order on a list of requests (the statement `ordered` keeps incrementally)."""
        if not self.rotate:
            return mpq_order(view, rids, self.k)
        groups: list[list[int]] = [[] for _ in range(N_GROUPS)]
        for r in rids:
            groups[group_of(view, r)].append(r)
        for step in range(N_GROUPS):
            g = (self.turn - step) % N_GROUPS
            if groups[g]:
                self.picked = g
                return groups[g][: (g + 1) * self.k]
        return []

    def ordered(self, view: InstanceView) -> Iterator[int]:
        groups = self.queue
        groups.refresh(view)
        if not self.rotate:  # every group, highest first, group g at most (g + 1)·k
            return chain.from_iterable(groups.head(g, (g + 1) * self.k) for g in range(N_GROUPS - 1, -1, -1))
        for step in range(N_GROUPS):  # the first non-empty group from the one whose turn it is
            g = (self.turn - step) % N_GROUPS
            if groups.size(g):
                self.picked = g
                return iter(groups.head(g, (g + 1) * self.k))
        return iter(())

    def plan(self, view: InstanceView) -> Plan:
        self.picked = None
        plan = super().plan(view)
        if self.picked is not None and plan.admit:
            self.turn = (self.picked - 1) % N_GROUPS
        return plan
