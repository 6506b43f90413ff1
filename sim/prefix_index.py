"""Router-side prefix state: a radix tree over prefix block hashes recording which instances
("tenants") hold which prefixes, fed by the router's own routing history and, optionally, by
the instances' eviction logs after a configurable delay (D²LPM's asynchronous global radix tree),
or trimmed per tenant by LRU to a size cap (the SGLang router's approximate tree).

Owns only the router's belief about cache contents; it never reads or changes instance memory
except through `InstanceStats.drain_evictions()` (see `EvictionFeed`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


def prompt_blocks(view, rid: int) -> np.ndarray:
    """The request's full prompt hash blocks (only full blocks are cached, as in `llmsched.sim.instance`)."""
    h = view.hashes(rid)
    hb = view.hash_block_tokens
    full = view.prompt_tokens(rid) // hb if hb > 0 else 0
    return h[: min(full, len(h))]


class PrefixIndex:
    """A radix tree over block hashes; each node maps tenant -> the time it was last inserted or
    touched by that tenant. A tenant holds a prefix of length k iff it holds all k nodes of the
    path (gaps left by evictions cut its match short)."""

    def __init__(self) -> None:
        self._child: dict[tuple[int, int], int] = {}
        self._parent: list[int] = []
        self._key: list[tuple[int, int] | None] = []
        self._holders: list[dict[int, float]] = []
        self._nchild: list[int] = []
        self._depth: list[int] = []
        self.tenant_nodes: dict[int, set[int]] = {}

    # ------------------------------------------------------------------ queries
    def path(self, hashes: Sequence[int]) -> list[int]:
        """Node ids of the longest prefix of `hashes` present in the tree (any holder)."""
        out: list[int] = []
        parent = -1
        for h in hashes:
            node = self._child.get((parent, int(h)))
            if node is None:
                break
            out.append(node)
            parent = node
        return out

    def holders(self, node: int) -> dict[int, float]:
        return self._holders[node]

    def match_per_tenant(self, hashes: Sequence[int]) -> dict[int, int]:
        """Tenant -> number of leading blocks of `hashes` it holds contiguously from the root."""
        out: dict[int, int] = {}
        alive: set[int] | None = None
        for node in self.path(hashes):
            held = self._holders[node].keys()
            alive = set(held) if alive is None else alive.intersection(held)
            if not alive:
                break
            for t in alive:
                out[t] = out.get(t, 0) + 1
        return out

    def best_tenant(self, hashes: Sequence[int]) -> tuple[int, int]:
        """(matched blocks, tenant): the deepest node on the path that any tenant holds, and its
        most recently used tenant (ties: lowest id) — the SGLang router's `prefix_match`.
        Returns (0, -1) if nothing matches."""
        best_len, best = 0, -1
        for depth, node in enumerate(self.path(hashes), start=1):
            h = self._holders[node]
            if h:
                best_len = depth
                best = min(h, key=lambda t: (-h[t], t))
        return best_len, best

    def tenant_blocks(self, tenant: int) -> int:
        return len(self.tenant_nodes.get(tenant, ()))

    # ------------------------------------------------------------------ updates
    def insert(self, hashes: Sequence[int], tenant: int, now: float) -> None:
        parent = -1
        nodes = self.tenant_nodes.setdefault(tenant, set())
        for h in hashes:
            key = (parent, int(h))
            node = self._child.get(key)
            if node is None:
                node = len(self._parent)
                self._parent.append(parent)
                self._key.append(key)
                self._holders.append({})
                self._nchild.append(0)
                self._depth.append(0 if parent < 0 else self._depth[parent] + 1)
                self._child[key] = node
                if parent >= 0:
                    self._nchild[parent] += 1
            self._holders[node][tenant] = now
            nodes.add(node)
            parent = node

    def remove(self, hash_path: Sequence[int], tenant: int, if_untouched_since: float | None = None) -> bool:
        """Drop `tenant` from the node at the end of `hash_path` (an eviction report). With
        `if_untouched_since`, keep it if the tenant was (re)inserted there after that time: the
        report may predate the re-insertion. Returns True if removed."""
        nodes = self.path(hash_path)
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
        while node >= 0 and not self._holders[node] and self._nchild[node] == 0 and self._key[node] is not None:
            parent = self._parent[node]
            del self._child[self._key[node]]
            self._key[node] = None
            if parent >= 0:
                self._nchild[parent] -= 1
            node = parent

    def move(self, hash_path: Sequence[int], src: int, dst: int, now: float) -> None:
        """Re-assign the prefix `hash_path` from tenant `src` to `dst` (Preble's rebalancing)."""
        self.insert(hash_path, dst, now)
        nodes = self.path(hash_path)
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
        order = sorted(nodes, key=lambda n: (self._holders[n][tenant], -self._depth[n], n))
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

    def poll(self, view, index: PrefixIndex, now: float) -> None:
        since = self._last_poll
        for j in range(view.n_instances):
            for path in view.instance(j).drain_evictions():
                self._queue.append((now + self.delay_s, since, j, path))
        self._last_poll = now
        q = self._queue
        while q and q[0][0] <= now:
            _, seen_after, j, path = q.popleft()
            self.applied += index.remove(path, j, if_untouched_since=seen_after)
