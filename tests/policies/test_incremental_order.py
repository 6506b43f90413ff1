"""Issue 13 item 1: the admission orders kept incrementally (`policies/batching/waiting_queues.py`)
decide exactly as the per-plan passes over the whole waiting queue they replaced.

The replaced code lives on here as the reference (`_Reference*`: the policies' plan and hook
methods as they were at main 4e9c5b9, reading `view.waiting` at every call). Each property runs a
drawn scenario twice, once with the reference methods patched in and once as shipped, and asserts
the two runs record the same numbers bit for bit: every admission at the same instant in the same
order, hence the same tables. Drawn scenarios have arrival ties, counter ties, shared prefixes from
a small alphabet, KV barely above one request (so "engine" admission preempts, which re-queues a
request without a hook and exercises the rebuild), admission cadence, several instances and
routers that migrate. `test_negative_control_a_wrong_tie_break_is_caught` shows the comparison
can fail; the last test checks the queues' rebuild on hook-less changes directly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching import dlpm, lpm, preble_mpq, rpm, slai, vtc, vtc_variants
from llmsched.policies.batching._fair_common import GUARD_LOOKAHEAD, waiting_by_client
from llmsched.policies.batching.lpm import dfs_weight_order, lpm_order
from llmsched.policies.routing import d2lpm
from llmsched.sim.config import ClusterSpec, freeze_params
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder
from llmsched.sim.run import simulate
from llmsched.testing import assert_same_run, clusters, cost_models, workloads


# ------------------------------------------------------------------ the reference (old) methods
def _ref_vtc_on_arrival(self, rid: int, view: InstanceView) -> None:
    u = view.client(rid)
    others: set[int] = set()
    for r in view.waiting:
        if r == rid:
            continue
        c = view.client(r)
        if c == u:
            return
        others.add(c)
    if self.lift == "none":
        return
    if others:
        target = min(self.counter(view, v) for v in others)
    elif self.lift == "paper" and self.last_left[1]:
        target = max(self.counter(view, v) for v in self.last_left[1])
    else:
        return
    own = self.counter(view, u)
    if own < target:
        self.offset[u] = self.offset.get(u, 0.0) + target - own


def _ref_vtc_on_leave_queue(self, rid: int, view: InstanceView) -> None:
    n, clients = self.last_left
    if n != self._plans:
        self.last_left = (self._plans, {view.client(rid)})
    else:
        clients.add(view.client(rid))


def _ref_vtc_plan(self, view: InstanceView) -> Plan:
    self._plans += 1
    a = self.admitter
    b = a.start(view)
    queues = waiting_by_client(view)
    if not queues or not view.admission_open:
        return b.plan()
    counters = {u: self.counter(view, u) for u in queues}
    heads = dict.fromkeys(queues, 0)
    while queues:
        u = min(queues, key=lambda c: (counters[c], view.arrival_s(queues[c][heads[c]]), c))
        rid = queues[u][heads[u]]
        if not a.admit(b, view, rid):
            a.guard(b, view, [q[heads[c]] for c, q in queues.items() if c != u])
            break
        counters[u] += self.dispatch_charge(view, rid) / self._weight(view, u)
        heads[u] += 1
        if heads[u] == len(queues[u]):
            del queues[u]
    return b.plan()


def _ref_dlpm_on_arrival(self, rid: int, view: InstanceView) -> None:
    u = view.client(rid)
    if any(view.client(r) == u for r in view.waiting if r != rid):
        return
    self.granted[u] = self.service(view, u) + self.quantum


def _ref_dlpm_plan(self, view: InstanceView) -> Plan:
    a = self.admitter
    b = a.start(view)
    if not view.waiting or not view.admission_open:
        return b.plan()
    remaining = lpm_order(view, list(view.waiting))
    q = {view.client(r): self.deficit(view, view.client(r)) for r in remaining}
    while remaining:
        skipped: list[int] = []
        for i, rid in enumerate(remaining):
            u = view.client(rid)
            if q[u] <= 0:
                skipped.append(rid)
                continue
            if not a.admit(b, view, rid):
                a.guard(b, view, (skipped + remaining[i + 1:])[:GUARD_LOOKAHEAD])
                return b.plan()
            q[u] -= self.w_p * (view.prompt_tokens(rid) - view.cached_prefix_tokens(rid))
        remaining = skipped
        if not remaining:
            break
        active = {view.client(r) for r in remaining}
        k = min(math.floor(-q[c] / self.quantum) + 1 for c in active)
        for c in active:
            self.granted[c] = self.granted.get(c, 0.0) + k * self.quantum
            q[c] += k * self.quantum
    return b.plan()


def _ref_lpm_plan(self, view: InstanceView) -> Plan:
    a = self.admitter
    b = a.start(view)
    if view.waiting and view.admission_open:
        order = lpm_order(view, list(view.waiting))
        for i, rid in enumerate(order):
            if not a.admit(b, view, rid):
                a.guard(b, view, order[i + 1:i + 1 + GUARD_LOOKAHEAD])
                break
    return b.plan()


def _ref_dfs_plan(self, view: InstanceView) -> Plan:
    a = self.admitter
    b = a.start(view)
    if view.waiting and view.admission_open:
        order = dfs_weight_order(view, list(view.waiting))
        for i, rid in enumerate(order):
            if not a.admit(b, view, rid):
                a.guard(b, view, order[i + 1:i + 1 + GUARD_LOOKAHEAD])
                break
    return b.plan()


def _ref_preble_plan(self, view: InstanceView) -> Plan:
    self.picked = None
    a = self.admitter
    b = a.start(view)
    if view.waiting and view.admission_open:
        order = self.order(view, list(view.waiting))
        for i, rid in enumerate(order):
            if not a.admit(b, view, rid):
                a.guard(b, view, order[i + 1:i + 1 + GUARD_LOOKAHEAD])
                break
    plan = b.plan()
    if self.picked is not None and plan.admit:
        self.turn = (self.picked - 1) % preble_mpq.N_GROUPS
    return plan


def _ref_d2lpm_deficit(self, view, u: int, w: int) -> float:
    s = view.instance(w)
    served = self.w_p * (s.input_service(u) - s.cached_input_service(u)) + self.w_q * s.output_service(u)
    pend = self.pending.get((u, w))
    owed = 0.0
    if pend:
        pend[:] = [(r, c) for r, c in pend if not view.charged(r)]
        owed = sum(c for _, c in pend)
    return self.granted.get((u, w), 0.0) - served - owed


def _ref_d2lpm_route(self, rid: int, view) -> int:
    from llmsched.policies.routing.d2lpm import queue_key
    from llmsched.sim.prefix_index import prompt_blocks

    now = view.now
    self.feed.poll(view, self.index, now)
    u = view.client(rid)
    n = view.n_instances
    blocks = prompt_blocks(view, rid)
    match = self.index.match_per_tenant(blocks)
    d = [self.deficit(view, u, w) for w in range(n)]
    if all(x <= 0 for x in d):
        self.refills += 1
        for w in range(n):
            self.granted[(u, w)] = self.granted.get((u, w), 0.0) + self.quantum
            d[w] += self.quantum
    avail = [w for w in range(n) if d[w] > 0] or list(range(n))
    longest = max(match.get(w, 0) for w in avail)
    j = min((x for x in avail if match.get(x, 0) == longest), key=lambda x: queue_key(view.instance(x), x))
    cached = min(match.get(j, 0) * view.hash_block_tokens, view.prompt_tokens(rid))
    self.pending.setdefault((u, j), []).append((rid, self.w_p * (view.prompt_tokens(rid) - cached)))
    self.index.insert(blocks, j, now)
    return j


def _no_hook(self, rid: int, view: InstanceView) -> None:
    pass


def _ref_rpm_on_leave_queue(self, rid: int, view: InstanceView) -> None:
    self.admitted.setdefault(view.client(rid), deque()).append(view.now)


def _ref_rpm_plan(self, view: InstanceView) -> Plan:
    b = self.admitter.start(view)
    now = view.now
    held: set[int] = set()
    if view.admission_open:
        for rid in view.waiting:
            q = self._recent(view.client(rid), now)
            if len(q) + sum(1 for r in b.admitted if view.client(r) == view.client(rid)) >= self.limit:
                held.add(view.client(rid))
                continue
            if not self.admitter.admit(b, view, rid):
                break
    if held:  # the wake rule of the fixed RPM (a held client's oldest admission expiring); this
        # reference checks the admission order, not the wake
        b.replan_each_iteration = True
        wake = [self._expiry(self._recent(c, now)[0]) for c in held if self._recent(c, now)]
        b.retry_at_s = min(wake) if wake else None
    return b.plan()


def _ref_slai_new_prefill_order(self, view: InstanceView) -> list[int]:
    waiting = list(view.waiting)
    if self.fcfs:
        return waiting
    pos = {rid: i for i, rid in enumerate(waiting)}
    if self.user_priority:
        def key(r):
            return (0 if self._tbt(view, r) < self.time_between_tokens_s else 1, view.prompt_tokens(r), pos[r])
    else:
        def key(r):
            return (view.prompt_tokens(r), pos[r])
    return sorted(waiting, key=key)


def _ref_slai_plan(self, view: InstanceView) -> Plan:
    import heapq

    now = view.now
    self._observe(now)
    queue = self._decode_queue(view)
    b = PlanBuilder(view, self.token_budget)
    b.replan_each_iteration = True
    limit = self.limit_total_decodes
    n_dec = 0
    while queue and n_dec < limit and b.budget_left > 0 and now >= queue[0][0]:
        _, _, rid = heapq.heappop(queue)
        if not b.decode(rid):
            break
        n_dec += 1
    for rid in view.prefilling:
        if b.budget_left < 1:
            break
        b.chunk(rid)
    active = len(view.prefilling) + len(view.decoding)
    for rid in _ref_slai_new_prefill_order(self, view):
        if b.budget_left < 1:
            break
        if self.max_active_requests is not None and active >= self.max_active_requests:
            break
        if not b.admit(rid):
            break
        active += 1
    while queue and n_dec < limit and b.budget_left > 0:
        _, _, rid = heapq.heappop(queue)
        if not b.decode(rid):
            break
        n_dec += 1
    plan = b.plan()
    self._plan_ran = bool(plan.chunks) or bool(plan.decodes)
    return plan


# each policy name -> the (class, method name, reference) patches that restore the old code
_VTC = [(vtc.VirtualTokenCounter, "plan", _ref_vtc_plan), (vtc.VirtualTokenCounter, "on_arrival", _ref_vtc_on_arrival),
        (vtc.VirtualTokenCounter, "on_leave_queue", _ref_vtc_on_leave_queue)]
REFERENCE: dict[str, list[tuple[type, str, Any]]] = {
    "vtc": _VTC, "vtc-weighted": _VTC, "lcf": _VTC, "vtc-nolift": _VTC,
    "vtc-predict": _VTC, "vtc-oracle": _VTC, "vtc-h": _VTC,
    "dlpm": [(dlpm.DLPM, "plan", _ref_dlpm_plan), (dlpm.DLPM, "on_arrival", _ref_dlpm_on_arrival),
             (dlpm.DLPM, "on_leave_queue", _no_hook)],
    "lpm": [(lpm.LPM, "plan", _ref_lpm_plan), (lpm.LPM, "on_arrival", _no_hook),
            (lpm.LPM, "on_leave_queue", _no_hook)],
    "dfs-weight": [(lpm.DFSWeight, "plan", _ref_dfs_plan), (lpm.DFSWeight, "on_arrival", _no_hook),
                   (lpm.DFSWeight, "on_leave_queue", _no_hook)],
    "rpm": [(rpm.RPM, "plan", _ref_rpm_plan), (rpm.RPM, "on_leave_queue", _ref_rpm_on_leave_queue),
            (rpm.RPM, "on_arrival", _no_hook)],
    "slai": [(slai.SLAI, "plan", _ref_slai_plan), (slai.SLAI, "on_arrival", _no_hook),
             (slai.SLAI, "on_leave_queue", _no_hook)],
    "d2lpm-router": [(d2lpm.D2LPM, "route", _ref_d2lpm_route), (d2lpm.D2LPM, "deficit", _ref_d2lpm_deficit)],
    "preble-mpq": [(preble_mpq.PrebleMPQ, "plan", _ref_preble_plan), (preble_mpq.PrebleMPQ, "on_arrival", _no_hook),
                   (preble_mpq.PrebleMPQ, "on_leave_queue", _no_hook)],
}
assert vtc_variants  # the variants register their names on import


@contextmanager
def reference(name: str) -> Iterator[None]:
    """The old methods of `name`'s class patched in for the duration."""
    with ExitStack() as stack:
        for cls, attr, fn in REFERENCE[name]:
            stack.enter_context(mock.patch.object(cls, attr, fn, create=True))
        yield


PARAMS: dict[str, list[dict[str, Any]]] = {
    "vtc": [{}, {"admission": "engine"}, {"admission": "peak"}, {"lift": "artifact"}],
    "vtc-weighted": [{}], "lcf": [{"admission": "engine"}], "vtc-nolift": [{}],
    "vtc-predict": [{}, {"initial_prediction": 8.0}], "vtc-oracle": [{"rho": 0.5}], "vtc-h": [{}],
    "dlpm": [{}, {"quantum": 8.0}, {"quantum": 64.0, "admission": "engine"}, {"quantum": math.inf},
             {"admission": "peak"}],
    "lpm": [{}, {"admission": "engine"}], "dfs-weight": [{}, {"admission": "engine"}],
    "rpm": [{"limit": 2, "window_s": 0.5}, {"limit": 1, "window_s": 3.0, "admission": "engine"}],
    "slai": [{}, {"user_priority": True}, {"fcfs": True}],
    "preble-mpq": [{}, {"k": 1}, {"k": 1, "rotate": True}, {"rotate": True, "admission": "engine"}],
}
ROUTERS = ["round-robin", "least-outstanding-tokens", "d2lpm", "llumnix"]


@st.composite
def side_by_side(draw: st.DrawFn, names: list[str]) -> tuple[Any, ClusterSpec, Any, str]:
    w = draw(workloads(max_requests=30, max_clients=4, prefixes=draw(st.sampled_from([True, True, None]))))
    name = draw(st.sampled_from(names))
    params = draw(st.sampled_from(PARAMS[name]))
    if name == "slai":
        params = dict(params, token_budget=draw(st.sampled_from([8, 64, 512])))
    cluster = draw(clusters(w, [name], ROUTERS, allow_pd=False, max_instances=2))
    inst = tuple(replace(s, batching_params=freeze_params(params)) for s in cluster.instances)
    return w, replace(cluster, instances=inst), draw(cost_models()), name


def _both(w, cluster, cost, name):
    with reference(name):
        old = simulate(w, cluster, cost_models=lambda _spec: cost)
    new = simulate(w, cluster, cost_models=lambda _spec: cost)
    return old, new


@settings(max_examples=150, deadline=None)
@given(side_by_side(["vtc", "vtc-weighted", "lcf", "vtc-nolift", "vtc-predict", "vtc-oracle", "vtc-h"]))
def test_vtc_family_admits_as_the_full_pass(case):
    old, new = _both(*case)
    assert_same_run(old, new)


@settings(max_examples=200, deadline=None)
@given(side_by_side(["dlpm", "lpm", "dfs-weight"]))
def test_dlpm_lpm_and_dfs_weight_admit_as_the_full_sort(case):
    old, new = _both(*case)
    assert_same_run(old, new)


@settings(max_examples=100, deadline=None)
@given(side_by_side(["rpm", "slai"]))
def test_rpm_and_slai_admit_as_the_full_pass(case):
    old, new = _both(*case)
    assert_same_run(old, new)


@settings(max_examples=150, deadline=None)
@given(side_by_side(["preble-mpq"]))
def test_preble_mpq_admits_as_the_full_pass(case):
    old, new = _both(*case)
    assert_same_run(old, new)


@st.composite
def d2lpm_router_side_by_side(draw: st.DrawFn) -> tuple[Any, ClusterSpec, Any]:
    w = draw(workloads(max_requests=40, max_clients=4, prefixes=draw(st.sampled_from([True, None]))))
    cluster = draw(clusters(w, ["dlpm", "lpm", "fcfs"], ["d2lpm"], allow_pd=False, max_instances=3))
    quantum = draw(st.sampled_from([8.0, 64.0, 4096.0]))
    return w, replace(cluster, router_params=freeze_params({"quantum": quantum})), draw(cost_models())


@settings(max_examples=100, deadline=None)
@given(d2lpm_router_side_by_side())
def test_d2lpm_router_dispatches_as_the_full_pass(case):
    """The router's settled pending charges (`D2LPM.settle`) give the dispatches of the old
    per-decision pass over every pending list."""
    w, cluster, cost = case
    with reference("d2lpm-router"):
        old = simulate(w, cluster, cost_models=lambda _spec: cost)
    new = simulate(w, cluster, cost_models=lambda _spec: cost)
    assert_same_run(old, new)


def test_negative_control_a_wrong_tie_break_is_caught():
    """The comparison can fail: LPM with ties broken last-come-first differs on a tie-rich case."""
    import numpy as np

    from llmsched.sim.config import InstanceSpec
    from llmsched.sim.workload.core import Workload
    from llmsched.testing import UnitCost

    w = Workload(arrival_s=[0.0, 0.0, 0.0, 0.0], client=[0, 1, 0, 1], prompt_tokens=[40, 40, 40, 40],
                 output_tokens=[5, 3, 7, 2], client_weight=np.ones(2))
    spec = InstanceSpec(batching="lpm", kv_capacity_tokens=50, block_size=1, token_budget=64)
    cluster = ClusterSpec(instances=(spec,))

    def lifo(self, view):
        a = self.admitter
        b = a.start(view)
        for rid in sorted(view.waiting, key=lambda r: (-view.cached_prefix_tokens(r), -r)):
            if not a.admit(b, view, rid):
                break
        return b.plan()

    with mock.patch.object(lpm.LPM, "plan", lifo):
        wrong = simulate(w, cluster, cost_models=lambda _spec: UnitCost())
    right = simulate(w, cluster, cost_models=lambda _spec: UnitCost())
    try:
        assert_same_run(wrong, right)
    except AssertionError:
        return
    raise AssertionError("the side-by-side comparison did not notice a different admission order")


class _QueueView:
    """Just what `ClientQueues` reads: the waiting list and each request's client."""

    def __init__(self, waiting: list[int]) -> None:
        self.waiting = waiting

    def client(self, rid: int) -> int:
        return rid % 2


def test_queues_rebuild_on_hookless_changes_and_only_then():
    from llmsched.policies.batching.waiting_queues import ClientQueues

    view = _QueueView([])
    q = ClientQueues()
    for rid in (1, 2, 3, 4):
        view.waiting.append(rid)
        q.on_arrival(rid, view)  # type: ignore[arg-type]
    view.waiting.remove(3)
    q.on_leave_queue(3, view)  # type: ignore[arg-type]
    assert q.rebuilds == 0 and list(q.of_client(1)) == [1]
    view.waiting.insert(0, 3)  # a preemption re-queues at the head, with no hook
    assert q.sync(view) and q.rebuilds == 1  # type: ignore[arg-type]
    assert list(q.of_client(1)) == [3, 1] and list(q.of_client(0)) == [2, 4]
    view.waiting.remove(2)  # a migration takes one away, with no hook
    assert q.sync(view) and list(q.of_client(0)) == [4]  # type: ignore[arg-type]
    assert not q.sync(view)  # type: ignore[arg-type]


def test_a_requeued_request_goes_first_without_a_rebuild():
    """`on_requeue` (the engine's preemption hook) files the request ahead of every other, so the
    queues need no rebuild; a requeue that does not match the engine's queue still rebuilds."""
    from llmsched.policies.batching.waiting_queues import ClientQueues

    view = _QueueView([])
    q = ClientQueues()
    for rid in (1, 2, 3, 4, 5):
        view.waiting.append(rid)
        q.on_arrival(rid, view)  # type: ignore[arg-type]
    for rid in (1, 3):
        view.waiting.remove(rid)
        q.on_leave_queue(rid, view)  # type: ignore[arg-type]
    view.waiting.insert(0, 1)
    q.on_requeue(1, view)  # type: ignore[arg-type]
    view.waiting.insert(0, 3)  # preempted after 1: now ahead of it, as the engine's queue has it
    q.on_requeue(3, view)  # type: ignore[arg-type]
    assert q.rebuilds == 0 and not q.sync(view)  # type: ignore[arg-type]
    assert list(q.of_client(1)) == [3, 1, 5] and list(q.of_client(0)) == [2, 4]
    view.waiting.append(7)  # negative control: the queue changed in a way the hook does not say
    view.waiting.insert(0, 9)
    q.on_requeue(9, view)  # type: ignore[arg-type]
    assert q.rebuilds == 1 and list(q.of_client(1)) == [9, 3, 1, 5, 7]


class _BucketView(_QueueView):
    """What `BucketQueues` reads; every request shares one prompt whose cached prefix is `cached`."""

    hash_block_tokens = 16

    def __init__(self, waiting: list[int]) -> None:
        super().__init__(waiting)
        self.prefilling: list[int] = []
        self.cached = 0

    def cacheable_hashes(self, rid: int) -> Any:
        import numpy as np

        return np.arange(10, dtype=np.int64)

    def remaining_prefill(self, rid: int) -> int:
        return 160

    def cached_prefix_tokens(self, rid: int) -> int:
        return self.cached


def test_a_request_back_in_its_old_bucket_is_offered_once():
    """Regression (README main command, preble-e2e quick: a request admitted twice): when a prefix
    group's cached length goes up and back down, its requests move to another hit-ratio bucket and
    back, leaving two equal entries in the first bucket's heap; `head` must offer each request once."""
    from llmsched.policies.batching.preble_mpq import N_GROUPS, hit_group
    from llmsched.policies.batching.waiting_queues import BucketQueues

    view = _BucketView([])
    q = BucketQueues(hit_group, N_GROUPS)
    for rid in (1, 2):
        view.waiting.append(rid)
        q.on_arrival(rid, view)  # type: ignore[arg-type]
    for cached, bucket in ((0, 0), (80, 4), (0, 0)):  # 0 -> group 0; 80 of 160 -> ceil(5) - 1 = 4
        view.cached = cached
        q.refresh(view)  # type: ignore[arg-type]
        assert q.size(bucket) == 2
    assert q.head(0, 10) == [1, 2] and q.head(0, 10) == [1, 2] and q.head(4, 10) == []
