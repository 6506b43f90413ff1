"""The one prefix tree: a radix tree over prompt block hashes, and its named eviction strategies.

A node is one hash block, keyed by (parent node, block hash); the root is the virtual node -1.
Node ids are dense integers, so users keep their per-node payload in lists indexed by node id
(struct of arrays). By default an id is never reused, so a caller may keep ids of removed nodes
(they stay dead); a tree built with `reuse_node_ids=True` gives a removed node's id to the next
new node instead (its payload reset by the `_reuse_node` hook), so its lists grow with the nodes
alive at once, not with every node ever made, and its callers must not keep node ids across updates: the engine's prefix cache (`llmsched.sim.kvcache.PrefixTree`:
reference counts, access stamps, hit counts), the routers' view of who caches what
(`llmsched.sim.prefix_index.PrefixIndex`: tenant -> time) and SGLang's DFS-weight queue order
(`llmsched.policies.batching.lpm`: waiting requests per subtree). Subclasses extend `_new_node`
to append their payload.

Eviction strategies carry SGLang's names and priorities (`python/sglang/srt/mem_cache/
evict_policy.py`): the evictable leaf with the smallest priority goes first, ties by node id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np

ROOT = -1
# a path of prefix block hashes from the root: a workload's int64 array slice or a Python sequence
BlockHashes: TypeAlias = Sequence[int] | np.ndarray


class RadixTree:
    """Nodes keyed by (parent, block hash); structure only, payload in subclasses or callers."""

    __slots__ = ("_child", "_depth", "_free", "_key", "_nchild", "_parent", "_reuse_ids", "nodes_alive")

    def __init__(self, reuse_node_ids: bool = False) -> None:
        self._reuse_ids = reuse_node_ids
        self._free: list[int] = []  # removed node ids, reused last-in first (reuse_node_ids only)
        self._child: dict[tuple[int, int], int] = {}
        self._parent: list[int] = []
        self._key: list[tuple[int, int] | None] = []  # None once removed
        self._nchild: list[int] = []
        self._depth: list[int] = []  # blocks from the root to the node, the node included
        self.nodes_alive = 0

    # ------------------------------------------------------------------ queries
    def match(self, hashes: BlockHashes) -> list[int]:
        """Node ids of the longest prefix of `hashes` in the tree (no side effects)."""
        path: list[int] = []
        parent = ROOT
        get = self._child.get
        for h in hashes.tolist() if isinstance(hashes, np.ndarray) else hashes:  # Python ints: no per-block int()
            node = get((parent, h))
            if node is None:
                break
            path.append(node)
            parent = node
        return path

    def child(self, parent: int, block_hash: int) -> int | None:
        return self._child.get((parent, int(block_hash)))

    def alive(self, node: int) -> bool:
        return self._key[node] is not None

    def is_leaf(self, node: int) -> bool:
        return self._nchild[node] == 0

    def parent(self, node: int) -> int:
        return self._parent[node]

    def depth(self, node: int) -> int:
        return self._depth[node]

    def hash_path(self, node: int) -> tuple[int, ...]:
        """The block hashes from the root down to `node` (which must be alive)."""
        out = []
        while node != ROOT:
            key = self._key[node]
            assert key is not None, "hash_path of a removed node"
            parent, block_hash = key
            out.append(block_hash)
            node = parent
        return tuple(reversed(out))

    # ------------------------------------------------------------------ updates
    def add(self, parent: int, block_hash: int) -> int:
        """Create the child of `parent` for `block_hash` (which must be absent); returns its id."""
        key = (parent, int(block_hash))
        depth = 1 if parent == ROOT else self._depth[parent] + 1
        reused = bool(self._free)
        if reused:
            node = self._free.pop()
            self._parent[node] = parent
            self._key[node] = key
            self._nchild[node] = 0
            self._depth[node] = depth
        else:
            node = len(self._parent)
            self._parent.append(parent)
            self._key.append(key)
            self._nchild.append(0)
            self._depth.append(depth)
        self._child[key] = node
        if parent != ROOT:
            self._nchild[parent] += 1
        self.nodes_alive += 1
        if reused:
            self._reuse_node(node)
        else:
            self._new_node(node)
        return node

    def _new_node(self, node: int) -> None:
        """Hook: subclasses append the new node's payload here."""

    def _reuse_node(self, node: int) -> None:
        """Hook (`reuse_node_ids` trees): subclasses reset the payload of a reused node id here."""
        raise NotImplementedError(f"{type(self).__name__} reuses node ids but does not reset their payload")

    def remove_leaf(self, node: int) -> int:
        """Remove a leaf; returns its parent (ROOT for a top-level node)."""
        key = self._key[node]
        assert key is not None and self._nchild[node] == 0, "remove_leaf of a removed or inner node"
        del self._child[key]
        self._key[node] = None
        self.nodes_alive -= 1
        if self._reuse_ids:
            self._free.append(node)
        parent = self._parent[node]
        if parent != ROOT:
            self._nchild[parent] -= 1
        return parent

    def prune(self, node: int, keep: Callable[[int], bool]) -> None:
        """Remove `node` and then its ancestors while each is an alive leaf that `keep` rejects."""
        while node != ROOT and self._key[node] is not None and self._nchild[node] == 0 and not keep(node):
            node = self.remove_leaf(node)


# ---------------------------------------------------------------------- eviction strategies
# name -> priority of an evictable node from (last access stamp, hit count, creation stamp);
# smaller is evicted first (SGLang evict_policy.py; "slru": protected once hit twice, threshold 2)
EvictionPriority = Callable[[int, int, int], tuple[int, ...]]
EVICTION_STRATEGIES: dict[str, EvictionPriority] = {
    "lru": lambda last_access, _hits, _created: (last_access,),
    "lfu": lambda last_access, hits, _created: (hits, last_access),
    "fifo": lambda _last_access, _hits, created: (created,),
    "mru": lambda last_access, _hits, _created: (-last_access,),
    "filo": lambda _last_access, _hits, created: (-created,),
    "slru": lambda last_access, hits, _created: (int(hits >= 2), last_access),
}
