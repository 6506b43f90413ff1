"""A modern weighted-scorer router, as in today's Kubernetes inference gateways (llm-d inference
scheduler / Gateway API Inference Extension "filter → score → pick"): each instance gets a
prefix-cache score, a queue score and a KV-utilisation score in [0, 1]; the highest weighted sum
wins. Owns only its approximate prefix index (the gateway tracks prefixes it has routed).
"""

from __future__ import annotations

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, number, one_of
from llmsched.sim.policy_api import ClusterView
from llmsched.sim.prefix_index import PrefixIndex, prompt_blocks


@register(ROUTING, "weighted-scorer")
class WeightedScorer:
    """Max of prefix_weight·(cached fraction of the prompt's blocks) + queue_weight·(min-max
    normalised short queue) + kv_weight·(free KV fraction); ties to the lowest index.

    Defaults: prefix 3, queue 2 (the llm-d default profile as documented by Red Hat OpenShift AI
    3.4, "Configuring scheduler settings"); kv 1 is our choice. prefix_source: "router" (the
    gateway's own routing history, as llm-d's prefix-cache scorer) or "exact" (instances' trees).
    """

    PARAMS = declare(prefix_weight=number(0), queue_weight=number(0), kv_weight=number(0),
              prefix_source=one_of("router", "exact"))

    def __init__(self, prefix_weight: float = 3.0, queue_weight: float = 2.0, kv_weight: float = 1.0,
                 prefix_source: str = "router") -> None:
        self.w = (float(prefix_weight), float(queue_weight), float(kv_weight))
        self.prefix_source = prefix_source
        self.index = PrefixIndex(reuse_node_ids=True)

    def scores(self, rid: int, view: ClusterView) -> list[float]:
        n = view.n_instances
        blocks = prompt_blocks(view, rid)
        stats = [view.instance(j) for j in range(n)]
        if self.prefix_source == "exact":
            hb = max(view.hash_block_tokens, 1)
            matched = [s.prefix_match_tokens(rid) / hb for s in stats]
        else:
            m = self.index.match_per_tenant(blocks)
            matched = [m.get(j, 0) for j in range(n)]
        prefix = [x / len(blocks) if len(blocks) else 0.0 for x in matched]
        q = [s.waiting_count for s in stats]
        lo, hi = min(q), max(q)
        queue = [(hi - x) / (hi - lo) if hi > lo else 1.0 for x in q]
        kv = [1.0 - (s.kv_blocks_total - s.kv_blocks_available) / s.kv_blocks_total for s in stats]
        wp, wq, wk = self.w
        return [wp * prefix[j] + wq * queue[j] + wk * kv[j] for j in range(n)]

    def route(self, rid: int, view: ClusterView) -> int:
        sc = self.scores(rid, view)
        j = max(range(len(sc)), key=lambda x: (sc[x], -x))
        self.index.insert(prompt_blocks(view, rid), j, view.now)
        return j
