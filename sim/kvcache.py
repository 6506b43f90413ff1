"""Paged KV memory and the radix-tree prefix cache of one instance.

Owns block accounting (private blocks per request + shared cached prefix blocks) and LRU eviction
of unreferenced cached blocks. Knows nothing about time, policies or requests' progress: the
instance tells it how many blocks each request holds.
"""

from __future__ import annotations

import heapq


class PrefixTree:
    """A radix tree over prefix block hashes with reference counts and LRU eviction of leaves.

    A node is one hash block of `hash_block_tokens` prompt tokens, occupying `blocks_per_node` KV
    blocks. A request that uses a cached path holds a reference on every node of the path, so a
    node with references never has an unreferenced... ancestor; unreferenced nodes are evictable,
    leaves first, least recently used first (ties by node id: deterministic).
    """

    __slots__ = (
        "_child",
        "_clock",
        "_heap",
        "_key",
        "_nchild",
        "_next_id",
        "_parent",
        "_ref",
        "_stamp",
        "blocks_per_node",
        "eviction_log",
        "nodes_alive",
        "nodes_evictable",
    )

    def __init__(self, blocks_per_node: int) -> None:
        self.blocks_per_node = blocks_per_node
        self._child: dict[tuple[int, int], int] = {}
        self._parent: list[int] = []
        self._ref: list[int] = []
        self._stamp: list[int] = []
        self._nchild: list[int] = []
        self._key: list[tuple[int, int] | None] = []
        self._heap: list[tuple[int, int]] = []
        self.nodes_alive = 0
        self.nodes_evictable = 0
        self._clock = 0
        self._next_id = 0
        # when a list: every evicted node's hash path (root first) is appended, for router-side
        # prefix indexes (sim/prefix_index.py); None = not recorded (no cost)
        self.eviction_log: list[tuple[int, ...]] | None = None

    @property
    def blocks(self) -> int:
        return self.nodes_alive * self.blocks_per_node

    @property
    def evictable_blocks(self) -> int:
        return self.nodes_evictable * self.blocks_per_node

    def match(self, hashes) -> list[int]:
        """Node ids of the longest cached prefix of `hashes` (no side effects)."""
        path: list[int] = []
        parent = -1
        child = self._child
        for h in hashes:
            node = child.get((parent, int(h)))
            if node is None:
                break
            path.append(node)
            parent = node
        return path

    def acquire(self, path: list[int]) -> None:
        """Reference every node of `path` and mark it most recently used."""
        self._clock += 1
        for node in path:
            if self._ref[node] == 0:
                self.nodes_evictable -= 1
            self._ref[node] += 1
            self._stamp[node] = self._clock

    def release(self, path: list[int]) -> None:
        for node in reversed(path):
            self._ref[node] -= 1
            if self._ref[node] == 0:
                self.nodes_evictable += 1
                if self._nchild[node] == 0:
                    heapq.heappush(self._heap, (self._stamp[node], node))

    def insert(self, hashes, start: int, path: list[int]) -> int:
        """Extend `path` (already acquired, covering hashes[:start]) with hashes[start:].

        Nodes that already exist are acquired; missing ones are created (referenced once).
        Returns the number of nodes created (their KV blocks move from the request to the tree).
        """
        self._clock += 1
        parent = path[-1] if path else -1
        created = 0
        for i in range(start, len(hashes)):
            key = (parent, int(hashes[i]))
            node = self._child.get(key)
            if node is None:
                node = self._next_id
                self._next_id += 1
                self._parent.append(parent)
                self._ref.append(1)
                self._stamp.append(self._clock)
                self._nchild.append(0)
                self._key.append(key)
                self._child[key] = node
                if parent >= 0:
                    self._nchild[parent] += 1
                self.nodes_alive += 1
                created += 1
            else:
                if self._ref[node] == 0:
                    self.nodes_evictable -= 1
                self._ref[node] += 1
                self._stamp[node] = self._clock
            path.append(node)
            parent = node
        return created

    def evict(self, blocks_needed: int) -> int:
        """Evict LRU unreferenced leaves until `blocks_needed` blocks are freed; returns blocks freed."""
        freed = 0
        heap = self._heap
        while freed < blocks_needed and heap:
            stamp, node = heapq.heappop(heap)
            if (self._key[node] is None or self._ref[node] != 0 or self._nchild[node] != 0
                    or self._stamp[node] != stamp):
                continue  # stale entry
            if self.eviction_log is not None:
                self.eviction_log.append(self.hash_path(node))
            del self._child[self._key[node]]
            self._key[node] = None
            self.nodes_alive -= 1
            self.nodes_evictable -= 1
            freed += self.blocks_per_node
            parent = self._parent[node]
            if parent >= 0:
                self._nchild[parent] -= 1
                if self._nchild[parent] == 0 and self._ref[parent] == 0:
                    heapq.heappush(heap, (self._stamp[parent], parent))
        return freed

    def hash_path(self, node: int) -> tuple[int, ...]:
        """The block hashes from the root down to `node` (which must be alive)."""
        out = []
        while node >= 0:
            parent, h = self._key[node]
            out.append(h)
            node = parent
        return tuple(reversed(out))

    def contains_prefix_len(self, hashes) -> int:
        return len(self.match(hashes))


class KVPool:
    """Block accounting for one instance: private blocks held by requests + the prefix tree."""

    __slots__ = ("block_size", "private_blocks", "total_blocks", "tree")

    def __init__(self, total_blocks: int, block_size: int, tree: PrefixTree | None) -> None:
        self.total_blocks = total_blocks
        self.block_size = block_size
        self.private_blocks = 0
        self.tree = tree

    @property
    def used_blocks(self) -> int:
        return self.private_blocks + (self.tree.blocks if self.tree else 0)

    @property
    def free_blocks(self) -> int:
        return self.total_blocks - self.used_blocks

    @property
    def available_blocks(self) -> int:
        """Free plus evictable (unreferenced cached) blocks."""
        return self.free_blocks + (self.tree.evictable_blocks if self.tree else 0)

    def allocate(self, n: int) -> None:
        """Take `n` private blocks, evicting cached prefixes (LRU) if needed."""
        if n <= 0:
            self.private_blocks += n
            return
        short = n - self.free_blocks
        if short > 0 and (self.tree is None or self.tree.evict(short) < short):
            raise RuntimeError("KV allocation beyond capacity (engine invariant broken)")
        self.private_blocks += n

    def release(self, n: int) -> None:
        self.private_blocks -= n
