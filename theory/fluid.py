"""Fluid model of continuous batching with KV memory: equilibrium batch composition and capacity.

Owns the fluid LP (linear/staircase round time, token budget, KV limit, request cap), optimal tiling,
static vs dynamic prefill/decode splits and the P/D instance ratio. Reconstructed from the stated
principles of arXiv 2504.11320 and 2508.01002 (bodies unread): the formulas are ours, see docs/theory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from llmsched.theory.batch_time import BatchTime, eval_batch_time
from llmsched.theory.workload_stats import WorkloadStats

__all__ = [
    "FluidSolution",
    "LinearRoundTime",
    "PDSplit",
    "RequestClass",
    "decode_pool_class",
    "fluid_capacity",
    "fluid_equilibrium",
    "mixed_class",
    "optimal_pd_split",
    "optimal_token_budget",
    "prefill_pool_class",
    "split_capacity",
    "staircase_capacity",
]

_REL_TIGHT = 1e-6


@dataclass(frozen=True)
class RequestClass:
    """A request class as the fluid model sees it (per-request means).

    rate_rps: arrival rate λ_k; prefill_tokens: prompt tokens *computed on this server*;
    decode_tokens: decode rounds; kv_token_rounds: g_k, Σ over rounds in the batch of KV tokens held;
    rounds_in_batch: L_k, rounds the request occupies a batch slot (for the request cap).
    """

    rate_rps: float
    prefill_tokens: float
    decode_tokens: float
    kv_token_rounds: float
    rounds_in_batch: float

    @property
    def work_tokens(self) -> float:
        return self.prefill_tokens + self.decode_tokens


def mixed_class(stats: WorkloadStats, rate_rps: float | None = None,
                chunk_tokens: float | None = None) -> RequestClass:
    """A colocated (prefill + decode on one server) class from workload moments."""
    rate = stats.rate_rps if rate_rps is None else rate_rps
    if rate is None:
        rate = 1.0
    return RequestClass(rate, stats.mean_prompt_tokens, stats.mean_decode_tokens,
                        stats.kv_token_rounds(chunk_tokens),
                        stats.prefill_rounds(chunk_tokens) + stats.mean_decode_tokens)


def prefill_pool_class(stats: WorkloadStats, rate_rps: float | None = None,
                       chunk_tokens: float | None = None) -> RequestClass:
    """A prefill-pool class: computes prompts only; holds KV only while prefilling."""
    rate = stats.rate_rps if rate_rps is None else rate_rps
    kv = stats.kv_token_rounds(chunk_tokens) - stats.kv_token_rounds(chunk_tokens, include_prefill=False)
    return RequestClass(1.0 if rate is None else rate, stats.mean_prompt_tokens, 0.0, kv,
                        stats.prefill_rounds(chunk_tokens))


def decode_pool_class(stats: WorkloadStats, rate_rps: float | None = None) -> RequestClass:
    """A decode-pool class: the prompt's KV arrives by transfer; only decode rounds run here."""
    rate = stats.rate_rps if rate_rps is None else rate_rps
    return RequestClass(1.0 if rate is None else rate, 0.0, stats.mean_decode_tokens,
                        stats.kv_token_rounds(None, include_prefill=False), stats.mean_decode_tokens)


@dataclass(frozen=True)
class LinearRoundTime:
    """t = base_s + per_token_s·b + per_kv_token_s·(KV tokens resident in the batch).

    The per-token term is Ao et al.'s linear iteration time; the KV term models decode attention
    reading the cache (DistServe Appendix A's C5·3·h·t term has this form).
    """

    base_s: float
    per_token_s: float = 0.0
    per_kv_token_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.per_token_s >= 0 and self.per_kv_token_s >= 0):
            raise ValueError("need base_s > 0 and non-negative per-token coefficients")

    def __call__(self, tokens, kv_tokens=0.0):
        return self.base_s + self.per_token_s * np.asarray(tokens, float) + self.per_kv_token_s * np.asarray(kv_tokens, float)


@dataclass(frozen=True)
class FluidSolution:
    """A fluid equilibrium: per-class throughput and the batch it implies.

    throughput_rps[k] = x_k; iteration_s = T; requests_in_batch[k] = x_k·T·L_k (batch composition);
    prefill/decode_tokens_per_round = T·Σ x_k p_k / T·Σ x_k d_k; kv_tokens = T·Σ x_k g_k.
    binding: names of the constraints at equality ("token_budget", "kv_memory", "request_cap",
    "compute" for the linear-time asymptote, "arrivals" when every class is fully served).
    scale: θ (throughput / arrival rates) for the proportional objective.
    """

    throughput_rps: np.ndarray
    iteration_s: float
    requests_in_batch: np.ndarray
    prefill_tokens_per_round: float
    decode_tokens_per_round: float
    kv_tokens: float
    binding: tuple[str, ...]
    scale: float = math.nan
    feasible: bool = True
    details: dict = field(default_factory=dict)

    @property
    def total_rps(self) -> float:
        return float(np.sum(self.throughput_rps))

    @property
    def batch_tokens(self) -> float:
        return self.prefill_tokens_per_round + self.decode_tokens_per_round

    @property
    def prefill_share(self) -> float:
        b = self.batch_tokens
        return self.prefill_tokens_per_round / b if b > 0 else 0.0


def _arrays(classes: Sequence[RequestClass]):
    lam = np.array([c.rate_rps for c in classes], float)
    s = np.array([c.work_tokens for c in classes], float)
    p = np.array([c.prefill_tokens for c in classes], float)
    d = np.array([c.decode_tokens for c in classes], float)
    g = np.array([c.kv_token_rounds for c in classes], float)
    ll = np.array([c.rounds_in_batch for c in classes], float)
    return lam, s, p, d, g, ll


def _solution(x, T, classes, binding, scale, feasible=True, details=None) -> FluidSolution:
    _, _, p, d, g, ll = _arrays(classes)
    x = np.asarray(x, float)
    with np.errstate(invalid="ignore"):  # T = inf (overloaded) with a zero-rate class gives nan
        comp = (x * T * ll, float(T * x @ p), float(T * x @ d), float(T * x @ g))
    return FluidSolution(x, float(T), *comp, tuple(binding), float(scale), feasible, details or {})


def fluid_equilibrium(classes: Sequence[RequestClass], round_time: LinearRoundTime,
                      token_budget: float | None = None, kv_capacity_tokens: float | None = None,
                      max_batch_requests: float | None = None) -> FluidSolution:
    """The equilibrium at the given arrival rates (every class fully served), in closed form.

    Each running request advances one round per round (continuous batching), so at throughput x_k
    a batch holds x_k·T·L_k class-k requests and computes T·Σ x_k s_k tokens. The round time solves
    T = t0 + t1·T·Σλs + t2·T·Σλg, i.e. T = t0 / (1 − t1Σλs − t2Σλg) (needs a positive denominator).
    `feasible` is False (and `binding` names the violated limits) when a limit is exceeded.
    """
    lam, s, _, _, g, ll = _arrays(classes)
    denom = 1.0 - round_time.per_token_s * lam @ s - round_time.per_kv_token_s * lam @ g
    if denom <= 0:
        return _solution(lam, math.inf, classes, ("compute",), 1.0, False)
    T = round_time.base_s / denom
    violated = []
    if token_budget is not None and T * lam @ s > token_budget * (1 + 1e-12):
        violated.append("token_budget")
    if kv_capacity_tokens is not None and T * lam @ g > kv_capacity_tokens * (1 + 1e-12):
        violated.append("kv_memory")
    if max_batch_requests is not None and T * lam @ ll > max_batch_requests * (1 + 1e-12):
        violated.append("request_cap")
    return _solution(lam, T, classes, violated, 1.0, not violated)


def fluid_capacity(classes: Sequence[RequestClass], round_time: LinearRoundTime,
                   token_budget: float | None = None, kv_capacity_tokens: float | None = None,
                   max_batch_requests: float | None = None, objective: str = "proportional",
                   weights: Sequence[float] | None = None) -> FluidSolution:
    """Maximum sustainable throughput of the fluid model (an LP, solved with cvxpy).

    Variables x_k ≥ 0 (class throughput) and u = 1/T > 0. The Charnes–Cooper substitution makes the
    equilibrium conditions linear:  t0·u + t1·Σx_k s_k + t2·Σx_k g_k = 1 (round-time identity),
    Σx_k s_k ≤ B·u (token budget), Σx_k g_k ≤ M·u (KV memory, Little's law),
    Σx_k L_k ≤ k_max·u (request cap).  objective="proportional": x = θ·λ, maximise θ (capacity of
    the given mix; rates then only fix proportions); "total": maximise Σ w_k x_k with x_k ≤ λ_k.
    """
    lam, s, _, _, g, ll = _arrays(classes)
    if np.any(lam < 0) or not np.any(lam > 0):
        raise ValueError("class rates must be >= 0 with at least one > 0")
    t0, t1, t2 = round_time.base_s, round_time.per_token_s, round_time.per_kv_token_s
    u = cp.Variable(nonneg=True)
    if objective == "proportional":
        theta = cp.Variable(nonneg=True)
        x = theta * lam
        obj = cp.Maximize(theta)
    elif objective == "total":
        xv = cp.Variable(len(classes), nonneg=True)
        x = xv
        w = np.ones(len(classes)) if weights is None else np.asarray(weights, float)
        obj = cp.Maximize(w @ xv)
    else:
        raise ValueError(f"objective must be 'proportional' or 'total', got {objective!r}")
    cons = {"round_time": t0 * u + t1 * (s @ x) + t2 * (g @ x) == 1}
    if token_budget is not None:
        cons["token_budget"] = s @ x <= token_budget * u
    if kv_capacity_tokens is not None:
        cons["kv_memory"] = g @ x <= kv_capacity_tokens * u
    if max_batch_requests is not None:
        cons["request_cap"] = ll @ x <= max_batch_requests * u
    if objective == "total":
        cons["arrivals"] = xv <= lam
    prob = cp.Problem(obj, list(cons.values()))
    prob.solve(solver=cp.HIGHS) if "HIGHS" in cp.installed_solvers() else prob.solve()
    if prob.status == cp.UNBOUNDED or (prob.status == cp.OPTIMAL and not math.isfinite(prob.value)):
        return _solution(np.full(len(classes), math.inf), math.nan, classes, (), math.inf, True,
                         {"status": "unbounded"})
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(f"fluid LP status {prob.status}")
    xval = np.maximum(np.asarray(x.value if objective == "total" else theta.value * lam, float).ravel(), 0.0)
    uval = float(u.value)
    T = 1.0 / uval if uval > 0 else math.inf
    binding = _binding(xval, uval, s, g, ll, lam, token_budget, kv_capacity_tokens, max_batch_requests,
                       objective)
    scale = float(theta.value) if objective == "proportional" else math.nan
    return _solution(xval, T, classes, binding, scale, True, {"status": prob.status})


def _binding(x, u, s, g, ll, lam, B, M, K, objective) -> tuple[str, ...]:
    out = []
    if u <= 1e-12:
        out.append("compute")
    for name, lhs, cap in (("token_budget", s @ x, B), ("kv_memory", g @ x, M), ("request_cap", ll @ x, K)):
        if cap is not None and lhs >= cap * u * (1 - _REL_TIGHT):
            out.append(name)
    if objective == "total" and np.all(x >= lam * (1 - _REL_TIGHT)):
        out.append("arrivals")
    return tuple(out)


# -- staircase cost: optimal tiling ----------------------------------------------------------------


def optimal_token_budget(t: BatchTime, b_max: int) -> tuple[int, float]:
    """The budget b* ≤ b_max maximising the token rate b/t(b), and that rate (tokens/s).

    For t = c + a⌈b/b0⌉ (c, a > 0): inside a step the rate grows with b and across full steps
    k·b0/(c + a·k) grows with k, so b* is K·b0 (K = ⌊b_max/b0⌋, tile-aligned) unless the partial
    last step carries j = b_max − K·b0 > K·b0·a/(c + a·K) extra tokens. (Our derivation of RAD's
    "optimal tiling" principle; see `llmsched.theory.stability.best_token_rate`.)
    """
    from llmsched.theory.stability import best_token_rate

    return best_token_rate(t, b_max)


def staircase_capacity(classes: Sequence[RequestClass], c_s: float, a_s: float, b0_tokens: int,
                       b_max: int, kv_capacity_tokens: float | None = None,
                       max_batch_requests: float | None = None) -> tuple[FluidSolution, int]:
    """Fluid capacity of the mix under t = c + a⌈b/b0⌉, choosing the best step (tile count) k.

    On step k the round time is the constant T_k = c + a·k and rounds may carry up to
    min(k·b0, b_max) tokens; the LP of `fluid_capacity` with t1 = t2 = 0 and a fixed T_k gives the
    capacity of that step. Returns (best solution, its budget). With a KV limit the best step can be
    below the largest tile-aligned one (memory-bound: longer rounds hold KV longer).
    """
    lam, s, _, _, g, ll = _arrays(classes)
    best: tuple[float, int, FluidSolution] | None = None
    k_hi = math.ceil(b_max / b0_tokens)
    for k in range(1, k_hi + 1):
        T = c_s + a_s * k
        cap_b = min(k * b0_tokens, b_max)
        limits = {"token_budget": cap_b / (T * (lam @ s))}
        if kv_capacity_tokens is not None and lam @ g > 0:
            limits["kv_memory"] = kv_capacity_tokens / (T * (lam @ g))
        if max_batch_requests is not None and lam @ ll > 0:
            limits["request_cap"] = max_batch_requests / (T * (lam @ ll))
        theta = min(limits.values())
        binding = tuple(n for n, v in limits.items() if v <= theta * (1 + _REL_TIGHT))
        sol = _solution(theta * lam, T, classes, binding, theta, True, {"step": k})
        if best is None or theta > best[0] * (1 + 1e-12):
            best = (theta, cap_b, sol)
    assert best is not None
    return best[2], best[1]


# -- dynamic vs static prefill/decode split ---------------------------------------------------------


def split_capacity(t: BatchTime, token_budget: int, prefill_share: float,
                   mean_prefill_tokens: float, mean_decode_tokens: float) -> float:
    """Requests/s when each round reserves a *fixed* share of the budget for prefill tokens.

    Prefill is served at share·B/t(B) tokens/s and decode at (1−share)·B/t(B), so
    λ ≤ min(share·B/(t(B)·m_p), (1−share)·B/(t(B)·m_d)). The maximum over shares is attained at
    share = m_p/(m_p+m_d) and equals B/(t(B)(m_p+m_d)) — what a *dynamic* split (any
    work-conserving policy) gets for every mix; a static split loses unless it matches the mix.
    """
    rate = token_budget / float(eval_batch_time(t, np.array([token_budget]))[0])
    caps = []
    if mean_prefill_tokens > 0:
        caps.append(prefill_share * rate / mean_prefill_tokens)
    if mean_decode_tokens > 0:
        caps.append((1.0 - prefill_share) * rate / mean_decode_tokens)
    return min(caps) if caps else math.inf


# -- disaggregated prefill/decode: instance ratio ----------------------------------------------------


@dataclass(frozen=True)
class PDSplit:
    """Prefill/decode pool sizes: the continuous optimum ratio and the best integer split."""

    ratio_prefill_per_decode: float
    n_prefill: int
    n_decode: int
    capacity_rps: float
    binding_pool: str


def optimal_pd_split(prefill_rps_per_instance: float, decode_rps_per_instance: float,
                     total_instances: int | None = None, target_rps: float | None = None) -> PDSplit:
    """Sizes of the prefill and decode pools that maximise min(N_P·μ_P, N_D·μ_D).

    The continuous optimum balances the pools: N_P/N_D = μ_D/μ_P. With `total_instances` N the best
    integer split is found by enumeration (exact); with `target_rps` instead, the smallest pools that
    carry it (N_P = ⌈λ/μ_P⌉, N_D = ⌈λ/μ_D⌉). μ are per-instance request capacities (e.g. from
    `fluid_capacity` with `prefill_pool_class` / `decode_pool_class`).
    """
    mp, md = float(prefill_rps_per_instance), float(decode_rps_per_instance)
    if not (mp > 0 and md > 0):
        raise ValueError("per-instance capacities must be > 0")
    ratio = md / mp
    if total_instances is not None:
        n = int(total_instances)
        if n < 2:
            raise ValueError("a disaggregated pool needs at least 2 instances")
        n_p = np.arange(1, n)
        cap = np.minimum(n_p * mp, (n - n_p) * md)
        i = int(np.argmax(cap))
        a, b = int(n_p[i]), n - int(n_p[i])
    elif target_rps is not None:
        a, b = max(1, math.ceil(target_rps / mp - 1e-12)), max(1, math.ceil(target_rps / md - 1e-12))
    else:
        raise ValueError("give total_instances or target_rps")
    cp_, cd = a * mp, b * md
    return PDSplit(ratio, a, b, min(cp_, cd), "prefill" if cp_ <= cd else "decode")
