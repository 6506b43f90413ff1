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
from typing import Any

from llmsched.policies.batching._fair_common import ADMISSION_MODES, DEFAULT_ADMISSION, Admitter
from llmsched.policies.batching.waiting_queues import PrefixQueues, QueueHooks
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, number, one_of
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder
from llmsched.theory.fairness import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT

#: beyond this many iterations a deficit's crossing is "never": far past any segment (the engine
#: caps one at `MAX_SEGMENT_ITERATIONS`), it only bounds the search
HORIZON_LIMIT = 2**40


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
        self.queue = PrefixQueues()  # the waiting requests in LPM order, per client

    def service(self, view: InstanceView, client: int, extra_output_tokens: int = 0) -> float:
        """w_p · uncached prompt tokens + w_q · output tokens of `client` here (with
        `extra_output_tokens` more output: what `_deficit_horizon` projects)."""
        uncached = view.input_service(client) - view.cached_input_service(client)
        return self.w_p * uncached + self.w_q * (view.output_service(client) + extra_output_tokens)

    def deficit(self, view: InstanceView, client: int, extra_output_tokens: int = 0) -> float:
        return self.granted.get(client, 0.0) - self.service(view, client, extra_output_tokens)

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
        refilled = False
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
                    self._guard(b, view, u, admitted, refilled)
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
            refilled = True
            for c in active:
                self.granted[c] = self.granted.get(c, 0.0) + k * self.quantum
                q[c] += k * self.quantum
        return b.plan()

    def _guard(self, b: PlanBuilder, view: InstanceView, u: int, admitted: set[int], refilled: bool) -> None:
        """DLPM's stability guard, at a misfit of client `u`: when to ask again.

        Every client met before the misfit in the LPM order is at or below zero, and between change
        points deficits only fall, free memory only shrinks and the order stays put. So asked
        again, the plan is this one, with no side effect, until `u`'s own deficit reaches zero:
        then the pass goes past `u`, and may admit a request left behind or, with every client
        at or below zero, grant quanta (a refill: state that later plans read, so it must happen
        at the iteration step mode makes it). That iteration is computable (`_deficit_horizon`):
        ask again there. A plan that admitted or refilled stopped on in-pass deficits (sums the
        next plan does not repeat), so it asks again at the next iteration, whose plan starts
        from the counters. The generic guard (`Admitter.guard`: ask every iteration if a request
        left behind fits) is not enough here: it misses refills when nothing fits."""
        if admitted or refilled:
            b.replan_after_iterations = 1
            return
        horizon = self._deficit_horizon(b, view, u)
        if horizon is not None:
            b.replan_after_iterations = horizon

    def _deficit_horizon(self, b: PlanBuilder, view: InstanceView, u: int) -> int | None:
        """The first iteration j >= 1 at which `u`'s deficit, computed as `deficit` computes it,
        is <= 0 while the plan's batch runs: each of `u`'s decodes in it adds one output token per
        iteration, and nothing else moves `u`'s service before the next change point (prompt
        service is charged at admission, a prefill's first token when it completes). None if it
        never falls (no decode of `u`, w_q = 0, or an infinite quantum). Deficits fall
        monotonically in j (IEEE rounding is monotone), so a search finds the exact first j."""
        decodes_of_u = sum(1 for rid in b.decodes if view.client(rid) == u)
        deficit = self.deficit(view, u)
        if decodes_of_u == 0 or self.w_q == 0 or not math.isfinite(deficit):  # quantum = inf: LPM
            return None

        def positive_after(j: int) -> bool:
            return self.deficit(view, u, j * decodes_of_u) > 0
        low, high = 0, max(1, math.ceil(deficit / (self.w_q * decodes_of_u)))
        while positive_after(high):  # the estimate is close; rounding may put the crossing later
            low, high = high, 2 * high
            if high > HORIZON_LIMIT:
                return None
        while high - low > 1:  # positive after `low` iterations, not after `high`
            mid = (low + high) // 2
            if positive_after(mid):
                low = mid
            else:
                high = mid
        return high
