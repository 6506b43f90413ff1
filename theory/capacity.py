"""Predicted capacity (requests/s) of an instance or cluster, and the constraint that binds it.

Owns `capacity(cluster, cost_model, workload_stats)`: compute (token budget over round time,
Li–Dai–Peng), KV memory (Little's law on resident tokens), the request cap (stability-region LP),
and for disaggregated pools the prefill pool, the decode pool and the KV link. Works against the
`CostModel` protocol only; it never builds cost models or reads configs from disk itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost.base import CostModel
from llmsched.sim.workload.core import Workload
from llmsched.theory.batch_time import (
    RoundTime,
    ShapeMoments,
    batch_time_at_mix,
    round_time_from_cost_model,
)
from llmsched.theory.stability import cap_region_capacity
from llmsched.theory.workload_stats import WorkloadStats

__all__ = ["CapacityResult", "FluidSlopes", "capacity", "fluid_slopes", "instance_capacity"]

CostModelArg = CostModel | Callable[[InstanceSpec], CostModel]
KvArg = int | Callable[[InstanceSpec], int | None] | None
_TIE = 1e-9


@dataclass(frozen=True)
class CapacityResult:
    """requests_per_s: the predicted capacity; binding_constraint: which limit sets it
    ("compute", "kv_memory", "request_cap", "kv_link", prefixed "prefill_pool:"/"decode_pool:" for
    disaggregated pools, or "group i: ..." parts for heterogeneous clusters);
    details: every candidate limit and the numbers behind it (JSON-friendly)."""

    requests_per_s: float
    binding_constraint: str
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.requests_per_s:.4g} requests/s (binding: {self.binding_constraint})"


def _cost_for(cost_model: CostModelArg, spec: InstanceSpec) -> CostModel:
    if isinstance(cost_model, CostModel):
        return cost_model
    if callable(cost_model):
        return cost_model(spec)
    raise TypeError("cost_model must be a CostModel or a callable InstanceSpec -> CostModel")


def _kv_for(kv: KvArg, spec: InstanceSpec, use_catalogue: bool) -> tuple[int | None, str]:
    if spec.kv_capacity_tokens is not None:
        return int(spec.kv_capacity_tokens), "instance spec"
    if isinstance(kv, (int, np.integer)):
        return int(kv), "argument"
    if callable(kv):
        v = kv(spec)
        if v is not None:
            return int(v), "argument"
    if use_catalogue:
        from llmsched.sim.hardware import kv_capacity_tokens

        return int(kv_capacity_tokens(spec.model, spec.gpu, spec.tp)), "llmsched.sim.hardware catalogue"
    return None, "not modelled"


def _best_rate(bt, b_hi: float) -> tuple[float, float]:
    """(b, b/t(b)) maximising the token rate over integer b in [1, b_hi]."""
    hi = math.floor(b_hi)
    if hi < 1:
        return 0.0, 0.0
    grid = np.arange(1, hi + 1, dtype=np.float64)
    rate = grid / np.asarray(bt(grid), float)
    i = int(np.argmax(rate))
    return float(grid[i]), float(rate[i])


def _pick(limits: dict[str, float]) -> tuple[float, str]:
    """Smallest limit; ties (within 1e-9 relative) go to the earlier key (compute first)."""
    best_name, best = None, math.inf
    for name, v in limits.items():
        if v < best * (1 - _TIE):
            best_name, best = name, v
    return best, best_name or "none"


def _mixed(spec: InstanceSpec, cm: CostModel, st: WorkloadStats, kv_tokens: int | None,
           with_cap: bool) -> CapacityResult:
    B = int(spec.token_budget)
    m_p, m_d = st.mean_prompt_tokens, st.mean_decode_tokens
    m = st.mean_work_tokens
    share = m_p / m
    chunk = max(1.0, B * share)  # a full round's prefill share is the chunk a Sarathi-like policy runs
    moments = ShapeMoments(m_p, st.prompt_sq, st.mean_decode_context, chunk)
    rt: RoundTime = round_time_from_cost_model(cm, moments)
    bt = batch_time_at_mix(rt, share)
    t_full = float(bt(np.array([float(B)]))[0])
    limits = {"compute": B / (t_full * m)}
    det: dict[str, Any] = {
        "role": "mixed", "token_budget": B, "round_time_at_budget_s": t_full,
        "token_rate_at_budget": B / t_full, "prefill_share": share, "chunk_tokens": chunk,
    }
    b_star, r_star = _best_rate(bt, B)
    if r_star > B / t_full * (1 + 1e-6):
        det["better_budget_tokens"] = b_star
        det["better_budget_requests_per_s"] = r_star / m
    if kv_tokens is not None:
        g = st.kv_token_rounds(chunk)
        b_kv = kv_tokens * m / g  # Little: λ·T·E[g] ≤ M with λ·T·m = b  ⇒  b ≤ M·m/E[g]
        det.update(kv_capacity_tokens=kv_tokens, kv_token_rounds_per_request=g, kv_token_limit_per_round=b_kv)
        if b_kv < B:
            limits["kv_memory"] = _best_rate(bt, b_kv)[1] / m
    if with_cap and spec.max_batch_requests < B + 1:
        limits["request_cap"] = cap_region_capacity(None, B, spec.max_batch_requests, m_p, m_d,
                                                    round_time=rt)
    det["max_batch_requests"] = spec.max_batch_requests
    det["limits_requests_per_s"] = dict(limits)
    cap, name = _pick(limits)
    return CapacityResult(cap, name, det)


def _prefill_pool(spec: InstanceSpec, cm: CostModel, st: WorkloadStats, kv_tokens: int | None):
    B = int(spec.token_budget)
    moments = ShapeMoments(st.mean_prompt_tokens, st.prompt_sq, st.mean_decode_context, float(B))
    rt = round_time_from_cost_model(cm, moments)
    bt = batch_time_at_mix(rt, 1.0)
    t_full = float(bt(np.array([float(B)]))[0])
    m_p = st.mean_prompt_tokens
    limits = {"compute": B / (t_full * m_p)}
    det: dict[str, Any] = {"role": "prefill", "token_budget": B, "round_time_at_budget_s": t_full}
    if kv_tokens is not None:
        g = st.kv_token_rounds(float(B)) - st.kv_token_rounds(float(B), include_prefill=False)
        b_kv = kv_tokens * m_p / g
        det.update(kv_capacity_tokens=kv_tokens, kv_token_limit_per_round=b_kv)
        if b_kv < B:
            limits["kv_memory"] = _best_rate(bt, b_kv)[1] / m_p
    det["limits_requests_per_s"] = dict(limits)
    cap, name = _pick(limits)
    return CapacityResult(cap, name, det)


def _decode_pool(spec: InstanceSpec, cm: CostModel, st: WorkloadStats, kv_tokens: int | None):
    m_d = st.mean_decode_tokens
    if m_d <= 0:
        return CapacityResult(math.inf, "none", {"role": "decode", "note": "no decode rounds"})
    moments = ShapeMoments(st.mean_prompt_tokens, st.prompt_sq, st.mean_decode_context, None)
    rt = round_time_from_cost_model(cm, moments)
    bt = batch_time_at_mix(rt, 0.0)
    d_max = min(int(spec.token_budget), int(spec.max_batch_requests))
    t_full = float(bt(np.array([float(d_max)]))[0])
    limit_name = "compute" if spec.token_budget <= spec.max_batch_requests else "request_cap"
    limits = {limit_name: d_max / (t_full * m_d)}
    det: dict[str, Any] = {"role": "decode", "decodes_per_round": d_max, "round_time_s": t_full}
    if kv_tokens is not None:
        g = st.kv_token_rounds(None, include_prefill=False)
        d_kv = kv_tokens * m_d / g
        det.update(kv_capacity_tokens=kv_tokens, kv_decodes_limit_per_round=d_kv)
        if d_kv < d_max:
            limits["kv_memory"] = _best_rate(bt, d_kv)[1] / m_d
    det["limits_requests_per_s"] = dict(limits)
    cap, name = _pick(limits)
    return CapacityResult(cap, name, det)


def instance_capacity(spec: InstanceSpec, cost_model: CostModel, workload_stats: WorkloadStats, *,
                      kv_capacity_tokens: int | None = None, request_cap: bool = True) -> CapacityResult:
    """Capacity of one instance in its role (mixed, prefill or decode); see `capacity`."""
    if spec.role == "prefill":
        return _prefill_pool(spec, cost_model, workload_stats, kv_capacity_tokens)
    if spec.role == "decode":
        return _decode_pool(spec, cost_model, workload_stats, kv_capacity_tokens)
    return _mixed(spec, cost_model, workload_stats, kv_capacity_tokens, request_cap)


def capacity(cluster: ClusterSpec | InstanceSpec, cost_model: CostModelArg,
             workload_stats: WorkloadStats | Workload, *, kv_capacity_tokens: KvArg = None,
             use_catalogue: bool = True, kv_bytes_per_token: float | None = None,
             request_cap: bool = True) -> CapacityResult:
    """Predicted capacity of a cluster (or one instance group) for a workload, with the binding limit.

    Per mixed instance, the minimum of (requests/s; m = E[p] + E[d] tokens of work per request):
      compute     B / (t(B)·m): a work-conserving policy's saturation rate at budget B, with t
                  evaluated on a steady-state round whose prefill share is E[p]/m (Li–Dai–Peng);
      kv_memory   Little's law: resident KV = λ·T·E[g] ≤ M, and λ·T·m = b tokens per round, so rounds
                  can carry at most b_kv = M·m/E[g] tokens; rate max_{b ≤ b_kv} b/(t(b)·m);
      request_cap the k_max-capped stability-region LP (`llmsched.theory.stability.cap_region_capacity`).
    Mixed instances add up (ideal routing). Disaggregated clusters take the minimum of the prefill
    pool (N_P × prompt rate), the decode pool (N_D × decode rate, with its own KV and cap limits)
    and, when `kv_bytes_per_token` is given, the KV link (each prefill instance sends E[p]·bytes per
    request over a link of `cluster.kv_link_bandwidth_Bps`; one link per prefill instance is our
    assumption). KV capacity per instance: spec.kv_capacity_tokens, else `kv_capacity_tokens`
    (int or callable), else the `llmsched.sim.hardware` catalogue when `use_catalogue`, else not modelled.
    `workload_stats` may also be a `Workload` (its moments are taken with `WorkloadStats.from_workload`).
    """
    cl = ClusterSpec(instances=(cluster,)) if isinstance(cluster, InstanceSpec) else cluster
    st = workload_stats if isinstance(workload_stats, WorkloadStats) else WorkloadStats.from_workload(workload_stats)
    groups = []
    for i, spec in enumerate(cl.instances):
        kv, kv_src = _kv_for(kv_capacity_tokens, spec, use_catalogue)
        res = instance_capacity(spec, _cost_for(cost_model, spec), st, kv_capacity_tokens=kv,
                                request_cap=request_cap)
        d = dict(res.details, group=i, count=spec.count, kv_source=kv_src,
                 per_instance_requests_per_s=res.requests_per_s, binding=res.binding_constraint,
                 model=spec.model, gpu=spec.gpu, tp=spec.tp, cost=spec.cost)
        groups.append((spec, res, d))
    details: dict[str, Any] = {
        "workload": {"mean_prompt_tokens": st.mean_prompt_tokens, "mean_output_tokens": st.mean_output_tokens,
                     "mean_decode_tokens": st.mean_decode_tokens, "rate_rps": st.rate_rps},
        "groups": [g[2] for g in groups],
    }
    roles = {spec.role for spec, _, _ in groups}
    if roles <= {"mixed"}:
        total = sum(spec.count * res.requests_per_s for spec, res, _ in groups)
        names = {res.binding_constraint for _, res, _ in groups}
        if len(names) == 1:
            binding = names.pop()
        else:
            binding = "; ".join(f"group {i}: {res.binding_constraint}" for i, (_, res, _) in enumerate(groups))
        return CapacityResult(total, binding, details)
    pools = {"prefill": 0.0, "decode": 0.0}
    pool_binding: dict[str, list[tuple[float, str]]] = {"prefill": [], "decode": []}
    n_prefill = 0
    for spec, res, _ in groups:
        pools[spec.role] += spec.count * res.requests_per_s
        pool_binding[spec.role].append((spec.count * res.requests_per_s, res.binding_constraint))
        if spec.role == "prefill":
            n_prefill += spec.count
    limits = {f"{role}_pool": v for role, v in pools.items()}
    if kv_bytes_per_token is not None and st.mean_prompt_tokens > 0:
        limits["kv_link"] = n_prefill * cl.kv_link_bandwidth_Bps / (st.mean_prompt_tokens * kv_bytes_per_token)
    details["limits_requests_per_s"] = dict(limits)
    details["pd_ratio_optimal_prefill_per_decode"] = _pd_ratio(groups)
    cap, name = _pick(limits)
    if name.endswith("_pool"):
        role = name.removesuffix("_pool")
        name = f"{name}:{max(pool_binding[role])[1]}"
    return CapacityResult(cap, name, details)


def _pd_ratio(groups) -> float | None:
    """μ_D/μ_P from the first prefill and decode group (the balanced-pools ratio N_P/N_D)."""
    mu = {}
    for spec, res, _ in groups:
        mu.setdefault(spec.role, res.requests_per_s)
    if "prefill" in mu and "decode" in mu and mu["prefill"] > 0:
        return mu["decode"] / mu["prefill"]
    return None


@dataclass(frozen=True)
class FluidSlopes:
    """Fluid backlog growth above a capacity: requests/s and tokens/s (0 below capacity)."""

    requests_per_s: float
    tokens_per_s: float
    load: float


def fluid_slopes(capacity_rps: float, rate_rps: float, workload_stats: WorkloadStats) -> FluidSlopes:
    """Slopes to compare with `llmsched check stability -o fluid_slope=...` (docs/theory, §1, §5).

    Tokens: max(0, λ − μ)·m with m = E[p] + E[d] — the work arriving minus the work a saturated
    server completes (μ·m). Requests: max(0, λ − μ), valid for service in arrival mix.
    """
    if not capacity_rps > 0:
        raise ValueError("capacity must be > 0")
    excess = max(0.0, rate_rps - capacity_rps)
    return FluidSlopes(excess, excess * workload_stats.mean_work_tokens, rate_rps / capacity_rps)
