"""Fairness bounds of VTC (Sheng et al., OSDI'24, arXiv 2401.00588) and DLPM (Cao et al., arXiv
2501.14312) as plain calculators.

Owns the formulas only (U, U, 2U, 4U, w_q·M, the latency bounds 2(n−1)U/a and T/n − 5U (with its slack 5U),
2(U+Q_u), and our weighted-VTC bound); the checkers in
`llmsched.proofs_check.fairness` and the tests decide what to compare them with. Statements and proof sketches:
`docs/theory/fairness.md`. Imports nothing of the simulator but its accounting weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmsched.sim.accounting import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT


@dataclass(frozen=True)
class ServiceScale:
    """What the VTC bounds are made of.

    input_weight (w_p), output_weight (w_q): service per prompt / output token.
    max_input_tokens (L_input): the longest prompt of any request.
    kv_capacity_tokens (M): the most tokens the running batch can hold (KV pool in tokens).
    """

    input_weight: float = DEFAULT_INPUT_WEIGHT
    output_weight: float = DEFAULT_OUTPUT_WEIGHT
    max_input_tokens: int = 0
    kv_capacity_tokens: int = 0

    @property
    def U(self) -> float:
        return unit_bound(self.input_weight, self.output_weight, self.max_input_tokens,
                          self.kv_capacity_tokens)


def unit_bound(input_weight: float, output_weight: float, max_input_tokens: int,
               kv_capacity_tokens: int) -> float:
    """U = max(w_p·L_input, w_q·M) (VTC paper, Sec. 4.1)."""
    if min(input_weight, output_weight, max_input_tokens, kv_capacity_tokens) < 0:
        raise ValueError("weights, L_input and M must be >= 0")
    return max(input_weight * max_input_tokens, output_weight * kv_capacity_tokens)


def counter_gap_bound(scale: ServiceScale) -> float:
    """Lemma 4.3: max_{i∈Q} c_i − min_{i∈Q} c_i ≤ U over clients with waiting requests."""
    return scale.U


def backlogged_pair_bound(scale: ServiceScale) -> float:
    """Theorem 4.4: |W_f(t1,t2) − W_g(t1,t2)| ≤ 2U for f, g both backlogged on [t1, t2)."""
    return 2.0 * scale.U


def backlogged_vs_any_bound(scale: ServiceScale) -> float:
    """Theorem 4.9: W_g(t1,t2) − W_f(t1,t2) ≤ 4U for f backlogged on [t1, t2), g any client."""
    return 4.0 * scale.U


def work_conserving_lower_bound(scale: ServiceScale) -> float:
    """Theorem 4.8: some workload forces |W_f − W_g| ≥ w_q·M on any work-conserving,
    non-preemptive scheduler (so 2U is within a factor 2 of the best when w_q·M ≥ w_p·L_input)."""
    return scale.output_weight * scale.kv_capacity_tokens


def dispatch_service_bound(scale: ServiceScale, n_clients: int) -> float:
    """Theorem 4.11, service form (our reading of its proof, docs/theory/fairness.md): while a
    request r_f of a client f that had nothing waiting or running at r_f's arrival A waits for its
    dispatch D, the other n − 1 clients receive at most 2(n − 1)·U of service: Σ_{g≠f} W_g(A, D)."""
    if n_clients < 1:
        raise ValueError("n_clients must be >= 1")
    return 2.0 * (n_clients - 1) * scale.U


def dispatch_latency_bound(scale: ServiceScale, n_clients: int, service_rate: float) -> float:
    """Theorem 4.11 (VTC, arXiv 2401.00588 v2): D(r_f) − A(r_f) ≤ 2(n − 1)·U / a when the server
    delivers service at a rate S(t) ≥ a > 0 while r_f waits (seconds; service units per second)."""
    if not service_rate > 0:
        raise ValueError("service_rate a must be > 0")
    return dispatch_service_bound(scale, n_clients) / service_rate


def non_overloaded_margin(scale: ServiceScale, total_service, n_clients):
    """Theorem 4.13 (VTC, arXiv 2401.00588 v2; statement and our reading in docs/theory/fairness.md):
    the threshold T(t, t2)/n(t, t2) − 5U below which a client's requested service on [t, t2) must
    stay for all its requests of [t1, t2) to be dispatched before t2. T is the service delivered to
    all clients on [t, t2) and n the number of clients (we use the clients served on [t, t2), f
    included: the smallest n our proof allows). Works elementwise on numpy arrays."""
    if np.any(np.asarray(n_clients) < 1):
        raise ValueError("n_clients must be >= 1")
    return total_service / n_clients - non_overloaded_slack(scale)


def non_overloaded_slack(scale: ServiceScale) -> float:
    """Theorem 4.13's slack 5U: 4U from Theorem 4.9 (any client vs the backlogged f) plus U for
    the outputs of f's requests already running when its backlog began."""
    return 5.0 * scale.U


def dlpm_pair_bound(scale: ServiceScale, quantum: float) -> float:
    """DLPM (arXiv 2501.14312): |W_f − W_g| ≤ 2(U + Q_u) for two backlogged clients, where W
    charges only uncached prompt tokens and output tokens and Q_u is the client quantum."""
    if quantum < 0:
        raise ValueError("quantum Q_u must be >= 0")
    return 2.0 * (scale.U + quantum)


def weighted_counter_gap_bound(scale: ServiceScale, client_weight: float) -> float:
    """Weighted VTC (ours, derived in docs/theory/fairness.md): with counters c_i = W_i/w_i + lift,
    a waiting client f exceeds any other waiting client's counter by at most U/w_f."""
    if client_weight <= 0:
        raise ValueError("client weight must be > 0")
    return scale.U / client_weight


def weighted_pair_bound(scale: ServiceScale, weight_f: float, weight_g: float) -> float:
    """Weighted VTC (ours): |W_f/w_f − W_g/w_g| ≤ U·(1/w_f + 1/w_g) for f, g backlogged on
    [t1, t2). Equals 2U when w_f = w_g = 1."""
    return weighted_counter_gap_bound(scale, weight_f) + weighted_counter_gap_bound(scale, weight_g)


def weighted_gap_bound_all(scale: ServiceScale, weights: Sequence[float]) -> float:
    """The weighted counter-gap bound over all clients: U / min_i w_i."""
    return scale.U / min(weights) if len(weights) else 0.0


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index (Σx)² / (n·Σx²) in [1/n, 1]; 1.0 for an empty or all-zero input."""
    xs = [float(v) for v in values]
    sq = sum(v * v for v in xs)
    if not xs or sq == 0 or not math.isfinite(sq):
        return 1.0
    return sum(xs) ** 2 / (len(xs) * sq)
