"""Each router's rule on hand-built cluster states (tests/routing/fakes.py). Every expected
choice is derived in the comment next to it; where useful a second case shows the rule's
alternative outcome, so a changed rule fails a test."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.policies.batching.preble_mpq import group_of, mpq_order
from llmsched.policies.routing.d2lpm import D2LPM
from llmsched.policies.routing.deepflow import DeepFlow, DeepFlowPublished
from llmsched.policies.routing.llumnix import Llumnix
from llmsched.policies.routing.preble import Preble
from llmsched.policies.routing.sglang_router import (
    PRESETS,
    SGLangRouter,
    SGLangRouterRust,
    imbalanced,
)
from llmsched.policies.routing.weighted_scorer import WeightedScorer
from llmsched.sim.config import InstanceSpec
from llmsched.sim.cost import LinearCost
from llmsched.sim.cost import build as build_cost
from tests.routing.fakes import FakeStats, FakeView
from tests.sim.helpers import PrefillFacts

H = [1, 2, 3, 4]  # request 10's hash blocks; prompt 64 tokens = 4 full blocks of 16


def _stats(n, **kw):
    return [FakeStats(j, **kw) for j in range(n)]


# ---------------------------------------------------------------------------------- D²LPM
def _d2lpm_view(waiting=(2, 1, 0)):
    st = [FakeStats(j, waiting=tuple(range(100 + 10 * j, 100 + 10 * j + w))) for j, w in enumerate(waiting)]
    return FakeView(st, prompts={10: 64, 11: 64}, hashes={10: H, 11: H}, clients={10: 0, 11: 0})


def test_d2lpm_longest_prefix_then_shortest_queue():
    r = D2LPM(quantum=4096)
    r.index.insert([1, 2, 3], 0, 0.0)
    r.index.insert([1, 2, 3], 1, 0.0)
    r.index.insert([1], 2, 0.0)
    # longest match 3 blocks on {0, 1}; queues 2 vs 1 -> 1 (instance 2 has the shortest queue
    # but only a 1-block match: a least-queue router would pick it)
    assert r.route(10, _d2lpm_view()) == 1
    assert r.refills == 1  # first request: every deficit was 0 -> one DRR round


def test_d2lpm_skips_workers_without_deficit():
    r = D2LPM(quantum=4096)
    r.index.insert([1, 2, 3], 0, 0.0)
    r.index.insert([1, 2, 3], 1, 0.0)
    view = _d2lpm_view()
    view.stats[1].service = {0: (10000, 0, 0)}  # client 0 already got 10,000 uncached tokens on 1
    # deficits before refill: (0, -10000, 0), all <= 0 -> +4096 each: (4096, -5904, 4096);
    # worker 1 has none left, so the longest match among {0, 2} is worker 0 (3 blocks)
    assert r.route(10, view) == 0


def test_d2lpm_widens_when_no_longest_holder_has_deficit():
    r = D2LPM(quantum=100)
    r.index.insert([1, 2, 3], 0, 0.0)
    r.index.insert([1], 2, 0.0)
    view = _d2lpm_view(waiting=(0, 5, 9))
    view.stats[0].service = {0: (1000, 0, 0)}
    # after refill: (100-1000, 100, 100): worker 0 (3 blocks) is out; among {1, 2} the longest
    # match is worker 2 (1 block) despite its longer queue
    assert r.route(10, view) == 2


@pytest.mark.parametrize("quantum, second", [(10.0, 0), (1e12, 1)])
def test_d2lpm_pending_dispatches_use_up_the_deficit(quantum, second):
    r = D2LPM(quantum=quantum)
    r.index.insert([1, 2, 3], 0, 0.0)
    r.index.insert([1, 2, 3], 1, 0.0)
    view = _d2lpm_view()
    assert r.route(10, view) == 1
    # request 10 is not charged yet: it owes w_p x (64 - 48 cached) = 16 on worker 1, so with
    # Q^w = 10 worker 1's deficit is 10 - 16 < 0 and request 11 goes to worker 0 (same prefix);
    # with a huge quantum it stays on worker 1 (negative control)
    assert r.route(11, view) == second


# ---------------------------------------------------------------------------------- SGLang router
def test_sglang_imbalance_is_the_conjunction():
    assert imbalanced([0, 65], 64, 1.5)
    assert not imbalanced([0, 64], 64, 1.5)  # abs not exceeded
    assert not imbalanced([100, 149], 32, 1.5)  # diff 49 > 32 but 149 < 1.5 x 100
    assert imbalanced([100, 151], 32, 1.5)


def _sglang_view(loads):
    st = [FakeStats(j, waiting=tuple(range(1000 * (j + 1), 1000 * (j + 1) + w))) for j, w in enumerate(loads)]
    return FakeView(st, prompts={10: 64}, hashes={10: H})


def test_sglang_two_presets_route_differently_on_the_same_state():
    assert PRESETS["python"]["balance_abs_threshold"] == 64 and PRESETS["rust"]["balance_abs_threshold"] == 32
    for cls, expect in ((SGLangRouter, 1), (SGLangRouterRust, 0)):
        r = cls()
        r.tree.insert([1, 2, 3], 1, 0.0)
        # loads (0, 40): python 40 <= 64 -> balanced -> match rate 48/64 = 0.75 > 0.3 -> worker 1;
        # rust: 40 > 32 and 40 > 1.1 x 0 -> imbalanced -> least load -> worker 0
        assert r.route(10, _sglang_view([0, 40])) == expect
        # the tree learns the route either way
        assert r.tree.match_per_tenant(H)[expect] == 4


def test_sglang_low_match_goes_to_the_smallest_tree():
    r = SGLangRouter()
    r.tree.insert([7, 8, 9, 10, 11], 0, 0.0)
    r.tree.insert([1, 5, 6], 1, 0.0)
    # best match: 1 block on worker 1 -> rate 16/64 = 0.25 <= 0.3 -> smallest tree: worker 2 (0 blocks)
    assert r.route(10, _sglang_view([0, 0, 0])) == 2
    r2 = SGLangRouter(cache_threshold=0.2)  # 0.25 > 0.2 -> follow the match
    r2.tree.insert([1, 5, 6], 1, 0.0)
    assert r2.route(10, _sglang_view([0, 0, 0])) == 1


def test_sglang_tick_trims_trees_to_max_size():
    r = SGLangRouter(max_tree_size=32)  # 32 tokens = 2 blocks of 16
    view = _sglang_view([0, 0])
    r.route(10, view)
    j = r.tree.best_tenant(H)[1]
    assert r.tree.tenant_blocks(j) == 4
    r.tick(view)
    assert r.tree.tenant_blocks(j) == 2 and r.tree.match_per_tenant(H)[j] == 2


# ---------------------------------------------------------------------------------- Preble
def test_preble_exploits_iff_cached_prefix_longer_than_rest():
    r = Preble(warmup_per_instance=10 ** 6)
    r.tree.insert([1, 2, 3], 2, 0.0)
    r.load = {0: 5.0, 1: 1.0, 2: 9.0}
    view = FakeView(_stats(3), prompts={10: 64, 11: 100}, hashes={10: H, 11: [1, 2, 3]}, outputs={10: 10, 11: 10})
    # request 10: cached 48 > rest 16 -> exploit -> the only allocated instance, 2, despite load 9
    assert r.route(10, view) == 2
    # request 11: cached 48 <= rest 52 -> explore: cost = load + run cost; instance 1 has load 1,
    # run cost 100 x 1.25e-4 + 10 x 0.03 = 0.3125 -> 1.31 < 5.31 (inst 0), < 9.x (inst 2)
    assert r.route(11, view) == 1
    assert r.counts == {"exploit": 1, "explore": 1, "moved": 0, "replicated": 0}


@pytest.mark.parametrize("threshold, moved", [(1.5, True), (10.0, False)])
def test_preble_rebalances_prefix_groups_heavy_to_light(threshold, moved):
    r = Preble(high_load_threshold=threshold)
    g1, g2 = (1, 2), (3, 4)
    r.tree.insert(g1, 0, 0.0)
    r.tree.insert(g2, 0, 0.0)
    r.window.extend([[0.0, 0, g1, 3.0, 1], [0.0, 0, g1, 3.0, 2], [0.0, 0, g2, 1.0, 3],
                     [0.0, 0, g2, 1.0, 4], [0.0, 1, None, 1.0, 5]])
    r.load = {0: 8.0, 1: 1.0}
    r.rebalance(FakeView(_stats(2)))
    # 8 >= 1.5 x 1: cheapest shared group g2 (cost 2): 8 - 2 = 6 >= 1 + 2 -> move (loads 6, 3);
    # 6 >= 4.5 still; g1 (cost 6): 6 - 6 = 0 < 3 + 6 -> stays. With threshold 10 nothing moves.
    if moved:
        assert r.load == {0: 6.0, 1: 3.0}
        # the group's node now belongs to 1 (its ancestor block 3 stays shared with 0)
        assert set(r.tree.holders(r.tree.path(list(g2))[-1])) == {1}
        assert set(r.tree.holders(r.tree.path(list(g1))[-1])) == {0}
    else:
        assert r.load == {0: 8.0, 1: 1.0}


def test_preble_replicates_a_lone_hot_prefix():
    r = Preble(window_s=100.0)
    g = (1, 2)
    r.tree.insert(g, 0, 0.0)
    r.window.extend([[10.0, 0, g, 5.0, 1], [20.0, 0, g, 5.0, 2], [60.0, 0, g, 5.0, 3], [70.0, 0, g, 5.0, 4]])
    r.load = {0: 20.0, 1: 1.0}
    view = FakeView(_stats(2))
    view.now = 90.0
    view.arrival = {1: 10.0, 2: 20.0, 3: 60.0, 4: 70.0}
    # one group of cost 20: moving it is not allowed (20 - 20 < 1 + 20); TTFTs: older half
    # (t < 40) 1 s, newer half 3 s >= 2 x 1 -> hot -> replicate on 1 and move every other record
    view.first_token = {1: 11.0, 2: 21.0, 3: 63.0, 4: 73.0}
    r.rebalance(view)
    assert r.counts["replicated"] == 1
    assert r.tree.match_per_tenant(list(g)) == {0: 2, 1: 2}
    assert r.load == {0: 10.0, 1: 11.0}
    r2 = Preble(window_s=100.0)  # not hot: TTFT flat -> nothing happens (negative control)
    r2.tree.insert(g, 0, 0.0)
    r2.window.extend([list(x) for x in [[10.0, 0, g, 5.0, 1], [20.0, 0, g, 5.0, 2], [60.0, 0, g, 5.0, 3],
                                        [70.0, 0, g, 5.0, 4]]])
    r2.load = {0: 20.0, 1: 1.0}
    view.first_token = {1: 11.0, 2: 21.0, 3: 61.0, 4: 71.0}
    r2.rebalance(view)
    assert r2.counts["replicated"] == 0


# ---------------------------------------------------------------------------------- DeepFlow
def _deepflow_view(loads, cached, gpus=("a100-80gb",), costs=None):
    st = []
    for j, w in enumerate(loads):
        s = FakeStats(j, waiting=tuple(range(1000 * (j + 1), 1000 * (j + 1) + w)), cached={10: cached[j]})
        s.spec = InstanceSpec(gpu=gpus[j % len(gpus)])
        s.cost_model = costs[j] if costs is not None else build_cost("roofline", s.spec.model, s.spec.gpu)
        st.append(s)
    return FakeView(st, prompts={10: 64}, hashes={10: H})


def test_deepflow_balanced_goes_to_the_longest_prefix_match():
    # loads (0, 1): balanced -> locality: instance 1 holds 32 cached tokens
    assert DeepFlow().route(10, _deepflow_view([0, 1], [0, 32])) == 1


def test_deepflow_imbalanced_published_vs_completed():
    view = _deepflow_view([40, 0], [64, 0])
    # 40 - 0 > 32 and 40 > 1.1 x 0: imbalanced. Completed: least load -> 1. Published (least-load
    # call commented out): the first heatmap candidate -> 0.
    assert DeepFlow().route(10, view) == 1
    assert DeepFlowPublished().route(10, view) == 0


def test_deepflow_heatmap_prefers_the_faster_type():
    # two types: A100 (even indices) and H100 (odd): the roofline H100 is faster for every cell,
    # so only H100 instances are candidates; balanced -> prefix match among them (3 over 1)
    view = _deepflow_view([0, 0, 0, 0], [64, 16, 64, 48], gpus=("a100-80gb", "h100-80gb"))
    r = DeepFlow()
    assert r.candidates(10, view) == [1, 3]
    assert r.route(10, view) == 3


def test_deepflow_ranks_on_the_runs_own_cost_models():
    # one spec for all four, but the run simulates instances 0 and 2 with a cost model 10x slower
    # per token: DeepFlow must rank on those (the engine's), not on the catalogue's roofline
    fast, slow = LinearCost(0.01, 1e-4, 1e-4, 0.0), LinearCost(0.1, 1e-3, 1e-3, 0.0)
    view = _deepflow_view([0, 0, 0, 0], [64, 16, 64, 48], costs=[slow, fast, slow, fast])
    assert DeepFlow().candidates(10, view) == [1, 3]


# ---------------------------------------------------------------------------------- Llumnix
def test_llumnix_freeness_formula():
    s = FakeStats(0, kv_blocks_total=100, kv_blocks_available=40, decoding=(1, 2, 3), waiting=(7, 8))
    view = FakeView([s], prompts={7: 32, 8: 64})
    r = Llumnix()
    r._setup(view)
    # dispatch: (100 - 60 used - 2 - 4 waiting blocks) / (3 running + 2 waiting) = 6.8
    assert r.freeness(view, 0, "all") == pytest.approx(6.8)
    # migration: only the head-of-line request's 2 blocks, B = 3 + 1 -> 38 / 4 = 9.5
    assert r.freeness(view, 0, "head") == pytest.approx(9.5)
    # high priority adds a headroom of M - 1600/16 blocks: with M = 200 that is 100 blocks
    s2 = FakeStats(0, kv_blocks_total=200, kv_blocks_available=140, decoding=(1, 2, 3))
    v2 = FakeView([s2], priority={2: 1})
    assert r.freeness(v2, 0, "all") == pytest.approx((200 - 60 - 100) / 3)


def test_llumnix_dispatches_to_the_freest():
    st = [FakeStats(0, kv_blocks_available=50, decoding=(1,)),  # F = 50
          FakeStats(1, kv_blocks_available=90, decoding=(2, 3)),  # F = 45
          FakeStats(2, kv_blocks_available=70)]  # F = 70 / max(0, 1) = 70
    assert Llumnix().route(10, FakeView(st)) == 2


def _llumnix_migration_view():
    st = [FakeStats(0, kv_blocks_available=2, decoding=(1, 2, 3, 4)),  # F = 2 / 4 = 0.5 < 3
          FakeStats(1, kv_blocks_available=100, decoding=(5,)),  # F = 100
          FakeStats(2, kv_blocks_available=30, decoding=(6, 7, 8))]  # F = 10
    return FakeView(st, kv={1: 100, 2: 20, 3: 50, 4: 10, 5: 5, 6: 5, 7: 5, 8: 5}, priority={3: 1, 4: 1})


def test_llumnix_pairs_least_free_with_freest_and_moves_low_priority_short():
    view = _llumnix_migration_view()
    r = Llumnix()
    r.tick(view)
    # src = [0] (F 0.5 < 3), dst = [1 (F 100), 2 (F 10)]; candidates on 0: priority 0 first
    # (1: 100 tokens, 2: 20 tokens) -> request 2. Balanced check: 2 blocks; src' = (2 + 2)/3 = 1.33,
    # dst' = (100 - 2)/2 = 49: 0 < 47.7 < 99.5 -> accepted
    assert view.migrations == [(2, 1)]
    assert r.counts["migrations"] == 1


def test_llumnix_without_migration_never_migrates():
    view = _llumnix_migration_view()
    r = Llumnix(migration=False)
    assert r.tick_interval_s is None
    r.tick(view)
    assert view.migrations == []


def test_llumnix_autoscaling_thresholds():
    busy = [FakeStats(j, kv_blocks_available=10, decoding=(j * 10 + 1, j * 10 + 2)) for j in range(3)]
    view = FakeView(busy)  # F = 10 / 2 = 5 < 10 on the active instance -> scale out
    r = Llumnix(autoscale=True, initial_instances=1)
    r._setup(view)
    assert r.active == [True, False, False]
    r.scale(view)
    assert r.active == [True, True, False] and r.counts["scale_out"] == 1
    idle = [FakeStats(0, kv_blocks_available=100, decoding=(1,)), FakeStats(1, kv_blocks_available=100),
            FakeStats(2, kv_blocks_available=100)]
    view2 = FakeView(idle)  # F = 100 and 100 > 60 -> scale in the one with fewest running: 1
    r.scale(view2)
    assert r.terminating == {1} and r.counts["scale_in"] == 1
    assert r.route(99, view2) == 0  # a terminating instance gets no new requests
    r._drain(view2)  # empty -> switched off
    assert r.active == [True, False, False] and r.terminating == set()


# ---------------------------------------------------------------------------------- weighted scorer
@pytest.mark.parametrize("prefix_weight, expect", [(3.0, 0), (1.0, 1)])
def test_weighted_scorer_sums_the_three_scores(prefix_weight, expect):
    st = [FakeStats(0, waiting=(1, 2, 3, 4), kv_blocks_available=50), FakeStats(1, kv_blocks_available=100)]
    view = FakeView(st, prompts={10: 64}, hashes={10: H})
    r = WeightedScorer(prefix_weight=prefix_weight)
    r.index.insert(H, 0, 0.0)
    # inst 0: prefix 1, queue (4-4)/(4-0) = 0, kv 0.5 -> 3 x 1 + 0 + 0.5 = 3.5 vs inst 1: 0 + 2 + 1 = 3
    # with prefix weight 1: 1.5 vs 3 -> inst 1
    assert r.scores(10, view) == pytest.approx([prefix_weight + 0.5, 3.0])
    assert r.route(10, view) == expect


# ---------------------------------------------------------------------------------- Preble local groups


def test_preble_mpq_groups_and_quota():
    v = PrefillFacts({0: 0, 1: 1, 2: 11, 3: 100, 4: 95, 5: 50}, {i: 100 for i in range(6)})
    # ceil(10 x hit) - 1: 0 -> 0; 0.01 -> 0; 0.11 -> 1; 1.0 -> 9; 0.95 -> 9; 0.5 -> 4
    assert [group_of(v, i) for i in range(6)] == [0, 0, 1, 9, 9, 4]
    # k = 1: group 9 admits up to 10, group 4 up to 5, group 1 up to 2, group 0 up to 1 (FCFS)
    assert mpq_order(v, list(range(6)), k=1) == [3, 4, 5, 2, 0]
    assert mpq_order(v, list(range(6)), k=10) == [3, 4, 5, 2, 0, 1]
    assert np.all(np.asarray(mpq_order(v, [0, 1], k=1)) == [0])


def test_llumnix_keeps_high_priority_requests_on_their_instance():
    view = _llumnix_migration_view()
    view.prio = {1: 1, 2: 1, 3: 1, 4: 1}  # every request on the source is high priority
    Llumnix().tick(view)
    assert view.migrations == []
    r = Llumnix()
    r._setup(view)
    r.terminating.add(0)  # a draining instance moves them anyway (shortest first: request 4)
    r.migrate(view)
    assert view.migrations == [(4, 1)]
