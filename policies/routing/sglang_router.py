"""The SGLang router's cache-aware policy (`sgl-project/sglang`, `sgl-router/src/policies/
cache_aware.rs`; defaults from `sgl-router/py_src/sglang_router/router_args.py` and Rust
`CacheAwareConfig::default()`, notes/fairness_locality.md §4.3): balance by load when the
cluster is imbalanced, else follow the approximate prefix tree, else the smallest tree.

Owns the approximate per-worker tree built only from its own routing history (the real router
sees no worker telemetry) and its periodic LRU trim. Units: the real tree counts characters of
raw text; ours counts prompt tokens in whole hash blocks (the only text identity we have).
"""

from __future__ import annotations

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, integer, number, one_of
from llmsched.sim.policy_api import ActingClusterView, ClusterView, InstanceStats
from llmsched.sim.prefix_index import PrefixIndex, prompt_blocks

# The two default parameter sets (notes §4.3, [CODE]):
PRESETS = {
    # Python launcher RouterArgs (`python -m sglang_router.launch_router`)
    "python": {"cache_threshold": 0.3, "balance_abs_threshold": 64, "balance_rel_threshold": 1.5,
               "eviction_interval_s": 120.0, "max_tree_size": 2 ** 26},
    # Rust CacheAwareConfig::default() (sgl-router, sgl-model-gateway)
    "rust": {"cache_threshold": 0.5, "balance_abs_threshold": 32, "balance_rel_threshold": 1.1,
             "eviction_interval_s": 30.0, "max_tree_size": 10000},
}


def load(stats: InstanceStats) -> int:
    """The router's per-worker load: requests in flight on it (waiting + running)."""
    return stats.waiting_count + stats.running_count


def imbalanced(loads: list[int], abs_threshold: float, rel_threshold: float) -> bool:
    """(max − min) > abs AND max > rel × min (cache_aware.rs)."""
    hi, lo = max(loads), min(loads)
    return (hi - lo) > abs_threshold and hi > rel_threshold * lo


@register(ROUTING, "sglang-router")
class SGLangRouter:
    """SGLang cache-aware router: least load if (max−min) > abs and max > rel·min; else the
    worker with the best prefix match if match rate > cache_threshold; else the smallest tree.

    preset: "python" (0.3 / 64 / 1.5 / 120 s / 2^26) or "rust" (0.5 / 32 / 1.1 / 30 s / 10k);
    any of cache_threshold, balance_abs_threshold, balance_rel_threshold, eviction_interval_s,
    max_tree_size (tokens) overrides the preset.
    """

    PARAMS = declare(preset=one_of(*sorted(PRESETS)), cache_threshold=number(0, 1, optional=True),
              balance_abs_threshold=number(0, optional=True), balance_rel_threshold=number(1, optional=True),
              eviction_interval_s=number(0, low_open=True, optional=True),
              max_tree_size=integer(1, optional=True, doc="tokens"))

    def __init__(self, preset: str = "python", cache_threshold: float | None = None,
                 balance_abs_threshold: float | None = None, balance_rel_threshold: float | None = None,
                 eviction_interval_s: float | None = None, max_tree_size: int | None = None) -> None:
        p = dict(PRESETS[preset])
        for k, v in (("cache_threshold", cache_threshold), ("balance_abs_threshold", balance_abs_threshold),
                     ("balance_rel_threshold", balance_rel_threshold),
                     ("eviction_interval_s", eviction_interval_s), ("max_tree_size", max_tree_size)):
            if v is not None:
                p[k] = v
        self.cache_threshold = float(p["cache_threshold"])
        self.abs_threshold = float(p["balance_abs_threshold"])
        self.rel_threshold = float(p["balance_rel_threshold"])
        self.tick_interval_s = float(p["eviction_interval_s"])
        self.max_tree_tokens = int(p["max_tree_size"])
        self.tree = PrefixIndex(reuse_node_ids=True)
        self._hb = 0
        self.decisions = {"balance": 0, "cache": 0, "smallest-tree": 0}

    def route(self, rid: int, view: ClusterView) -> int:
        n = view.n_instances
        self._hb = view.hash_block_tokens
        loads = [load(view.instance(j)) for j in range(n)]
        blocks = prompt_blocks(view, rid)
        if imbalanced(loads, self.abs_threshold, self.rel_threshold):
            j = min(range(n), key=lambda x: (loads[x], x))
            self.decisions["balance"] += 1
        else:
            matched, tenant = self.tree.best_tenant(blocks)
            prompt = view.prompt_tokens(rid)
            rate = matched * self._hb / prompt if prompt else 0.0
            if tenant >= 0 and rate > self.cache_threshold:
                j = tenant
                self.decisions["cache"] += 1
            else:
                j = min(range(n), key=lambda x: (self.tree.tenant_blocks(x), x))
                self.decisions["smallest-tree"] += 1
        self.tree.insert(blocks, j, view.now)  # the tree is updated on every route
        return j

    def tick(self, view: ActingClusterView) -> None:
        """Periodic eviction: trim every tenant's tree to max_tree_size tokens, LRU leaves first."""
        if self._hb <= 0:
            return
        cap = self.max_tree_tokens // self._hb
        for j in range(view.n_instances):
            self.tree.evict_tenant(j, cap)

    def stats(self) -> dict:
        return dict(self.decisions)


@register(ROUTING, "sglang-router-rust")
class SGLangRouterRust(SGLangRouter):
    """SGLang cache-aware router with the Rust `CacheAwareConfig::default()` parameters."""

    def __init__(self, **kw) -> None:
        kw.setdefault("preset", "rust")
        super().__init__(**kw)
