"""Router-side prefix state: per-tenant contiguous matches, MRU tenant, LRU trimming, and the
delayed eviction feed (with a negative control: without the feed, evicted prefixes stay)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.prefix_index import EvictionFeed, PrefixIndex
from tests.routing.fakes import FakeStats, FakeView


def test_match_per_tenant_counts_contiguous_blocks_only():
    ix = PrefixIndex()
    ix.insert([1, 2, 3, 4], tenant=0, now=0.0)
    ix.insert([1, 2], tenant=1, now=1.0)
    ix.insert([1, 9], tenant=2, now=2.0)
    assert ix.match_per_tenant([1, 2, 3, 4, 5]) == {0: 4, 1: 2, 2: 1}  # 2 holds block 1 via [1, 9]
    assert ix.match_per_tenant([1, 9]) == {0: 1, 1: 1, 2: 2}
    assert ix.match_per_tenant([7]) == {}
    # an eviction in the middle of tenant 0's path cuts its match there (gap)
    assert ix.remove([1, 2], 0)
    assert ix.match_per_tenant([1, 2, 3, 4]) == {0: 1, 1: 2, 2: 1}


def test_best_tenant_is_deepest_then_most_recent():
    ix = PrefixIndex()
    ix.insert([1, 2, 3], 0, now=0.0)
    ix.insert([1, 2, 3], 1, now=5.0)
    ix.insert([1, 2], 2, now=9.0)
    assert ix.best_tenant([1, 2, 3, 8]) == (3, 1)  # depth 3 held by 0 and 1; 1 used later
    assert ix.best_tenant([1, 2, 7]) == (2, 2)  # depth 2: tenant 2 is the most recent
    assert ix.best_tenant([5]) == (0, -1)


def test_evict_tenant_removes_least_recent_leaves_first():
    ix = PrefixIndex()
    ix.insert([1, 2, 3], 0, now=0.0)  # nodes 1,2,3 at t=0
    ix.insert([1, 5], 0, now=1.0)  # node 1 touched at t=1, node 5 at t=1
    assert ix.tenant_blocks(0) == 4
    assert ix.evict_tenant(0, max_blocks=2) == 2
    # oldest are 3 (t=0, depth 2) then 2 (t=0, depth 1): leaves first; [1, 5] survives
    assert ix.match_per_tenant([1, 5]) == {0: 2}
    assert ix.match_per_tenant([1, 2, 3]) == {0: 1}
    assert ix.evict_tenant(0, max_blocks=2) == 0


def test_remove_keeps_a_prefix_reinserted_after_the_report_window():
    ix = PrefixIndex()
    ix.insert([1, 2], 0, now=4.0)
    assert not ix.remove([1, 2], 0, if_untouched_since=3.0)  # re-inserted at 4 > 3: keep
    assert ix.remove([1, 2], 0, if_untouched_since=4.0)


def _view():
    return FakeView([FakeStats(0), FakeStats(1)])


def test_eviction_feed_applies_reports_after_the_delay():
    ix = PrefixIndex()
    ix.insert([1, 2], 0, now=0.0)
    ix.insert([1, 2], 1, now=0.0)
    feed = EvictionFeed(delay_s=5.0)
    view = _view()
    feed.poll(view, ix, 0.0)  # first poll: nothing reported yet
    view.stats[0].evictions = [(1, 2)]
    view.now = 1.0
    feed.poll(view, ix, 1.0)
    assert ix.match_per_tenant([1, 2]) == {0: 2, 1: 2}  # reported, not applied before t = 6
    feed.poll(view, ix, 5.9)
    assert ix.match_per_tenant([1, 2])[0] == 2
    feed.poll(view, ix, 6.0)
    assert ix.match_per_tenant([1, 2]) == {0: 1, 1: 2}
    assert feed.applied == 1


def test_without_the_feed_evicted_prefixes_stay_negative_control():
    ix = PrefixIndex()
    ix.insert([1, 2], 0, now=0.0)
    view = _view()
    view.stats[0].evictions = [(1, 2)]
    assert ix.match_per_tenant([1, 2]) == {0: 2}  # the report was never polled


# ---- node-id reuse (issue 13 item 4): the same beliefs, lists that stay as large as the tree

_ops = st.lists(
    st.tuples(st.sampled_from(["insert", "remove", "evict", "move"]),
              st.lists(st.integers(0, 3), min_size=1, max_size=5),  # a short hash path over a small alphabet
              st.integers(0, 2), st.integers(0, 2), st.integers(0, 6)),
    min_size=1, max_size=60)


def _replay(ix: PrefixIndex, ops) -> list:
    """Apply `ops` to `ix` (three steps share a time, so eviction meets ties) and record every
    answer a router reads."""
    seen = []
    for step, (op, path, tenant, other, cap) in enumerate(ops):
        now = float(step // 3)
        if op == "insert":
            ix.insert(path, tenant, now=now)
        elif op == "remove":
            seen.append(ix.remove(path, tenant, if_untouched_since=now - 1.0))
        elif op == "evict":
            seen.append(ix.evict_tenant(tenant, cap))
        else:
            ix.move(path, tenant, other, now=now)
        probe = [*path, 0, 1]
        seen.append((ix.match_per_tenant(probe), ix.best_tenant(probe), len(ix),
                     [ix.tenant_blocks(t) for t in range(3)]))
    return seen


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_reusing_node_ids_changes_no_answer(ops):
    """Side by side: a tree that reuses pruned nodes' ids answers every query as one that never does
    (eviction ties by creation order, which was the node id before)."""
    assert _replay(PrefixIndex(reuse_node_ids=True), ops) == _replay(PrefixIndex(), ops)


def test_reused_ids_keep_the_lists_as_large_as_the_tree_negative_control():
    """Insert and evict many distinct prefixes: with reuse the per-node lists stay at the largest
    tree; without it (the negative control) they grow with every prefix ever inserted."""
    sizes = {}
    for reuse in (True, False):
        ix = PrefixIndex(reuse_node_ids=reuse)
        for i in range(200):
            ix.insert([1000 + i, 1, 2], tenant=0, now=float(i))
            ix.evict_tenant(0, max_blocks=6)
        assert len(ix) == 6
        sizes[reuse] = len(ix._holders)
    assert sizes[True] <= 9
    assert sizes[False] == 600


def test_a_tree_that_reuses_ids_must_reset_their_payload():
    from llmsched.sim.radix import RadixTree

    class NoReset(RadixTree):
        pass

    tree = NoReset(reuse_node_ids=True)
    node = tree.add(-1, 5)
    tree.remove_leaf(node)
    with pytest.raises(NotImplementedError, match="does not reset their payload"):
        tree.add(-1, 6)


def test_eviction_ties_follow_creation_order_when_an_id_is_reused():
    """B is made before C at the same time and depth; C reuses the id of a pruned node made before
    B, so a tie broken by node id would evict C first, where a tree without reuse evicts B."""
    evicted = {}
    for reuse in (True, False):
        ix = PrefixIndex(reuse_node_ids=reuse)
        ix.insert([7], tenant=1, now=0.0)  # A: id 0, tenant 1's
        ix.insert([8], tenant=0, now=1.0)  # B
        ix.remove([7], 1)  # A pruned: its id is free under reuse
        ix.insert([9], tenant=0, now=1.0)  # C: same time and depth as B (id 0 under reuse)
        ix.evict_tenant(0, max_blocks=1)
        evicted[reuse] = ix.match_per_tenant([8]), ix.match_per_tenant([9])
    assert evicted[True] == evicted[False] == ({}, {0: 1})
