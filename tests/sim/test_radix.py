"""The one prefix tree (`llmsched.sim.radix`) and its users: structure, named eviction strategies
on the engine's prefix cache (hand-derived orders), the router index, and the DFS-weight order."""

from __future__ import annotations

import pytest

from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig
from llmsched.sim.errors import InputError
from llmsched.sim.kvcache import PrefixTree
from llmsched.sim.prefix_index import PrefixIndex
from llmsched.sim.radix import EVICTION_STRATEGIES, ROOT, RadixTree


def test_structure_add_match_remove_and_prune():
    t = RadixTree()
    a = t.add(ROOT, 7)
    b = t.add(a, 8)
    c = t.add(a, 9)
    assert t.match([7, 8, 5]) == [a, b] and t.match([6]) == []
    assert t.depth(b) == 2 and t.parent(b) == a and t.hash_path(c) == (7, 9)
    assert not t.is_leaf(a) and t.nodes_alive == 3
    assert t.remove_leaf(b) == a and not t.alive(b) and t.match([7, 8]) == [a]
    t.prune(c, keep=lambda n: False)  # c, then a (now a leaf) go
    assert t.nodes_alive == 0 and t.match([7]) == []
    assert t.add(ROOT, 7) == 3  # ids are never reused


def _three_leaves(strategy: str) -> tuple[PrefixTree, list[int]]:
    """Three single-node prefixes A, B, C created at clocks 1, 2, 3; then A is acquired twice more
    (clocks 4, 5) and C once (clock 6); all released, so all three are evictable leaves.
    Stamps: A 5, B 2, C 6. Hits: A 2, B 0, C 1. Created: A 1, B 2, C 3."""
    tree = PrefixTree(blocks_per_node=1, eviction=strategy)
    paths = []
    for h in (10, 20, 30):
        path: list[int] = []
        tree.insert([h], 0, path)
        paths.append(path)
    for p in (paths[0], paths[0], paths[2]):
        tree.acquire(p)
    for p, times in zip(paths, (3, 1, 2)):
        for _ in range(times):
            tree.release(p)
    tree.eviction_log = []
    return tree, [p[0] for p in paths]


@pytest.mark.parametrize("strategy, order", [
    ("lru", [20, 10, 30]),   # stamps B 2 < A 5 < C 6
    ("lfu", [20, 30, 10]),   # hits B 0 < C 1 < A 2
    ("fifo", [10, 20, 30]),  # created A 1 < B 2 < C 3
    ("mru", [30, 10, 20]),   # stamps, largest first
    ("filo", [30, 20, 10]),  # created, largest first
    ("slru", [20, 30, 10]),  # A is protected (2 hits); then B (stamp 2) before C (stamp 6)
])
def test_named_eviction_strategies_evict_in_the_hand_derived_order(strategy, order):
    tree, _ = _three_leaves(strategy)
    assert tree.evictable_blocks == 3
    assert tree.evict(3) == 3
    assert [path[0] for path in tree.eviction_log] == order
    assert tree.nodes_alive == 0


def test_referenced_nodes_and_inner_nodes_are_not_evicted():
    tree = PrefixTree(blocks_per_node=2)
    path: list[int] = []
    tree.insert([1, 2, 3], 0, path)  # one request holds the whole path
    assert tree.evictable_blocks == 0 and tree.evict(2) == 0
    tree.release(path)
    tree.eviction_log = []
    assert tree.evict(2) == 2 and tree.eviction_log == [(1, 2, 3)]  # the leaf first, never the root side
    assert tree.evict(10) == 4 and tree.eviction_log[1:] == [(1, 2), (1,)]


def test_unknown_strategy_is_rejected_in_the_config():
    assert set(EVICTION_STRATEGIES) >= {"lru", "lfu", "fifo"}
    spec = InstanceSpec(prefix_eviction="random")
    with pytest.raises(InputError, match="prefix_eviction"):
        RunConfig(cluster=ClusterSpec(instances=(spec,))).validate("run.toml")


def test_router_index_is_the_same_tree_with_tenant_payload():
    idx = PrefixIndex()
    idx.insert([1, 2, 3], tenant=0, now=1.0)
    idx.insert([1, 2], tenant=1, now=2.0)
    assert isinstance(idx, RadixTree)
    assert idx.match_per_tenant([1, 2, 3]) == {0: 3, 1: 2}
    assert idx.best_tenant([1, 2, 3]) == (3, 0)
    assert idx.remove((1, 2, 3), tenant=0)
    assert idx.nodes_alive == 2  # node 3 had no other holder: pruned
    assert idx.evict_tenant(1, max_blocks=0) == 2 and idx.match([1]) == [0]  # tenant 0 still holds 1, 2
