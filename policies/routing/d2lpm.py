"""D²LPM (Cao et al., "Locality-aware Fair Scheduling in LLM Serving", arXiv 2501.14312, §D²LPM):
a global radix tree of which workers hold which prefixes, per-client-per-worker deficits with a
worker quantum Q^w, and dispatch to the shortest queue among the workers with deficit left that
hold the longest matching prefix. Each worker runs DLPM locally (`batching = "dlpm"`).

Owns only the quanta granted per (client, worker) and the router-side prefix index; the service a
deficit subtracts is the engine's accounting (DESIGN: "a DLPM deficit is quanta granted − service").
"""

from __future__ import annotations

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.accounting import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT
from llmsched.sim.params import declare, number
from llmsched.sim.policy_api import ClusterView, InstanceStats
from llmsched.sim.prefix_index import EvictionFeed, PrefixIndex, prompt_blocks


def queue_key(stats: InstanceStats, j: int) -> tuple[int, int, int]:
    """Shortest queue: waiting (+ arrived-with-KV) requests, then running ones, then the pool index."""
    return (stats.waiting_count, stats.running_count, j)


@register(ROUTING, "d2lpm")
class D2LPM:
    """D²LPM: longest cached prefix (global radix tree) among workers where the client has deficit
    left, shortest queue among those; DRR refill of Q^w on every worker when none has any left.

    quantum: Q^w in service units (w_p per uncached prompt token, w_q per output token).
    eviction_delay_s: instances' eviction reports reach the global tree this much later.
    Choices where the paper is silent (docs/policies.md): a worker "has deficit left" when
    granted − service − (estimated uncached prompt of its requests not yet admitted) > 0; when
    no worker holding the longest prefix has deficit, the longest match among workers that do.
    """

    PARAMS = declare(quantum=number(0, low_open=True, doc="Q^w, service units"),
              input_weight=number(0, doc="w_p"), output_weight=number(0, doc="w_q"),
              eviction_delay_s=number(0, doc="delay of eviction reports, s"))

    def __init__(self, quantum: float = 4096.0, input_weight: float = DEFAULT_INPUT_WEIGHT, output_weight: float = DEFAULT_OUTPUT_WEIGHT,
                 eviction_delay_s: float = 0.0) -> None:
        self.quantum = float(quantum)
        self.w_p = float(input_weight)
        self.w_q = float(output_weight)
        self.index = PrefixIndex(reuse_node_ids=True)
        self.feed = EvictionFeed(eviction_delay_s)
        self.granted: dict[tuple[int, int], float] = {}
        self.pending: dict[tuple[int, int], list[tuple[int, float]]] = {}  # dispatched, not yet charged
        self.owed: dict[tuple[int, int], float] = {}  # the sum of each pending list's charges
        self.charged_seen: dict[int, int] = {}  # client -> its prompt tokens charged, all workers
        self.refills = 0

    def settle(self, view: ClusterView, u: int) -> None:
        """Drop the client's pending dispatches that are charged now. A charge adds the prompt
        (>= 1 token) to the client's `input_service` on some worker, so an unchanged total over the
        workers means no pending entry of the client was charged: the pass is skipped."""
        total = sum(view.instance(w).input_service(u) for w in range(view.n_instances))
        if self.charged_seen.get(u) == total:
            return
        self.charged_seen[u] = total
        for w in range(view.n_instances):
            pend = self.pending.get((u, w))
            if pend:
                pend[:] = [(r, c) for r, c in pend if not view.charged(r)]
                self.owed[(u, w)] = _left_sum(c for _, c in pend)

    def deficit(self, view: ClusterView, u: int, w: int) -> float:
        """Quanta granted − service on w − charges owed by dispatches not yet charged (after `settle`)."""
        s = view.instance(w)
        served = self.w_p * (s.input_service(u) - s.cached_input_service(u)) + self.w_q * s.output_service(u)
        return self.granted.get((u, w), 0.0) - served - self.owed.get((u, w), 0.0)

    def route(self, rid: int, view: ClusterView) -> int:
        now = view.now
        self.feed.poll(view, self.index, now)
        u = view.client(rid)
        n = view.n_instances
        blocks = prompt_blocks(view, rid)
        match = self.index.match_per_tenant(blocks)
        self.settle(view, u)
        d = [self.deficit(view, u, w) for w in range(n)]
        if all(x <= 0 for x in d):  # a new DRR round for this client
            self.refills += 1
            for w in range(n):
                self.granted[(u, w)] = self.granted.get((u, w), 0.0) + self.quantum
                d[w] += self.quantum
        avail = [w for w in range(n) if d[w] > 0] or list(range(n))
        longest = max(match.get(w, 0) for w in avail)
        j = min((x for x in avail if match.get(x, 0) == longest), key=lambda x: queue_key(view.instance(x), x))
        cached = min(match.get(j, 0) * view.hash_block_tokens, view.prompt_tokens(rid))
        charge = self.w_p * (view.prompt_tokens(rid) - cached)
        self.pending.setdefault((u, j), []).append((rid, charge))
        self.owed[(u, j)] = self.owed.get((u, j), 0) + charge  # = the left-to-right sum of the list
        self.index.insert(blocks, j, now)
        return j

    def stats(self) -> dict:
        return {"refills": self.refills, "evictions_applied": self.feed.applied}


def _left_sum(values) -> float:
    """Left-to-right float sum (what appending to a running total gives, on any Python version)."""
    total: float = 0
    for v in values:
        total += v
    return total
