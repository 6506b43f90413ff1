"""Fluid model with KV memory (theory.fluid) and workload moments (theory.workload_stats)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.theory.batch_time import staircase
from llmsched.theory.fluid import (
    LinearRoundTime,
    RequestClass,
    decode_pool_class,
    fluid_capacity,
    fluid_equilibrium,
    mixed_class,
    optimal_pd_split,
    optimal_token_budget,
    prefill_pool_class,
    split_capacity,
    staircase_capacity,
)
from llmsched.theory.workload_stats import WorkloadStats

RT = LinearRoundTime(base_s=0.01, per_token_s=1e-4)


def one_class(p=100.0, o=101.0, rate=1.0):
    return mixed_class(WorkloadStats.deterministic(p, o), rate)


# -- workload moments ----------------------------------------------------------------------------------


def test_kv_token_rounds_matches_a_per_request_sum():
    """E[g] for whole prompts vs an explicit per-request sum over rounds (independent loop)."""
    rng = np.random.default_rng(3)
    p = rng.integers(1, 400, 500)
    o = rng.integers(1, 300, 500)
    st_ = WorkloadStats.from_arrays(p, o)
    brute = []
    for pi, oi in zip(p, o):
        rounds = [pi]  # the prefill round holds the prompt (and emits token 1)
        rounds += [pi + j for j in range(1, oi)]  # decode round j holds p + j tokens
        brute.append(sum(rounds))
    assert st_.kv_token_rounds(None) == pytest.approx(np.mean(brute), rel=1e-12)
    # mean decode context: decode token j reads p + j − 1 keys
    ctx = [pi + j - 1 for pi, oi in zip(p, o) for j in range(1, oi)]
    assert st_.mean_decode_context == pytest.approx(np.mean(ctx), rel=1e-12)
    assert st_.mean_decode_tokens == pytest.approx(np.mean(o) - 1)


def test_chunked_prefill_kv_rounds_exact_over_whole_periods():
    """Chunks of c: exact Σ_k min(k·c, p) and ⌈p/c⌉ vs our moment formulas, which are exact for a
    population whose remainders p mod c cover 1..c uniformly (here p = 1..6c, every value once)."""
    c = 256
    p = np.arange(1, 6 * c + 1)
    o = np.ones_like(p)
    exact = [sum(min(k * c, pi) for k in range(1, math.ceil(pi / c) + 1)) for pi in p]
    st_ = WorkloadStats.from_arrays(p, o)
    assert st_.kv_token_rounds(c) == pytest.approx(np.mean(exact), rel=1e-12)
    assert st_.prefill_rounds(c) == pytest.approx(np.mean(np.ceil(p / c)), rel=1e-12)
    # prompts shorter than a chunk: one round holding p (the floor)
    short = WorkloadStats.from_arrays(np.full(10, 100), np.ones(10))
    assert short.kv_token_rounds(512) == pytest.approx(100)
    assert short.prefill_rounds(512) == 1.0


def test_workload_stats_from_workload():
    from llmsched.sim.workload import Workload

    w = Workload(arrival_s=[0.0, 1.0, 2.0, 4.0], client=[0, 0, 0, 0], prompt_tokens=[10, 20, 30, 40],
                 output_tokens=[1, 2, 3, 4])
    s = WorkloadStats.from_workload(w)
    assert s.mean_prompt_tokens == 25 and s.mean_output_tokens == 2.5
    assert s.prompt_output == pytest.approx((10 + 40 + 90 + 160) / 4)
    assert s.rate_rps == pytest.approx(3 / 4)


# -- the LP against hand-derived closed forms ----------------------------------------------------------


def test_budget_bound_capacity_closed_form():
    # single class, t = t0 + t1·b, budget B:  x·s·T = B and T = t0 + t1·B  ⇒  x = B / (s (t0 + t1 B))
    c = one_class()
    sol = fluid_capacity([c], RT, token_budget=512)
    assert sol.total_rps == pytest.approx(512 / (c.work_tokens * (0.01 + 1e-4 * 512)), rel=1e-6)
    assert sol.binding == ("token_budget",)
    assert sol.batch_tokens == pytest.approx(512, rel=1e-6)


def test_memory_bound_capacity_closed_form():
    # memory: x·g·T = M with T = t0 / (1 − t1·x·s)  ⇒  x = M / (g t0 + M t1 s)
    c = one_class()
    M = 20_000
    sol = fluid_capacity([c], RT, token_budget=512, kv_capacity_tokens=M)
    assert sol.total_rps == pytest.approx(M / (c.kv_token_rounds * 0.01 + M * 1e-4 * c.work_tokens), rel=1e-6)
    assert sol.binding == ("kv_memory",)
    assert sol.kv_tokens == pytest.approx(M, rel=1e-6)
    assert sol.batch_tokens < 512


def test_kv_term_in_round_time_closed_form():
    # t = t0 + t2·KV, budget binding: x s T = B, T = t0 + t2·x g T ⇒ x = B / (s t0 + B t2 g)
    rt = LinearRoundTime(0.01, 0.0, 1e-7)
    c = one_class()
    sol = fluid_capacity([c], rt, token_budget=512)
    assert sol.total_rps == pytest.approx(512 / (c.work_tokens * 0.01 + 512 * 1e-7 * c.kv_token_rounds), rel=1e-6)


def test_request_cap_binding_closed_form():
    # requests in batch = x·T·L ≤ K with T = t0/(1 − t1 x s) ⇒ x = K / (L t0 + K t1 s)
    c = one_class()
    sol = fluid_capacity([c], RT, token_budget=10**6, max_batch_requests=64)
    assert sol.total_rps == pytest.approx(64 / (c.rounds_in_batch * 0.01 + 64 * 1e-4 * c.work_tokens), rel=1e-6)
    assert sol.binding == ("request_cap",)
    assert sol.requests_in_batch.sum() == pytest.approx(64, rel=1e-6)


def test_no_limit_approaches_compute_asymptote():
    # with only t = t0 + t1 b and no limits, throughput → 1/(t1·s) as the batch grows without bound
    c = one_class()
    sol = fluid_capacity([c], RT)
    assert sol.total_rps == pytest.approx(1 / (1e-4 * c.work_tokens), rel=1e-6)
    assert "compute" in sol.binding


@settings(max_examples=30)
@given(frac=st.floats(0.05, 0.98), M=st.floats(2e3, 1e6), B=st.integers(16, 4096))
def test_equilibrium_is_feasible_below_capacity_and_not_above(frac, M, B):
    """Two independent computations agree: the LP capacity θ* and the closed-form equilibrium."""
    classes = [one_class(100, 50, 2.0), one_class(800, 20, 1.0)]
    cap = fluid_capacity(classes, RT, token_budget=B, kv_capacity_tokens=M)
    theta = cap.scale
    below = [RequestClass(frac * theta * c.rate_rps, c.prefill_tokens, c.decode_tokens, c.kv_token_rounds,
                          c.rounds_in_batch) for c in classes]
    above = [RequestClass(1.02 * theta * c.rate_rps, c.prefill_tokens, c.decode_tokens, c.kv_token_rounds,
                          c.rounds_in_batch) for c in classes]
    assert fluid_equilibrium(below, RT, B, M).feasible
    assert not fluid_equilibrium(above, RT, B, M).feasible


def test_total_objective_matches_a_grid_search():
    """Two classes competing for KV memory: LP optimum vs brute force over a grid of (x1, x2)."""
    a, b = one_class(50, 400, 5.0), one_class(2000, 20, 5.0)
    M = 150_000
    sol = fluid_capacity([a, b], RT, token_budget=2048, kv_capacity_tokens=M, objective="total")
    best = 0.0
    for x1 in np.linspace(0, 5, 201):
        for x2 in np.linspace(0, 5, 201):
            lam = [RequestClass(x1, a.prefill_tokens, a.decode_tokens, a.kv_token_rounds, a.rounds_in_batch),
                   RequestClass(x2, b.prefill_tokens, b.decode_tokens, b.kv_token_rounds, b.rounds_in_batch)]
            if (x1 > 0 or x2 > 0) and fluid_equilibrium(lam, RT, 2048, M).feasible:
                best = max(best, x1 + x2)
    assert best <= sol.total_rps * (1 + 1e-6)
    assert sol.total_rps - best <= 5 / 200 * 2 + 1e-9  # grid step in each coordinate


# -- staircase: optimal tiling --------------------------------------------------------------------------


def test_staircase_without_memory_picks_the_tile_aligned_budget():
    t = staircase(11.28e-3, 35.47e-3, 128)
    c = one_class(100, 101)
    sol, budget = staircase_capacity([c], 11.28e-3, 35.47e-3, 128, b_max=520)
    assert budget == 512
    assert sol.total_rps == pytest.approx(optimal_token_budget(t, 520)[1] / c.work_tokens, rel=1e-12)


def test_staircase_with_tight_memory_prefers_a_smaller_step():
    """Per step k: θ_k = min(k·b0 / (T_k s), M / (T_k g)), T_k = c + a k (hand-derived); memory makes
    longer rounds costly, so the best k is below the largest."""
    c_s, a_s, b0 = 11.28e-3, 35.47e-3, 128
    c = one_class(100, 101)
    M = 30_000
    sol, budget = staircase_capacity([c], c_s, a_s, b0, b_max=1024, kv_capacity_tokens=M)
    thetas = [min(k * b0 / ((c_s + a_s * k) * c.work_tokens), M / ((c_s + a_s * k) * c.kv_token_rounds))
              for k in range(1, 9)]
    k_best = int(np.argmax(thetas)) + 1
    assert budget == k_best * b0 < 1024
    assert sol.total_rps == pytest.approx(max(thetas), rel=1e-12)


# -- dynamic vs static split ------------------------------------------------------------------------------


@given(share=st.floats(0.0, 1.0), mp=st.floats(1, 5000), md=st.floats(1, 2000))
def test_static_split_never_beats_dynamic(share, mp, md):
    t = staircase(0.01, 0.03, 128)
    dyn = 512 / (0.01 + 0.03 * 4) / (mp + md)
    assert split_capacity(t, 512, share, mp, md) <= dyn * (1 + 1e-12)
    assert split_capacity(t, 512, mp / (mp + md), mp, md) == pytest.approx(dyn, rel=1e-12)


# -- disaggregated pools -----------------------------------------------------------------------------------


def test_pd_split_by_enumeration():
    s = optimal_pd_split(10.0, 4.0, total_instances=7)
    # brute force: n_p in 1..6, capacity min(10 n_p, 4 (7 − n_p)) → n_p = 2: min(20, 20) = 20
    assert (s.n_prefill, s.n_decode, s.capacity_rps) == (2, 5, 20.0)
    assert s.ratio_prefill_per_decode == pytest.approx(0.4)
    t = optimal_pd_split(10.0, 4.0, target_rps=33.0)
    assert (t.n_prefill, t.n_decode) == (4, 9)


def test_pool_classes_split_the_work():
    st_ = WorkloadStats.deterministic(1000, 201)
    pre, dec, mix = prefill_pool_class(st_, 1.0, 512), decode_pool_class(st_, 1.0), mixed_class(st_, 1.0, 512)
    assert pre.work_tokens + dec.work_tokens == pytest.approx(mix.work_tokens)
    assert pre.kv_token_rounds + dec.kv_token_rounds == pytest.approx(mix.kv_token_rounds)
    # a decode instance's capacity: with per-token time only, budget-bound at B decodes per round
    sol = fluid_capacity([dec], LinearRoundTime(0.02, 1e-4), token_budget=128)
    assert sol.total_rps == pytest.approx(128 / (200 * (0.02 + 1e-4 * 128)), rel=1e-6)
