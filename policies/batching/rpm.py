"""RPM(k) rate limiting, the VTC paper's "requests per minute" baseline (artifact
`lshare_req_queue.py`): a client may have at most k requests admitted in any window of 60 s.

Owns the per-client admission times; the per-client FIFO queues are `waiting_queues.ClientQueues`. The artifact *rejects* over-limit requests at arrival; an
engine cannot drop requests, so the policy *holds* them until the window allows (not
work-conserving either way), and `rpm_filter` reproduces the artifact's dropping on a workload.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from llmsched.policies.batching._fair_common import ADMISSION_MODES, DEFAULT_ADMISSION, Admitter
from llmsched.policies.batching.waiting_queues import ClientQueues
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.config import InstanceSpec
from llmsched.sim.params import declare, integer, number, one_of
from llmsched.sim.policy_api import InstanceView, Plan

WINDOW_S = 60.0  # "per minute": artifact `lshare_req_queue.py::check_past_one_minute` (<= 60 s)


@register(BATCHING, "rpm")
class RPM:
    """RPM(k): FCFS among requests whose client has had < k admissions in the last 60 s."""

    PARAMS = declare(limit=integer(1, doc="admissions per client per window"),
              window_s=number(0, low_open=True, doc="window, s"), admission=one_of(*ADMISSION_MODES, doc="engine, reserve (prompt + output KV reserved) or peak"))

    def __init__(self, limit: int = 20, window_s: float = WINDOW_S, admission: str = DEFAULT_ADMISSION,
                 instance_spec: InstanceSpec | None = None) -> None:
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.admitter = Admitter(admission, instance_spec)
        self.admitted: dict[int, deque[float]] = {}
        self.queues = ClientQueues()

    def _recent(self, client: int, now: float) -> deque[float]:
        q = self.admitted.setdefault(client, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def on_arrival(self, rid: int, view: InstanceView) -> None:
        self.queues.on_arrival(rid, view)

    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        self.queues.on_leave_queue(rid, view)
        self.admitted.setdefault(view.client(rid), deque()).append(view.now)

    def on_requeue(self, rid: int, view: InstanceView) -> None:
        self.queues.on_requeue(rid, view)

    def plan(self, view: InstanceView) -> Plan:
        b = self.admitter.start(view)
        now = view.now
        held: set[int] = set()  # clients at their limit: the plan depends on the clock
        self.queues.sync(view)
        if view.admission_open and len(self.queues):
            # FIFO over the clients' queues merged by queue order; a client at its limit is held
            # (with all its later requests: its count only grows within a plan)
            queues = {c: self.queues.of_client(c) for c in self.queues.clients()}
            heads = {c: next(q) for c, q in queues.items()}
            fifo = [(self.queues.seq[rid], c) for c, rid in heads.items()]
            heapq.heapify(fifo)
            taken: dict[int, int] = {}  # client -> admitted by this plan
            while fifo:
                _, c = heapq.heappop(fifo)
                if len(self._recent(c, now)) + taken.get(c, 0) >= self.limit:
                    held.add(c)
                    continue
                if not self.admitter.admit(b, view, heads[c]):
                    break
                taken[c] = taken.get(c, 0) + 1
                nxt = next(queues[c], None)
                if nxt is not None:
                    heads[c] = nxt
                    heapq.heappush(fifo, (self.queues.seq[nxt], c))
        if held:  # wake when a held client's oldest admission in the window expires
            b.replan_each_iteration = True
            wake = [self._expiry(recent[0]) for c in held if (recent := self._recent(c, now))]
            b.retry_at_s = min(wake) if wake else None
        return b.plan()

    def _expiry(self, admitted_at: float) -> float:
        """The first clock value at which `_recent` drops an admission made at `admitted_at`
        (`admitted_at + window_s`, moved up by an ulp where rounding would keep it one more plan)."""
        t = admitted_at + self.window_s
        while t - self.window_s < admitted_at:
            t = math.nextafter(t, math.inf)
        return t


def rpm_filter(arrival_s: np.ndarray, client: np.ndarray, limit: int,
               window_s: float = WINDOW_S) -> np.ndarray:
    """Boolean mask of requests the artifact's RPM(k) accepts: a request is rejected when its
    client already had `limit` accepted requests in the `window_s` seconds before it."""
    keep = np.zeros(len(arrival_s), dtype=bool)
    recent: dict[int, deque[float]] = {}
    for i in np.argsort(arrival_s, kind="stable"):
        q = recent.setdefault(int(client[i]), deque())
        t = float(arrival_s[i])
        while q and t - q[0] > window_s:
            q.popleft()
        if len(q) < limit:
            q.append(t)
            keep[i] = True
    return keep
