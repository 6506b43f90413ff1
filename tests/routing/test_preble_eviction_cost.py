"""Preble's eviction-cost term E (`GlobalSchedulerTimeWithEviction`): hand-derived values on a
hand-built cluster state, the decision it changes, and a negative control with E off."""

from __future__ import annotations

import pytest

from llmsched.policies.routing.preble import Preble
from tests.routing.fakes import FakeStats, FakeView

HB = 16


def _router(**kw) -> Preble:
    # prefill cost 1 s per token and no decode cost: E and the loads read in prompt tokens
    return Preble(prefill_s_per_token=1.0, decode_s_per_token=0.0, warmup_per_instance=10**6, **kw)


def _view():
    doc_a, doc_b = [1, 2, 3, 4], [11, 12, 13, 14]
    hashes = {0: [*doc_a, 100], 1: [*doc_a, 101], 2: [*doc_b, 200], 3: [], 4: [*doc_a, 102]}
    prompts = {r: 16 * 5 for r in hashes}  # 4 document blocks + 1 question block = 80 tokens
    return FakeView([FakeStats(0), FakeStats(1)], prompts=prompts, hashes=hashes, outputs={r: 1 for r in hashes})


def test_eviction_cost_value():
    # r0 = A + q0 and r1 = A + q1 both go to instance 0 (r0 explores, tie -> 0; r1 exploits A).
    # Global tree: a1..a4 then a branch into q0, q1. Segments: [a1..a4] (4 blocks, context 0:
    # "large"), [q0] and [q1] (1 block after 4: "small", free to evict).
    # Window statistics of each a-node: count 2; router-side misses: r0 80 tokens (nothing known),
    # r1 80 - 4 x 16 = 16; prompts 80 + 80 -> miss rate 96 / 160 = 0.6.
    # E(0) for a prompt adding 5 blocks: LRU order on 0 is q0, q1, a4, a3, a2, a1 (r1 touched last,
    # leaves first): victims q0, q1 (0 each) and a4, a3, a2, each 0.6 x 2 x 16 tokens x 1 s = 19.2.
    p = _router(eviction_cost=True)
    v = _view()
    assert p.route(0, v) == 0
    assert p.route(1, v) == 0
    assert p.eviction_cost_s(0, 5, set(), HB) == pytest.approx(3 * 0.6 * 2 * 16)
    assert p.eviction_cost_s(1, 5, set(), HB) == 0.0  # nothing allocated on instance 1
    assert p.eviction_cost_s(0, 2, set(), HB) == 0.0  # only the two small question nodes go


def test_eviction_cost_changes_the_explore_choice():
    # r0 = A + q0 -> instance 0 (load 80). r3 (80 tokens, no prefix blocks) explores: 0 costs
    # 80 + 80, 1 costs 0 + 80 -> instance 1 (load 80). r2 = new document B + question (5 new
    # blocks) explores with equal loads and equal run costs (160 and 160):
    #  - E off: tie -> the lowest index, instance 0;
    #  - E on: with r0 alone under it, A + q0 is ONE radix segment of 5 blocks (no branch yet), so
    #    all of it is "large"; E(0) = evicting q0, a4..a1 at miss 1 x count 1 x 16 = 16 each = 80,
    #    E(1) = 0 (instance 1 holds no tree nodes) -> instance 1.
    for eviction_cost, expected in ((False, 0), (True, 1)):
        p = _router(eviction_cost=eviction_cost)
        v = _view()
        assert p.route(0, v) == 0
        assert p.route(3, v) == 1
        assert p.route(2, v) == expected
        if eviction_cost:
            assert p.eviction_cost_s(0, 5, set(), HB) == pytest.approx(80.0)


def test_window_expiry_forgets_the_statistics():
    # after the 180 s window the a-nodes have no window requests: count 0 -> evicting them is free
    p = _router(eviction_cost=True)
    v = _view()
    p.route(0, v)
    p.route(1, v)
    v.now = 200.0
    p.route(3, v)  # any route expires the window
    assert p.eviction_cost_s(0, 5, set(), HB) == 0.0
