"""Swarm's request scheduler (stochastic wiring) and the other hop-by-hop routers of Helix's
baselines, with hand-derived expected values, and their use in the plan simulator."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.theory.placement.flow import enabled, make_problem
from llmsched.theory.placement.io import DATA_DIR, load_cluster, read_helix_layout
from llmsched.theory.placement.routing import (
    SWARM_INITIAL_PRIORITY_S,
    SWARM_SMOOTHING,
    HopRouter,
    SwarmNextHop,
)
from llmsched.theory.placement.simulate import simulate_plan
from llmsched.theory.placement.spec import MODELS, SINK, SOURCE


def test_swarm_constants_are_helix_defaults():
    # Helix cluster_simulator.py::init_scheduler: SwarmParameters(0.05, 0.8, 99999)
    assert (SWARM_INITIAL_PRIORITY_S, SWARM_SMOOTHING) == (0.05, 0.8)


def test_swarm_next_hop_probabilities_on_a_three_node_toy():
    # source -> {A, B}. One report each: A took 0.1 s, B took 0.3 s.
    # ema_A = 0.8 * 0.1 + 0.2 * 0.05 = 0.09, ema_B = 0.8 * 0.3 + 0.2 * 0.05 = 0.25, so the
    # long-run shares are (1/0.09) : (1/0.25) = 100/9 : 36/9, i.e. A gets 100/136 = 25/34.
    w = SwarmNextHop(["A", "B"])
    w.observe("A", 0.1)
    w.observe("B", 0.3)
    assert w.ema_s == pytest.approx({"A": 0.09, "B": 0.25})
    assert w.shares() == pytest.approx({"A": 25 / 34, "B": 9 / 34})
    picks = [w.choose() for _ in range(3400)]
    assert abs(picks.count("A") - 2500) <= 2  # deterministic weighted round-robin: share 25/34


def test_swarm_choice_sequence_by_hand():
    # Both priorities start at 0.05; a tie goes to the earlier hop; the chosen hop's priority grows
    # by its ema. Before any report both emas are 0.05: A (p_A 0.10), B (p_B 0.10), A (0.15), B.
    w = SwarmNextHop(["A", "B"])
    assert [w.choose() for _ in range(4)] == ["A", "B", "A", "B"]
    # now p_A = p_B = 0.15; B reports 0.55 s -> ema_B = 0.45; A keeps 0.05.
    w.observe("B", 0.55)
    # A 0.15->0.20 (tie goes to A), then p_B=0.15 < 0.20: B ->0.60, then A from 0.20 up to 0.55
    seq = [w.choose() for _ in range(10)]
    assert seq == ["A", "B"] + ["A"] * 8


def test_swarm_observation_moves_traffic_to_the_faster_hop():
    # negative control: without reports the wiring is a plain round-robin
    w = SwarmNextHop(["A", "B"])
    picks = [w.choose() for _ in range(100)]
    assert picks.count("A") == 50
    w.observe("B", 1.0)
    picks = [w.choose() for _ in range(200)]
    assert picks.count("A") > 150


def test_shortest_queue_and_random_hops():
    q = {"A": 3, "B": 1, "C": 1}
    r = HopRouter("shortest_queue", {SOURCE: ["A", "B", "C"], "A": ["D", SINK]}, np.random.default_rng(0),
                  queue_len=lambda j: q.get(j, 5))
    assert {r.next_hop(SOURCE) for _ in range(50)} == {"B", "C"}
    assert {r.next_hop("A") for _ in range(10)} == {SINK}  # the sink counts as an empty queue
    rnd = HopRouter("random", {SOURCE: ["A", "B"]}, np.random.default_rng(0))
    picks = [rnd.next_hop(SOURCE) for _ in range(2000)]
    assert abs(picks.count("A") - 1000) < 100
    assert rnd.next_hop("nowhere") is None
    with pytest.raises(ValueError):
        HopRouter("maxflow", {}, np.random.default_rng(0))


def test_swarm_router_in_the_plan_simulator_keeps_a_closed_loop_and_valid_paths():
    cluster = load_cluster("single24")
    p = make_problem(cluster, MODELS["llama-2-70b"])
    plc = read_helix_layout(DATA_DIR / "layouts" / "single24" / "swarm_sol.ini", cluster.n)
    r = simulate_plan(p, plc, duration_s=30.0, warmup_s=10.0, kv_fraction=1.0, length_cv=0.0, seed=0,
                      batch_limit="typical", router="swarm", max_inflight=12)
    assert r.router == "swarm" and r.total_tok_s > 0
    # every recorded hop is an edge the placement enables, and each node's shares sum to one
    for u, shares in r.hop_shares.items():
        assert sum(shares.values()) == pytest.approx(1.0)
        assert all(enabled(p, plc, u, v) for v in shares)
    assert r.hop_shares[SOURCE] == {17: 1.0}  # compute_node_19 (offset 2): the only first-stage node
    # 12 requests in flight at the mean lengths cannot exceed 12 * (750 + 240) * k entries per node
    assert 0 < r.kv_peak_frac < 1
