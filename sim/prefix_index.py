"""Router-side prefix state: a radix tree over prefix block hashes recording which instances
("tenants") hold which prefixes, fed by the router's own routing history and, optionally, by
the instances' eviction logs after a configurable delay (D²LPM's asynchronous global radix tree),
or trimmed per tenant by LRU to a size cap (the SGLang router's approximate tree).

Owns only the router's belief about cache contents; it never reads or changes instance memory
except through `InstanceStats.drain_evictions()` (see `EvictionFeed`).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from llmsched.sim.policy_api import ClusterView
from llmsched.sim.radix import ROOT, BlockHashes, RadixTree
from llmsched.sim.state import full_prompt_blocks


def prompt_blocks(view: ClusterView, rid: int) -> np.ndarray:
    """The request's full prompt hash blocks, seen through a cluster view (`full_prompt_blocks`)."""
    return full_prompt_blocks(view.hashes(rid), view.prompt_tokens(rid), view.hash_block_tokens)


class PrefixIndex(RadixTree):
    """The radix tree with, per node, tenant -> the time it was last inserted or touched by that
    tenant. A tenant holds a prefix of length k iff it holds all k nodes of the path (gaps left by
    evictions cut its match short). Nodes no tenant holds are pruned.

    `reuse_node_ids=True` (the routers that keep no node ids of their own: D²LPM, the SGLang router,
    the weighted scorer) gives pruned nodes' ids to new nodes, so the tree's lists stay as large as
    the prefixes believed cached, not every prefix ever routed. Preble keeps per-node statistics
    and LRU orders by node id, so its tree never reuses ids."""

    __slots__ = ("_born", "_holders", "_nborn", "tenant_nodes")

    def __init__(self, reuse_node_ids: bool = False) -> None:
        super().__init__(reuse_node_ids)
        self._holders: list[dict[int, float]] = []
        self._born: list[int] = []  # creation order of the node now under each id (eviction ties)
        self._nborn = 0
        self.tenant_nodes: dict[int, set[int]] = {}

    def _new_node(self, node: int) -> None:  # noqa: ARG002 - RadixTree's hook; the payload is appended in node order
        self._holders.append({})
        self._born.append(self._nborn)
        self._nborn += 1

    def _reuse_node(self, node: int) -> None:
        self._holders[node] = {}
        self._born[node] = self._nborn
        self._nborn += 1

    # ------------------------------------------------------------------ queries
    def path(self, hashes: BlockHashes) -> list[int]:
        """Node ids of the longest prefix of `hashes` present in the tree (any holder)."""
        return self.match(hashes)

    def holders(self, node: int) -> dict[int, float]:
        return self._holders[node]

    def match_per_tenant(self, hashes: BlockHashes) -> dict[int, int]:
        """Tenant -> number of leading blocks of `hashes` it holds contiguously from the root."""
        out: dict[int, int] = {}
        alive: set[int] | None = None
        for node in self.match(hashes):
            held = self._holders[node].keys()
            alive = set(held) if alive is None else alive.intersection(held)
            if not alive:
                break
            for t in alive:
                out[t] = out.get(t, 0) + 1
        return out

    def best_tenant(self, hashes: BlockHashes) -> tuple[int, int]:
        """(matched blocks, tenant): the deepest node on the path that any tenant holds, and its
        most recently used tenant (ties: lowest id) — the SGLang router's `prefix_match`.
        Returns (0, -1) if nothing matches."""
        best_len, best = 0, -1
        for depth, node in enumerate(self.match(hashes), start=1):
            h = self._holders[node]
            if h:
                best_len = depth
                best = min(h, key=lambda t: (-h[t], t))
        return best_len, best

    def tenant_blocks(self, tenant: int) -> int:
        return len(self.tenant_nodes.get(tenant, ()))

    def __len__(self) -> int:
        """Nodes in the tree now (evicted and pruned ones excluded)."""
        return len(self._child)

    # ------------------------------------------------------------------ updates
    def insert(self, hashes: BlockHashes, tenant: int, now: float) -> None:
        parent = ROOT
        nodes = self.tenant_nodes.setdefault(tenant, set())
        for h in hashes:
            node = self.child(parent, h)
            if node is None:
                node = self.add(parent, h)
            self._holders[node][tenant] = now
            nodes.add(node)
            parent = node

    def remove(self, hash_path: BlockHashes, tenant: int, if_untouched_since: float | None = None) -> bool:
        """Drop `tenant` from the node at the end of `hash_path` (an eviction report). With
        `if_untouched_since`, keep it if the tenant was (re)inserted there after that time: the
        report may predate the re-insertion. Returns True if removed."""
        nodes = self.match(hash_path)
        if len(nodes) != len(hash_path) or not nodes:
            return False
        node = nodes[-1]
        h = self._holders[node]
        if tenant not in h or (if_untouched_since is not None and h[tenant] > if_untouched_since):
            return False
        del h[tenant]
        self.tenant_nodes[tenant].discard(node)
        self._prune(node)
        return True

    def _prune(self, node: int) -> None:
        self.prune(node, keep=lambda n: bool(self._holders[n]))

    def move(self, hash_path: BlockHashes, src: int, dst: int, now: float) -> None:
        """Re-assign the prefix `hash_path` from tenant `src` to `dst` (Preble's rebalancing)."""
        self.insert(hash_path, dst, now)
        nodes = self.match(hash_path)
        if nodes and src in self._holders[nodes[-1]]:
            del self._holders[nodes[-1]][src]
            self.tenant_nodes[src].discard(nodes[-1])

    def evict_tenant(self, tenant: int, max_blocks: int) -> int:
        """LRU-evict `tenant`'s nodes until it holds at most `max_blocks`; a node's time is never
        older than its descendants' (inserts touch whole paths), so ordering by (time, -depth)
        removes leaves first. Returns the number of nodes evicted."""
        nodes = self.tenant_nodes.get(tenant, set())
        excess = len(nodes) - max_blocks
        if excess <= 0:
            return 0
        # ties by creation order (= node id in a tree that never reuses ids)
        order = sorted(nodes, key=lambda n: (self._holders[n][tenant], -self._depth[n], self._born[n]))
        for node in order[:excess]:
            del self._holders[node][tenant]
            nodes.discard(node)
        for node in order[:excess]:
            self._prune(node)
        return excess


class EvictionFeed:
    """Brings instances' prefix-cache evictions into a `PrefixIndex`, each applied `delay_s` after
    the router first sees it (D²LPM: "eviction information … applied asynchronously"). A report
    does not remove a prefix the router has re-inserted since the previous poll."""

    def __init__(self, delay_s: float = 0.0) -> None:
        if delay_s < 0:
            raise ValueError("eviction delay must be >= 0 s")
        self.delay_s = float(delay_s)
        self._queue: deque[tuple[float, float, int, tuple[int, ...]]] = deque()
        self._last_poll = -np.inf
        self.applied = 0

    def poll(self, view: ClusterView, index: PrefixIndex, now: float) -> None:
        since = self._last_poll
        for j in range(view.n_instances):
            for path in view.instance(j).drain_evictions():
                self._queue.append((now + self.delay_s, since, j, path))
        self._last_poll = now
        q = self._queue
        while q and q[0][0] <= now:
            _, seen_after, j, path = q.popleft()
            self.applied += index.remove(path, j, if_untouched_since=seen_after)
