"""Pure-locality batching baselines from SGLang `python/sglang/srt/managers/schedule_policy.py`:
LPM (longest prefix match first) and DFS-weight (waiting requests grouped by prefix subtree).

Owns only the queue orderings (LPM's kept incrementally by `waiting_queues.PrefixQueues`; `lpm_order`
states it on a list); admission stops at the first request that does not fit, as
SGLang's `PrefillAdder` does when the KV budget runs out. We do not copy SGLang's FCFS fallback
for queues longer than 128 (a cost cut, not part of the policy) nor its in-batch deprioritisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from llmsched.policies.batching._fair_common import (
    ADMISSION_MODES,
    DEFAULT_ADMISSION,
    GUARD_LOOKAHEAD,
    Admitter,
)
from llmsched.policies.batching.waiting_queues import PrefixQueues, QueueHooks, SubtreeQueues
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, one_of
from llmsched.sim.policy_api import InstanceView, Plan
from llmsched.sim.radix import ROOT, RadixTree


def lpm_order(view: InstanceView, rids: Sequence[int]) -> list[int]:
    """Stable sort by cached prefix length, longest first (ties keep arrival order)."""
    return sorted(rids, key=lambda r: -view.cached_prefix_tokens(r))


def dfs_weight_order(view: InstanceView, rids: Sequence[int]) -> list[int]:
    """SGLang's DFS-weight: build the tree of the requests' prefix block paths, weight each node by
    the waiting requests at or below it, visit children by descending weight and emit a node's
    own requests after its children. Needs `view.prefix_hashes(rid)`; without it the order falls
    back to LPM (documented in docs/theory/fairness.md)."""
    hashes = getattr(view, "prefix_hashes", None)
    if hashes is None:
        return lpm_order(view, rids)
    tree = RadixTree()
    weight: dict[int, int] = {ROOT: 0}  # waiting requests at or below each node
    own: dict[int, list[int]] = {ROOT: []}  # requests whose path ends at the node
    kids: dict[int, list[int]] = {ROOT: []}  # children in creation order
    for r in rids:
        node = ROOT
        weight[ROOT] += 1
        for h in hashes(r):
            child = tree.child(node, h)
            if child is None:
                child = tree.add(node, h)
                weight[child], own[child], kids[child] = 0, [], []
                kids[node].append(child)
            node = child
            weight[node] += 1
        own[node].append(r)
    out: list[int] = []
    stack: list[int | list[int]] = [ROOT]
    while stack:  # iterative post-order: children (heaviest first), then the node's own requests
        item = stack.pop()
        if isinstance(item, list):
            out.extend(item)
            continue
        stack.append(own[item])
        children = sorted(kids[item], key=weight.__getitem__)
        stack.extend(children)  # heaviest popped first
    return out


class _Ordered:
    order = staticmethod(lpm_order)

    PARAMS = declare(admission=one_of(*ADMISSION_MODES, doc="engine, reserve (prompt + output KV reserved) or peak"))

    def __init__(self, admission: str = DEFAULT_ADMISSION, instance_spec: Any = None) -> None:
        self.admitter = Admitter(admission, instance_spec)

    def ordered(self, view: InstanceView) -> Iterator[int]:
        """The waiting requests in admission order (a pass over the whole queue here; kept
        incrementally by the subclasses that have a `waiting_queues` structure)."""
        return iter(self.order(view, list(view.waiting)))

    #: whether the order moves only at change points. Then a plan that stops at a misfit needs no
    #: stability guard (`Admitter.guard`): the misfit stays one until the next change point
    #: (reservations are fixed, free memory only shrinks) and stays first, so asked again before
    #: then the plan is this one ("peak" admission, whose test loosens as requests decode, asks
    #: again each iteration itself, in `Admitter.fits`). LPM's and DFS-weight's orders read only
    #: the prefix cache, which changes at change points; Preble's rotating turn moves with its own
    #: admissions, so it keeps the guard.
    order_moves_only_at_change_points = False

    def plan(self, view: InstanceView) -> Plan:
        a = self.admitter
        b = a.start(view)
        if view.waiting and view.admission_open:
            order = self.ordered(view)
            for rid in order:
                if not a.admit(b, view, rid):
                    if not self.order_moves_only_at_change_points:
                        a.guard(b, view, islice(order, GUARD_LOOKAHEAD))
                    break
        return b.plan()


class _Incremental(QueueHooks, _Ordered):
    """`_Ordered` with the order kept incrementally by a `waiting_queues` structure."""

    def __init__(self, admission: str = DEFAULT_ADMISSION, instance_spec: Any = None) -> None:
        super().__init__(admission, instance_spec)
        self.queue = self.new_queue()

    def new_queue(self) -> Any:
        raise NotImplementedError

    def ordered(self, view: InstanceView) -> Iterator[int]:
        raise NotImplementedError


@register(BATCHING, "lpm")
class LPM(_Incremental):
    """LPM (SGLang): admit waiting requests with the longest cached prefix first."""

    order_moves_only_at_change_points = True

    def new_queue(self) -> PrefixQueues:
        return PrefixQueues()  # `lpm_order`, kept incrementally

    def ordered(self, view: InstanceView) -> Iterator[int]:
        return iter(self.queue.lpm(view))


@register(BATCHING, "dfs-weight")
class DFSWeight(_Incremental):
    """DFS-weight (SGLang): admit requests subtree by subtree of the prefix tree, heaviest first."""

    order_moves_only_at_change_points = True

    def new_queue(self) -> SubtreeQueues:
        return SubtreeQueues()  # `dfs_weight_order`, kept incrementally

    def ordered(self, view: InstanceView) -> Iterator[int]:
        return self.queue.dfs_weight(view)
