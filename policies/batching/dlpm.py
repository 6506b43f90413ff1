"""DLPM, Deficit Longest Prefix Match (Cao et al., "Locality-aware Fair Scheduling in LLM Serving",
arXiv 2501.14312, Alg. 1 as far as it is published): LPM order over the prefix cache, admitting
only clients with a positive deficit, refilled by a quantum Q_u when every active client is at
or below zero.

Owns only the quanta granted per client; the LPM order is kept incrementally by
`waiting_queues.PrefixQueues`. A deficit is quanta granted − service, where service
counts uncached prompt tokens (w_p) and output tokens (w_q), read from the engine's accounting.
Choices where the paper is silent are listed in docs/theory/fairness.md.
"""

from __future__ import annotations

import math
from itertools import islice
from typing import Any

from llmsched.policies.batching._fair_common import ADMISSION_MODES, DEFAULT_ADMISSION, Admitter
from llmsched.policies.batching.lpm import GUARD_LOOKAHEAD
from llmsched.policies.batching.waiting_queues import PrefixQueues, QueueHooks
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, number, one_of
from llmsched.sim.policy_api import InstanceView, Plan
from llmsched.theory.fairness import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT


@register(BATCHING, "dlpm")
class DLPM(QueueHooks):
    """DLPM: longest-prefix-match order, admitting only clients whose deficit is positive.

    quantum: Q_u in service units (w_p per uncached prompt token, w_q per output token); inf
    makes DLPM exactly LPM.
    """

    PARAMS = declare(quantum=number(0, low_open=True, finite=False, doc="Q_u, service units per refill"),
              input_weight=number(0, doc="w_p"), output_weight=number(0, doc="w_q"),
              admission=one_of(*ADMISSION_MODES, doc="engine, reserve (prompt + output KV reserved) or peak"))

    def __init__(self, quantum: float = 1024.0, input_weight: float = DEFAULT_INPUT_WEIGHT,
                 output_weight: float = DEFAULT_OUTPUT_WEIGHT, admission: str = DEFAULT_ADMISSION,
                 instance_spec: Any = None) -> None:
        self.quantum = float(quantum)
        self.w_p = float(input_weight)
        self.w_q = float(output_weight)
        self.admitter = Admitter(admission, instance_spec)
        self.granted: dict[int, float] = {}  # quanta granted (+ service forgiven at activation)
        self.queue = PrefixQueues(self.admitter.reservation_size())  # the waiting requests in LPM order, per client

    def service(self, view: InstanceView, client: int) -> float:
        uncached = view.input_service(client) - view.cached_input_service(client)
        return self.w_p * uncached + self.w_q * view.output_service(client)

    def deficit(self, view: InstanceView, client: int) -> float:
        return self.granted.get(client, 0.0) - self.service(view, client)

    def on_arrival(self, rid: int, view: InstanceView) -> None:
        """A client that becomes active starts with one fresh quantum (DRR: an idle flow's deficit
        is reset; ours also forgives debt left by requests still running)."""
        self.queue.on_arrival(rid, view)
        u = view.client(rid)
        if self.queue.count(u) > 1:
            return
        self.granted[u] = self.service(view, u) + self.quantum

    def plan(self, view: InstanceView) -> Plan:
        a = self.admitter
        b = a.start(view)
        if not view.waiting or not view.admission_open:
            return b.plan()
        queue = self.queue
        queue.sync(view)
        admitted: set[int] = set()
        left = dict(queue.counts)  # client -> its requests not admitted by this plan
        q = {c: self.deficit(view, c) for c in left}
        while True:
            # one pass over the LPM order of the requests not yet admitted: a client's requests
            # are skipped from the first one met at a deficit <= 0 (deficits only fall in a pass)
            order = queue.lpm(view, admitted)
            while (nxt := order.peek()) is not None:
                u, rid = nxt
                if q[u] <= 0:
                    order.drop(u)
                    continue
                if not a.admit(b, view, rid):
                    if not a.none_fits(queue.smallest()):  # else the guard would find no fit
                        a.guard(b, view, islice(queue.lpm(view, admitted | {rid}), GUARD_LOOKAHEAD))
                    return b.plan()
                order.pop()
                admitted.add(rid)
                left[u] -= 1
                q[u] -= self.w_p * (view.prompt_tokens(rid) - view.cached_prefix_tokens(rid))
            active = {c for c, n in left.items() if n}
            if not active:
                break
            # every active client is at or below zero: refill by as many quanta as it takes for
            # one of them to turn positive (k single refills at once)
            k = min(math.floor(-q[c] / self.quantum) + 1 for c in active)
            for c in active:
                self.granted[c] = self.granted.get(c, 0.0) + k * self.quantum
                q[c] += k * self.quantum
        return b.plan()
