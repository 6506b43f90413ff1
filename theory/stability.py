"""Stability region of one batching server: capacity, request-cap vertices, fluid backlog slopes.

Owns the closed forms of Li–Dai–Peng (arXiv 2504.07347) for a round time that depends on the
round's token load, their extension to a per-round request cap k_max (an LP over round types),
and multi-class loads. Pure functions over numbers and callables; no engine or policy code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, QhullError

from llmsched.theory.batch_time import (
    BatchTime,
    RoundTime,
    eval_batch_time,
    round_time_from_batch_time,
)

__all__ = [
    "ClassLoad",
    "FluidSlope",
    "best_token_rate",
    "cap_region_capacity",
    "cap_region_vertices",
    "fluid_backlog_slope",
    "in_cap_region",
    "is_stable",
    "multiclass_capacity_scale",
    "multiclass_fluid_slope",
    "multiclass_token_load",
    "request_capacity",
    "token_capacity",
]


def _check_budget(b_max: int) -> int:
    b = int(b_max)
    if b < 1 or b != b_max:
        raise ValueError(f"b_max must be a positive integer number of tokens, got {b_max}")
    return b


def token_capacity(t: BatchTime, b_max: int) -> float:
    """Tokens/s of a work-conserving server with token budget b_max under overload: b_max / t(b_max).

    Li–Dai–Peng Theorem (single server; "Thm 2" per a third-party reproduction): when the round time
    depends only on the token load b, every work-conserving policy is stable iff
    λ(m_p + m_d) < b_max / t(b_max). Under overload a work-conserving policy fills every round to
    b_max, so this is also its saturation token throughput.
    """
    b = _check_budget(b_max)
    return b / float(eval_batch_time(t, np.array([b]))[0])


def best_token_rate(t: BatchTime, b_max: int) -> tuple[int, float]:
    """(b*, b*/t(b*)): the budget ≤ b_max that maximises the token rate b/t(b), and that rate.

    This is the upper bound for *any* policy limited to b_max tokens per round (a policy may choose
    to run smaller rounds). It equals `token_capacity` when b/t(b) is non-decreasing (e.g. linear
    t), and can exceed it for a staircase when b_max is not tile-aligned ("optimal tiling", RAD
    principle of arXiv 2508.01002). For t = c + a⌈b/b0⌉ our closed form is b* ∈ {K·b0, b_max},
    K = ⌊b_max/b0⌋: the partial last step wins only if its extra j = b_max − K·b0 tokens exceed
    K·b0·a/(c + a·K). Ties go to the smallest b.
    """
    b = _check_budget(b_max)
    grid = np.arange(1, b + 1, dtype=np.float64)
    rate = grid / eval_batch_time(t, grid)
    i = int(np.argmax(rate))
    return int(grid[i]), float(rate[i])


def request_capacity(t: BatchTime, b_max: int, mean_prefill_tokens: float,
                     mean_decode_tokens: float) -> float:
    """Requests/s at the stability boundary: b_max / (t(b_max)·(m_p + m_d))."""
    m = float(mean_prefill_tokens) + float(mean_decode_tokens)
    if not m > 0:
        raise ValueError("mean_prefill_tokens + mean_decode_tokens must be > 0")
    return token_capacity(t, b_max) / m


def is_stable(rate_rps: float, t: BatchTime, b_max: int, mean_prefill_tokens: float,
              mean_decode_tokens: float) -> bool:
    """λ(m_p + m_d) < b_max / t(b_max) (strict: the boundary itself is null-recurrent at best)."""
    load = rate_rps * (mean_prefill_tokens + mean_decode_tokens)
    return load < token_capacity(t, b_max)


@dataclass(frozen=True)
class FluidSlope:
    """Growth rate of the fluid backlog above capacity (zero below it).

    tokens_per_s: d/dt of unprocessed tokens = max(0, λ·m − C); policy-independent for every
      work-conserving policy (each round under overload processes b_max tokens).
    requests_per_s: d/dt of requests in system = max(0, λ − C/m); holds for policies whose
      completions keep the backlog's mix equal to the arrivals' (FCFS-like order of service).
      A size-aware policy (e.g. shortest-first) can complete more requests per second, so for it
      this is not a bound (documented in docs/theory/throughput.md).
    """

    tokens_per_s: float
    requests_per_s: float
    capacity_tokens_per_s: float
    load_tokens_per_s: float


def fluid_backlog_slope(rate_rps: float, t: BatchTime, b_max: int, mean_prefill_tokens: float,
                        mean_decode_tokens: float) -> FluidSlope:
    """Fluid backlog growth slope at arrival rate λ for a work-conserving server (see `FluidSlope`).

    Derivation: with Q(t) unprocessed tokens and Q > 0, a work-conserving server completes b_max
    tokens per round of length t(b_max), so dQ/dt = λ(m_p+m_d) − b_max/t(b_max).
    """
    m = mean_prefill_tokens + mean_decode_tokens
    cap = token_capacity(t, b_max)
    load = rate_rps * m
    tok = max(0.0, load - cap)
    return FluidSlope(tok, tok / m, cap, load)


# -- multi-class ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassLoad:
    """One request class: Poisson (or any renewal) rate and mean token counts."""

    rate_rps: float
    mean_prefill_tokens: float
    mean_decode_tokens: float

    @property
    def tokens_per_s(self) -> float:
        return self.rate_rps * (self.mean_prefill_tokens + self.mean_decode_tokens)


def multiclass_token_load(classes: Sequence[ClassLoad]) -> float:
    """Σ_k λ_k (m_p,k + m_d,k) tokens/s: the single-server condition only sees the total token load."""
    return float(sum(c.tokens_per_s for c in classes))


def multiclass_capacity_scale(classes: Sequence[ClassLoad], t: BatchTime, b_max: int) -> float:
    """θ* such that the classes scaled by θ are stable iff θ < θ*: C / Σ_k λ_k(m_p,k + m_d,k)."""
    load = multiclass_token_load(classes)
    if not load > 0:
        return float("inf")
    return token_capacity(t, b_max) / load


def multiclass_fluid_slope(classes: Sequence[ClassLoad], t: BatchTime, b_max: int) -> FluidSlope:
    """Token-backlog slope max(0, Σλ_k m_k − C); the request slope assumes service in arrival mix."""
    rate = sum(c.rate_rps for c in classes)
    load = multiclass_token_load(classes)
    cap = token_capacity(t, b_max)
    tok = max(0.0, load - cap)
    mean_tokens = load / rate if rate > 0 else float("inf")
    return FluidSlope(tok, tok / mean_tokens if rate > 0 else 0.0, cap, load)


# -- request cap k_max: the region in (prefill tokens/s, decode tokens/s) --------------------------


def _round_points(rt: RoundTime, b_max: int, k_max: int, max_points: int = 4_000_000):
    """Rates (p/t, d/t) of every feasible round type (p prefill, d decode tokens).

    Feasible: p + d ≤ b_max, d ≤ k_max decodes when p = 0, and d ≤ k_max − 1 when p > 0 (a prefill
    chunk occupies a request slot; several chunks would only use more slots). Rounds smaller than
    b_max are included: a policy may idle part of the budget.
    """
    b = _check_budget(b_max)
    k = int(k_max)
    if k < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    d_hi = min(k, b)
    stride = max(1, int(np.ceil((b + 1) * (d_hi + 1) / max_points)))
    p_vals = np.unique(np.concatenate([np.arange(0, b + 1, stride), [b]]))
    d_vals = np.arange(0, d_hi + 1)
    pp, dd = np.meshgrid(p_vals, d_vals, indexing="ij")
    pp, dd = pp.ravel().astype(np.float64), dd.ravel().astype(np.float64)
    tot = pp + dd
    slots = np.where(pp > 0, k - 1, k)
    ok = (tot <= b) & (tot >= 1) & (dd <= slots)
    pp, dd = pp[ok], dd[ok]
    tt = np.asarray(rt(pp, dd), dtype=np.float64)
    return pp / tt, dd / tt


def _as_round_time(t: BatchTime | None, rt: RoundTime | None) -> RoundTime:
    if rt is not None:
        return rt
    if t is None:
        raise ValueError("give a batch time t(b) or a round time rt(p, d)")
    return round_time_from_batch_time(t)


def cap_region_vertices(t: BatchTime | None, b_max: int, k_max: int, *,
                        round_time: RoundTime | None = None) -> np.ndarray:
    """Pareto vertices of the stability region in (prefill tokens/s, decode tokens/s), sorted by
    prefill rate, for a budget b_max and a cap of k_max requests per round.

    The region is the downward-closed convex hull of the per-round-type rate points (time sharing
    between round types; our reconstruction of Li–Dai–Peng's request-cap discussion, whose theorem
    text we could not read). For t = c + a⌈b/b0⌉, b_max = b0 and k_max < b0 it has the vertex
    ((b0 − k_max + 1)/t(b0), (k_max − 1)/t(b0)) — "vertex C" of the third-party reproduction.
    """
    rt = _as_round_time(t, round_time)
    xp, yd = _round_points(rt, b_max, k_max)
    pts = np.column_stack([np.concatenate([xp, [0.0, xp.max(), 0.0]]),
                           np.concatenate([yd, [0.0, 0.0, yd.max()]])])
    try:
        hull = ConvexHull(pts)
        cand = pts[hull.vertices]
    except QhullError:  # degenerate (e.g. all points on a line)
        cand = pts
    keep = []
    for i, (x, y) in enumerate(cand):
        dominated = np.any((cand[:, 0] >= x) & (cand[:, 1] >= y) & ((cand[:, 0] > x) | (cand[:, 1] > y)))
        if not dominated and (x > 0 or y > 0):
            keep.append(i)
    v = np.unique(np.round(cand[keep], 15), axis=0)
    return v[np.argsort(v[:, 0])]


def cap_region_capacity(t: BatchTime | None, b_max: int, k_max: int, mean_prefill_tokens: float,
                        mean_decode_tokens: float, *, round_time: RoundTime | None = None) -> float:
    """Largest λ (requests/s) with λ·(m_p, m_d) inside the k_max-capped region.

    LP over time fractions α_v ≥ 0 of the region's vertices: max λ s.t. Σα ≤ 1,
    Σ α_v x_v ≥ λ m_p, Σ α_v y_v ≥ λ m_d. Without a binding cap this equals best_token_rate/m.
    """
    v = cap_region_vertices(t, b_max, k_max, round_time=round_time)
    n = len(v)
    # variables [alpha_1..alpha_n, lam]; minimise -lam
    c = np.zeros(n + 1)
    c[-1] = -1.0
    a_ub = np.zeros((3, n + 1))
    a_ub[0, :n] = 1.0
    a_ub[1, :n] = -v[:, 0]
    a_ub[1, -1] = mean_prefill_tokens
    a_ub[2, :n] = -v[:, 1]
    a_ub[2, -1] = mean_decode_tokens
    res = linprog(c, A_ub=a_ub, b_ub=[1.0, 0.0, 0.0], bounds=[(0, None)] * (n + 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"capacity LP failed: {res.message}")
    return float(res.x[-1])


def in_cap_region(prefill_tokens_per_s: float, decode_tokens_per_s: float, t: BatchTime | None,
                  b_max: int, k_max: int, *, round_time: RoundTime | None = None) -> bool:
    """Whether a token-rate pair lies strictly inside the capped region (scaled by 1+1e-12)."""
    total = prefill_tokens_per_s + decode_tokens_per_s
    if total <= 0:
        return True
    lam = cap_region_capacity(t, b_max, k_max, prefill_tokens_per_s / total,
                              decode_tokens_per_s / total, round_time=round_time)
    return total < lam * (1.0 - 1e-12)
