"""Single-server queueing formulas for TTFT: DistServe's M/D/1 prefill model, P–K M/G/1, Kingman G/G/1.

Owns closed forms only (means of waiting and sojourn times). An unstable input (utilisation ≥ 1)
returns +inf rather than raising, so callers can sweep loads through the boundary. Must not import
simulator code; the Lindley-recursion cross-check lives in tests/theory/test_queueing.py.
"""

from __future__ import annotations

import math

__all__ = [
    "distserve_ttft_inter_op",
    "distserve_ttft_intra_op",
    "distserve_ttft_replicated",
    "distserve_ttft_single",
    "kingman_wait",
    "md1_mean_wait",
    "mg1_mean_queue_length",
    "mg1_mean_sojourn",
    "mg1_mean_wait",
    "utilisation",
]


def _positive(name: str, x: float) -> float:
    x = float(x)
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be a positive finite number, got {x}")
    return x


def _nonneg(name: str, x: float) -> float:
    x = float(x)
    if not (x >= 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be a non-negative finite number, got {x}")
    return x


def utilisation(rate_rps: float, mean_service_s: float) -> float:
    """ρ = λ·E[S]."""
    return _nonneg("rate_rps", rate_rps) * _positive("mean_service_s", mean_service_s)


# -- M/G/1 (Pollaczek–Khinchine) --------------------------------------------------------------------


def mg1_mean_wait(rate_rps: float, mean_service_s: float, second_moment_service_s2: float) -> float:
    """Pollaczek–Khinchine mean wait in queue of an M/G/1 FCFS queue: W_q = λE[S²] / (2(1 − ρ)).

    Standard result (e.g. Kleinrock, Queueing Systems I, §5.7); +inf when ρ ≥ 1.
    """
    rho = utilisation(rate_rps, mean_service_s)
    es2 = _nonneg("second_moment_service_s2", second_moment_service_s2)
    if es2 < mean_service_s**2 * (1 - 1e-12):
        raise ValueError("E[S²] must be ≥ E[S]² (variance cannot be negative)")
    if rho >= 1.0:
        return math.inf
    return rate_rps * es2 / (2.0 * (1.0 - rho))


def mg1_mean_sojourn(rate_rps: float, mean_service_s: float, second_moment_service_s2: float) -> float:
    """Mean time in system W = W_q + E[S]."""
    return mg1_mean_wait(rate_rps, mean_service_s, second_moment_service_s2) + mean_service_s


def mg1_mean_queue_length(rate_rps: float, mean_service_s: float,
                          second_moment_service_s2: float) -> float:
    """Mean number waiting L_q = λ·W_q (Little's law)."""
    return rate_rps * mg1_mean_wait(rate_rps, mean_service_s, second_moment_service_s2)


def md1_mean_wait(rate_rps: float, service_s: float) -> float:
    """M/D/1 mean wait: the P–K formula with E[S²] = D², i.e. R·D² / (2(1 − R·D))."""
    return mg1_mean_wait(rate_rps, service_s, service_s * service_s)


# -- DistServe (OSDI'24, arXiv 2401.09670, §3.1) --------------------------------------------------


def distserve_ttft_single(rate_rps: float, prefill_s: float) -> float:
    """DistServe Eq. 1: a prefill-only instance serving uniform prompts one at a time (FCFS, no
    batching), Poisson rate R, execution time D: Avg_TTFT = D + R·D² / (2(1 − R·D)).

    Source: the paper's §3.1 as quoted verbatim in a third-party annotated copy (see
    /work/shared/notes/throughput_placement.md §3.1); it is the M/D/1 sojourn time.
    """
    return prefill_s + md1_mean_wait(rate_rps, prefill_s)


def distserve_ttft_inter_op(rate_rps: float, prefill_s: float, stages: int = 2,
                            slowest_stage_s: float | None = None) -> float:
    """DistServe Eq. 2 (pipeline / inter-op parallelism): Avg_TTFT = D_s + R·D_m² / (2(1 − R·D_m)).

    D_s = request latency ≈ D (the single-device time; pipeline stages run one after another),
    D_m = slowest stage time, D/stages for a balanced pipeline (the paper's 2-way case gives
    D + R·D²/(4(2 − R·D))). The queue behaves as M/D/1 with service time D_m because a new request
    can enter the pipeline every D_m. `stages` > 2 is our direct generalisation.
    """
    if int(stages) < 1:
        raise ValueError(f"stages must be >= 1, got {stages}")
    d_m = prefill_s / int(stages) if slowest_stage_s is None else _positive("slowest_stage_s", slowest_stage_s)
    return prefill_s + md1_mean_wait(rate_rps, d_m)


def distserve_ttft_intra_op(rate_rps: float, prefill_s: float, speedup: float) -> float:
    """DistServe Eq. 3 (tensor / intra-op parallelism with speed-up K, 1 < K < 2 for 2 GPUs):
    Avg_TTFT = D/K + R·D² / (2K(K − R·D)) — the M/D/1 sojourn with service D/K.
    """
    k = _positive("speedup", speedup)
    return prefill_s / k + md1_mean_wait(rate_rps, prefill_s / k)


def distserve_ttft_replicated(rate_rps: float, prefill_s: float, replicas: int) -> float:
    """N independent replicas behind an ideal random splitter: Eq. 1 with R replaced by R/N
    (DistServe §3.1; exact for Bernoulli splitting of a Poisson stream)."""
    if int(replicas) < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    return distserve_ttft_single(rate_rps / int(replicas), prefill_s)


# -- G/G/1 (Kingman) ------------------------------------------------------------------------------


def kingman_wait(rate_rps: float, mean_service_s: float, arrival_scv: float, service_scv: float) -> float:
    """Kingman's heavy-traffic approximation of the G/G/1 mean wait:
    W_q ≈ (ρ / (1 − ρ)) · ((c_a² + c_s²) / 2) · E[S], with c² the squared coefficients of variation.

    Kingman (1961). Exact for M/M/1 (c_a² = c_s² = 1); for M/G/1 (c_a² = 1) it coincides with P–K.
    """
    rho = utilisation(rate_rps, mean_service_s)
    ca2 = _nonneg("arrival_scv", arrival_scv)
    cs2 = _nonneg("service_scv", service_scv)
    if rho >= 1.0:
        return math.inf
    return rho / (1.0 - rho) * (ca2 + cs2) / 2.0 * mean_service_s
