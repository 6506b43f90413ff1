"""VTC, the Virtual Token Counter (Sheng et al., "Fairness in Serving LLMs", OSDI'24, Alg. 2),
and its no-lift relatives LCF and `vtc-nolift`.

Owns only VTC's decision state: per-client lift offsets and the clients that last left the queue;
the per-client FIFO queues are kept incrementally by `waiting_queues.ClientQueues`.
The counter itself is read from the engine's accounting: c_u = (w_p·input_service(u) +
w_q·output_service(u)) / weight_u + offset_u. Variants with other charging live in
`vtc_variants.py`. Choices where the paper is silent are listed in docs/theory/fairness.md.
"""

from __future__ import annotations

import heapq
from typing import Any

from llmsched.policies.batching._fair_common import ADMISSION_MODES, DEFAULT_ADMISSION, Admitter
from llmsched.policies.batching.waiting_queues import ClientQueues
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, flag, number, one_of
from llmsched.sim.policy_api import InstanceView, Plan
from llmsched.theory.fairness import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT

LIFT_RULES = ("paper", "artifact", "none")


class VirtualTokenCounter:
    """Least-counter-first admission with the counter lift.

    input_weight, output_weight: w_p, w_q (paper: 1 and 2, "following OpenAI pricing").
    lift: "paper"    — a client arriving to an empty own queue is lifted to the least counter of
                        the waiting clients, or, if none waits, to the counter of the client that
                        last left the queue (Alg. 2);
          "artifact" — only the first case (VTC-artifact `vtc_req_queue.py::append`);
          "none"     — never (LCF).
    weighted: divide every charge by the client's weight (weighted VTC, paper Sec. 4.3).
    admission: "reserve" (default: the theorems' hypothesis), "peak" or "engine" (see `_fair_common.Admitter`).
    """

    PARAMS = declare(input_weight=number(0, doc="w_p"), output_weight=number(0, doc="w_q"),
              lift=one_of(*LIFT_RULES), weighted=flag(), admission=one_of(*ADMISSION_MODES, doc="engine, reserve (prompt + output KV reserved) or peak"))

    def __init__(self, input_weight: float = DEFAULT_INPUT_WEIGHT,
                 output_weight: float = DEFAULT_OUTPUT_WEIGHT, lift: str = "paper",
                 weighted: bool = False, admission: str = DEFAULT_ADMISSION,
                 instance_spec: Any = None) -> None:
        self.w_p = float(input_weight)
        self.w_q = float(output_weight)
        self.lift = lift
        self.weighted = bool(weighted)
        self.admitter = Admitter(admission, instance_spec)
        self.offset: dict[int, float] = {}
        self.last_left: tuple[int, set[int]] = (-1, set())  # (plan number, clients)
        self._plans = 0
        self.queues = ClientQueues()  # the waiting requests per client, FIFO

    # -- the counter -------------------------------------------------------------------------
    def service(self, view: InstanceView, client: int) -> float:
        """Charged service of `client` on this instance (before the weight division)."""
        return self.w_p * view.input_service(client) + self.w_q * view.output_service(client)

    def dispatch_charge(self, view: InstanceView, rid: int) -> float:
        """What admitting `rid` adds to its client's service (paper: w_p × prompt tokens)."""
        return self.w_p * view.prompt_tokens(rid)

    def counter(self, view: InstanceView, client: int) -> float:
        w = view.client_weight(client) if self.weighted else 1.0
        return self.service(view, client) / w + self.offset.get(client, 0.0)

    def _weight(self, view: InstanceView, client: int) -> float:
        return view.client_weight(client) if self.weighted else 1.0

    # -- hooks ---------------------------------------------------------------------------------
    def on_arrival(self, rid: int, view: InstanceView) -> None:
        """Counter lift when `rid`'s client had no waiting request before this arrival."""
        self.queues.on_arrival(rid, view)
        u = view.client(rid)
        if self.queues.count(u) > 1:
            return  # u was already backlogged: no lift
        if self.lift == "none":
            return
        others = [c for c in self.queues.clients() if c != u]
        if others:
            target = min(self.counter(view, v) for v in others)
        elif self.lift == "paper" and self.last_left[1]:
            # Several requests can leave at one admission instant; we take the largest of their
            # clients' counters (documented choice; it keeps Lemma 4.3's argument intact).
            target = max(self.counter(view, v) for v in self.last_left[1])
        else:
            return
        own = self.counter(view, u)
        if own < target:
            self.offset[u] = self.offset.get(u, 0.0) + target - own

    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        self.queues.on_leave_queue(rid, view)
        n, clients = self.last_left
        if n != self._plans:  # the first request to leave at this plan's admission instant
            self.last_left = (self._plans, {view.client(rid)})
        else:
            clients.add(view.client(rid))

    def on_requeue(self, rid: int, view: InstanceView) -> None:
        self.queues.on_requeue(rid, view)

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, view: InstanceView) -> Plan:
        self._plans += 1
        a = self.admitter
        b = a.start(view)
        self.queues.sync(view)
        if not len(self.queues) or not view.admission_open:
            return b.plan()
        queues = {u: self.queues.of_client(u) for u in self.queues.clients()}  # FIFO per client
        heads = {u: next(q) for u, q in queues.items()}
        # least counter; ties by the earlier head arrival, then the client id (our choice)
        least = [(self.counter(view, u), view.arrival_s(rid), u) for u, rid in heads.items()]
        heapq.heapify(least)
        while least:
            counter, _, u = heapq.heappop(least)
            rid = heads[u]
            if not a.admit(b, view, rid):
                a.guard(b, view, [heads[c] for _, _, c in least])
                break
            counter += self.dispatch_charge(view, rid) / self._weight(view, u)
            nxt = next(queues[u], None)
            if nxt is not None:
                heads[u] = nxt
                heapq.heappush(least, (counter, view.arrival_s(nxt), u))
        return b.plan()


@register(BATCHING, "vtc")
class VTC(VirtualTokenCounter):
    """VTC (OSDI'24): admit from the waiting client with the least virtual counter, with lift."""


@register(BATCHING, "vtc-weighted")
class WeightedVTC(VirtualTokenCounter):
    """Weighted VTC (OSDI'24 Sec. 4.3): every charge divided by the client's weight."""

    def __init__(self, instance_spec: Any = None, **params: Any) -> None:
        params.setdefault("weighted", True)
        super().__init__(instance_spec=instance_spec, **params)


@register(BATCHING, "lcf")
class LCF(VirtualTokenCounter):
    """LCF, least counter first without the lift (VTC artifact `lcf_req_queue.py`)."""

    PARAMS = declare(lift=None)

    def __init__(self, instance_spec: Any = None, **params: Any) -> None:
        params["lift"] = "none"
        super().__init__(instance_spec=instance_spec, **params)


@register(BATCHING, "vtc-nolift")
class VTCNoLift(VirtualTokenCounter):
    """Negative control: VTC with the lift line deleted (same algorithm as LCF, kept as its own
    name so tests state which line they break)."""

    PARAMS = declare(lift=None)

    def __init__(self, instance_spec: Any = None, **params: Any) -> None:
        params["lift"] = "none"
        super().__init__(instance_spec=instance_spec, **params)
