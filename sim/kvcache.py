"""Paged KV memory and the radix-tree prefix cache of one instance.

Owns block accounting (private blocks per request + shared cached prefix blocks) and the eviction
of unreferenced cached blocks (on the one radix tree, `llmsched.sim.radix`). Knows nothing about time, policies or requests' progress: the
instance tells it how many blocks each request holds.
"""

from __future__ import annotations

from llmsched.sim.events import PriorityQueue
from llmsched.sim.radix import EVICTION_STRATEGIES, ROOT, RadixTree


class PrefixTree(RadixTree):
    """The instance's prefix cache: the radix tree with reference counts and named eviction.

    A node is one hash block of `hash_block_tokens` prompt tokens, occupying `blocks_per_node` KV
    blocks. A request that uses a cached path holds a reference on every node of the path, so a
    referenced node never has an unreferenced ancestor; unreferenced leaves are evictable in the
    order of the eviction strategy (`llmsched.sim.radix.EVICTION_STRATEGIES`, default "lru"),
    ties by node id (deterministic).
    """

    __slots__ = ("_clock", "_created", "_evict_queue", "_hits", "_priority", "_ref", "_stamp",
                 "blocks_per_node", "eviction", "eviction_log", "nodes_evictable")

    def __init__(self, blocks_per_node: int, eviction: str = "lru") -> None:
        super().__init__()
        if eviction not in EVICTION_STRATEGIES:
            raise ValueError(f"unknown eviction strategy {eviction!r}; known: {sorted(EVICTION_STRATEGIES)}")
        self.blocks_per_node = blocks_per_node
        self.eviction = eviction
        self._priority = EVICTION_STRATEGIES[eviction]
        self._ref: list[int] = []
        self._stamp: list[int] = []  # clock of the last acquire or insert
        self._hits: list[int] = []  # acquires and re-inserts after creation
        self._created: list[int] = []  # clock at creation
        self._evict_queue: PriorityQueue[int] = PriorityQueue()  # evictable leaves; stale entries skipped
        self.nodes_evictable = 0
        self._clock = 0
        # when a list: every evicted node's hash path (root first) is appended, for router-side
        # prefix indexes (sim/prefix_index.py); None = not recorded (no cost)
        self.eviction_log: list[tuple[int, ...]] | None = None

    def _new_node(self, node: int) -> None:  # noqa: ARG002 - RadixTree's hook; the payload is appended in node order
        self._ref.append(1)
        self._stamp.append(self._clock)
        self._hits.append(0)
        self._created.append(self._clock)

    @property
    def blocks(self) -> int:
        return self.nodes_alive * self.blocks_per_node

    @property
    def evictable_blocks(self) -> int:
        return self.nodes_evictable * self.blocks_per_node

    def is_referenced(self, node: int) -> bool:
        return self._ref[node] > 0

    def _eviction_key(self, node: int) -> tuple[int, ...]:
        return (*self._priority(self._stamp[node], self._hits[node], self._created[node]), node)

    def _touch(self, node: int) -> None:
        if self._ref[node] == 0:
            self.nodes_evictable -= 1
        self._ref[node] += 1
        self._stamp[node] = self._clock
        self._hits[node] += 1

    def acquire(self, path: list[int]) -> None:
        """Reference every node of `path` and mark it used now."""
        self._clock += 1
        for node in path:
            self._touch(node)

    def release(self, path: list[int]) -> None:
        for node in reversed(path):
            self._ref[node] -= 1
            if self._ref[node] == 0:
                self.nodes_evictable += 1
                if self._nchild[node] == 0:
                    self._evict_queue.push(self._eviction_key(node), node)

    def insert(self, hashes, start: int, path: list[int]) -> int:
        """Extend `path` (already acquired, covering hashes[:start]) with hashes[start:].

        Nodes that already exist are acquired; missing ones are created (referenced once).
        Returns the number of nodes created (their KV blocks move from the request to the tree).
        """
        self._clock += 1
        parent = path[-1] if path else ROOT
        created = 0
        child = self._child
        for i in range(start, len(hashes)):
            node = child.get((parent, int(hashes[i])))
            if node is None:
                node = self.add(parent, hashes[i])
                created += 1
            else:
                self._touch(node)
            path.append(node)
            parent = node
        return created

    def evict(self, blocks_needed: int) -> int:
        """Evict unreferenced leaves in strategy order until `blocks_needed` blocks are freed;
        returns the blocks freed."""
        freed = 0
        queue = self._evict_queue
        while freed < blocks_needed and queue:
            key, node = queue.pop()
            if (self._key[node] is None or self._ref[node] != 0 or self._nchild[node] != 0
                    or self._eviction_key(node) != key):
                continue  # stale entry
            if self.eviction_log is not None:
                self.eviction_log.append(self.hash_path(node))
            parent = self.remove_leaf(node)
            self.nodes_evictable -= 1
            freed += self.blocks_per_node
            if parent != ROOT and self._nchild[parent] == 0 and self._ref[parent] == 0:
                queue.push(self._eviction_key(parent), parent)
        return freed

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
        tree = self.tree  # used_blocks inlined (the engine reads this once per iteration segment)
        return self.total_blocks - (self.private_blocks + (tree.blocks if tree else 0))

    @property
    def available_blocks(self) -> int:
        """Free plus evictable (unreferenced cached) blocks."""
        tree = self.tree
        if not tree:
            return self.total_blocks - self.private_blocks
        return self.total_blocks - (self.private_blocks + tree.blocks) + tree.evictable_blocks

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
