"""Router-side prefix state: per-tenant contiguous matches, MRU tenant, LRU trimming, and the
delayed eviction feed (with a negative control: without the feed, evicted prefixes stay)."""

from __future__ import annotations

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
