"""Queueing formulas (theory.queueing) against closed forms and an independent Lindley simulation."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from llmsched.theory.queueing import (
    distserve_ttft_inter_op,
    distserve_ttft_intra_op,
    distserve_ttft_replicated,
    distserve_ttft_single,
    kingman_wait,
    md1_mean_wait,
    mg1_mean_queue_length,
    mg1_mean_sojourn,
    mg1_mean_wait,
)


def lindley_waits(interarrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """Waiting times of a FCFS single server, vectorised. Lindley: W_{n+1} = max(0, W_n + S_n − A_{n+1}),
    W_0 = 0, whose solution is W_n = X_n − min_{k ≤ n} X_k with X_n = Σ_{i<n} (S_i − A_{i+1}), X_0 = 0."""
    x = np.concatenate([[0.0], np.cumsum(services[:-1] - interarrivals[1:])])
    return x - np.minimum.accumulate(x)


def batch_means_ci(samples: np.ndarray, batches: int = 50, z: float = 4.5) -> tuple[float, float]:
    """(mean, half-width) with batch means (waits are autocorrelated); z = 4.5 gives a two-sided
    false-failure probability ≈ 7e-6 under normality of batch means."""
    b = samples[: len(samples) // batches * batches].reshape(batches, -1).mean(axis=1)
    se = b.std(ddof=1) / math.sqrt(batches)
    return float(samples.mean()), z * float(se)


# -- closed forms ------------------------------------------------------------------------------------


def test_md1_is_pk_with_deterministic_service():
    r, d = 3.0, 0.2  # ρ = 0.6: W_q = 3·0.04 / (2·0.4) = 0.15
    assert md1_mean_wait(r, d) == pytest.approx(0.15, rel=1e-12)
    assert distserve_ttft_single(r, d) == pytest.approx(0.35, rel=1e-12)


def test_distserve_eq2_printed_form():
    # DistServe Eq. 2 as printed for 2-way pipelining: D + R·D² / (4(2 − R·D))
    for r in (0.5, 2.0, 5.0, 9.0):
        d = 0.1
        assert distserve_ttft_inter_op(r, d, stages=2) == pytest.approx(d + r * d * d / (4 * (2 - r * d)), rel=1e-12)


def test_distserve_eq3_printed_form():
    # Eq. 3: D/K + R·D² / (2K(K − R·D))
    for r, k in ((1.0, 1.5), (6.0, 1.8), (12.0, 1.3)):
        d = 0.1
        assert distserve_ttft_intra_op(r, d, k) == pytest.approx(d / k + r * d * d / (2 * k * (k - r * d)), rel=1e-12)


def test_distserve_intra_wins_at_low_rate_inter_at_high():
    # The paper's conclusion (§3.1) with K = 1.5, D = 0.1 s: compare at R = 1 and R = 14.
    d, k = 0.1, 1.5
    assert distserve_ttft_intra_op(1.0, d, k) < distserve_ttft_inter_op(1.0, d)
    assert distserve_ttft_inter_op(14.0, d) < distserve_ttft_intra_op(14.0, d, k)


def test_replication_divides_the_rate():
    assert distserve_ttft_replicated(8.0, 0.1, 4) == pytest.approx(distserve_ttft_single(2.0, 0.1))


def test_unstable_is_infinite():
    assert md1_mean_wait(10.0, 0.1) == math.inf
    assert distserve_ttft_single(11.0, 0.1) == math.inf
    assert kingman_wait(2.0, 0.6, 1.0, 1.0) == math.inf


@given(rho=st.floats(0.01, 0.99), es=st.floats(1e-3, 10.0), scv=st.floats(0.0, 5.0))
def test_kingman_equals_pk_for_poisson_arrivals(rho, es, scv):
    lam = rho / es
    es2 = es * es * (1 + scv)
    assert kingman_wait(lam, es, 1.0, scv) == pytest.approx(mg1_mean_wait(lam, es, es2), rel=1e-9)


def test_mm1_closed_form():
    # M/M/1: W_q = ρ/(μ − λ) = ρ/(1 − ρ)·E[S]; E[S²] = 2E[S]²
    lam, es = 0.8, 1.0
    assert mg1_mean_wait(lam, es, 2 * es * es) == pytest.approx(0.8 / 0.2, rel=1e-12)
    assert mg1_mean_sojourn(lam, es, 2.0) == pytest.approx(5.0)
    assert mg1_mean_queue_length(lam, es, 2.0) == pytest.approx(3.2)  # Little: λ·W_q


def test_bad_inputs():
    with pytest.raises(ValueError):
        mg1_mean_wait(1.0, 0.5, 0.1)  # E[S²] < E[S]²
    with pytest.raises(ValueError):
        md1_mean_wait(-1.0, 0.1)
    with pytest.raises(ValueError):
        distserve_ttft_inter_op(1.0, 0.1, stages=0)


# -- against a Lindley simulation (independent of the formulas) ------------------------------------------


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7, 0.9])
def test_md1_ttft_matches_lindley_simulation(rho):
    rng = np.random.default_rng(1000 + int(rho * 10))
    d = 0.05
    lam = rho / d
    n = 1_000_000
    a = rng.exponential(1 / lam, n)
    w = lindley_waits(a, np.full(n, d))[n // 10 :]  # drop a 10% warm-up
    ttft = w + d
    mean, half = batch_means_ci(ttft)
    assert abs(mean - distserve_ttft_single(lam, d)) <= half


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mg1_pk_matches_lindley_simulation(rho):
    # Gamma(shape 0.5) service: E[S] = 0.02, SCV = 1/shape = 2, E[S²] = E[S]²(1 + 2)
    rng = np.random.default_rng(7 + int(rho * 10))
    es, shape = 0.02, 0.5
    lam = rho / es
    n = 1_000_000
    s = rng.gamma(shape, es / shape, n)
    a = rng.exponential(1 / lam, n)
    w = lindley_waits(a, s)[n // 10 :]
    mean, half = batch_means_ci(w)
    assert abs(mean - mg1_mean_wait(lam, es, 3 * es * es)) <= half


def test_lindley_simulation_detects_a_wrong_formula():
    """Negative control: the same simulation rejects the M/M/1 formula for deterministic service
    (it is twice the M/D/1 wait), so the tolerance above is tight enough to catch a factor-2 error."""
    rng = np.random.default_rng(99)
    d, lam = 0.05, 0.7 / 0.05
    n = 1_000_000
    w = lindley_waits(rng.exponential(1 / lam, n), np.full(n, d))[n // 10 :]
    mean, half = batch_means_ci(w)
    assert abs(mean - mg1_mean_wait(lam, d, 2 * d * d)) > half


def test_gg1_simulation_respects_kingmans_bound_and_approximation_order():
    """E2/D/1 at ρ = 0.95. Kingman's *upper bound* (Kingman 1962, all G/G/1):
    W_q ≤ λ(σ_a² + σ_s²) / (2(1 − ρ)) = E[S](c_a²/ρ + ρ c_s²) / (2(1 − ρ)), and the approximation
    `kingman_wait` = E[S]ρ(c_a² + c_s²)/(2(1 − ρ)) lies below it. The simulated mean (minus its CI)
    must respect the bound; the M/M/1 value (c² = 1, 1) must not (negative control)."""
    rng = np.random.default_rng(5)
    es, rho = 1.0, 0.95
    lam = rho / es
    n = 2_000_000
    a = rng.gamma(2.0, 1 / (2 * lam), n)  # Erlang-2 interarrivals: c_a² = 1/2
    w = lindley_waits(a, np.full(n, es))[n // 10 :]
    mean, half = batch_means_ci(w)
    upper = es * (0.5 / rho + rho * 0.0) / (2 * (1 - rho))
    approx = kingman_wait(lam, es, 0.5, 0.0)
    assert approx <= upper
    assert mean - half <= upper
    assert kingman_wait(lam, es, 1.0, 1.0) > upper + half
    assert sps.variation(w) > 0  # the simulation is not degenerate
