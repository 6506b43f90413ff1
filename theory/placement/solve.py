"""One entry point: place a model on a cluster with a method, returning the plan and its numbers.

Orchestrates heuristics, the MILP and baselines under one time limit; writes nothing to disk.
"""

# `place(...)` runs a baseline, or for method "milp": stage construction -> local search -> the
# Helix MILP warm-started from the best heuristic plan -> a final local-search polish, splitting the
# time limit 35% / 55% / 10%. Every candidate is scored by the exact max flow on the *unpruned*
# cluster; link pruning only shrinks the MILP (it keeps each node's K fastest links plus the links
# the warm start uses, so the warm start stays feasible). Progress lines go to stderr.

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from llmsched.theory.placement import baselines
from llmsched.theory.placement.flow import (
    FastFlow,
    Placement,
    enabled,
    make_problem,
    solve_flow,
)
from llmsched.theory.placement.heuristic import (
    best_stage_plan,
    best_type_dp_plan,
    fill_unused,
    local_search,
)
from llmsched.theory.placement.profiles import coverage_bound, infinite_network_bound
from llmsched.theory.placement.spec import ModelSpec, PlacementCluster

METHODS = ("milp", "heuristic", "swarm", "petals", "sp", "sp+", "homogeneous")
# Helix AE pruning (top-12 links per node) for the geo-distributed and 42-node setups
# (`artifact_evaluation/*/layout_llama70b/ilp/*new.ini`: enable_pruning, min_keep = max_keep = 12);
# single24 was solved unpruned.
DEFAULT_PRUNE = {"3cluster24": 12, "cluster42": 12}


@dataclass
class PlaceResult:
    method: str
    placement: Placement
    max_flow: float
    upper_bound: float  # infinite-network bound (Helix's UB)
    coverage_bound: float = float("inf")  # our tighter network-free bound
    groups: dict[int, int] | None = None
    heuristic_flow: float | None = None
    milp: dict = field(default_factory=dict)
    times_s: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def _say(log: list[str], msg: str, quiet: bool) -> None:
    log.append(msg)
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def place(cluster: PlacementCluster, model: ModelSpec, method: str, time_limit_s: float = 60.0,
          seed: int = 0, prune_keep: int | None = None, solver: str = "highs",
          quiet: bool = False, threads: int = 1, capacity_model: str = "helix",
          partial_inference: bool = False) -> PlaceResult:
    """Place `model` on `cluster` with `method`; with `partial_inference` (Helix's option) a node may
    start inside its predecessor's range and run only the layers after it (s_v <= e_u < e_v). The
    heuristics search strict chains (a special case); the MILP and every evaluation use the rule."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    p = make_problem(cluster, model, capacity_model=capacity_model)
    ub = infinite_network_bound(p.caps, model.num_layers)
    cb = coverage_bound(p.caps, model.num_layers)
    log: list[str] = []
    t0 = time.monotonic()
    if method in baselines.BASELINES:
        fn = baselines.BASELINES[method]
        plc = fn(p, seed) if method == "petals" else fn(p)
        groups = baselines.group_map(p) if method in ("sp", "sp+") else None
        val = solve_flow(p, plc, groups, partial_inference).value
        _say(log, f"[{method}] max flow {val:.2f} tokens/s (bound {ub:.2f})", quiet)
        return PlaceResult(method, plc, val, ub, cb, groups=groups, times_s={"total": time.monotonic() - t0},
                           log=log)

    ff = FastFlow(p)
    cands: list[tuple[float, str, Placement]] = []
    plc, v = best_stage_plan(p, ff, ub)
    cands.append((v, "stage", plc))
    plc_dp, v_dp = best_type_dp_plan(p, ff, ub)
    if plc_dp is not None:
        cands.append((v_dp, "type-dp", plc_dp))
    for name in ("swarm", "petals"):
        b = fill_unused(p, baselines.BASELINES[name](p))
        cands.append((ff.value(b), name, b))
    cands.sort(key=lambda x: -x[0])
    _say(log, "[heuristic] seeds: " + ", ".join(f"{n}={v:.1f}" for v, n, _ in cands), quiet)
    best_v, best_name, best = cands[0]
    optimal = lambda v: v >= cb * (1 - 1e-7)  # noqa: E731  (no plan can beat the coverage bound)
    spent = time.monotonic() - t0
    t_ls = max(0.0, (0.35 if method == "milp" else 0.95) * time_limit_s - spent)
    if optimal(best_v):
        t_ls = 0.0
    best, best_v = local_search(p, best, t_ls, seed=seed, ff=ff, stop_at=cb * (1 - 1e-7),
                                progress=None if quiet else
                                (lambda t, v: _say(log, f"[local-search] t={t:5.0f}s best={v:.2f}", quiet)))
    t_heur = time.monotonic() - t0
    heur_v = solve_flow(p, best, partial=partial_inference).value
    _say(log, f"[heuristic] {heur_v:.2f} tokens/s after {t_heur:.1f}s (seed {best_name})", quiet)
    milp_info: dict = {}
    if method == "milp":
        from llmsched.theory.placement.milp import solve_milp

        pk = prune_keep if prune_keep is not None else DEFAULT_PRUNE.get(cluster.name)
        warm = best
        pm = p
        if pk:  # K fastest links per node, plus every link the warm start uses (so it stays feasible)
            pm = make_problem(cluster, model, caps=p.caps, prune_keep=pk, capacity_model=p.capacity_model)
            have = {(u, v) for u, v, _, _ in pm.edges}
            pm.edges.extend(e for e in p.edges if (e[0], e[1]) not in have and enabled(p, warm, e[0], e[1]))
        t_milp = max(1.0, 0.55 * time_limit_s)
        if optimal(heur_v):  # proven optimal already: a short MILP run only to report its numbers
            t_milp = max(1.0, min(t_milp, 0.1 * time_limit_s))
        res = solve_milp(pm, t_milp, warm_start=warm, solver=solver, threads=threads, progress=not quiet,
                         partial_inference=partial_inference)
        if res.objective is None and solver == "highs":
            _say(log, f"[milp] HiGHS returned no incumbent ({res.status}); retrying with CBC", quiet)
            res = solve_milp(pm, t_milp, warm_start=warm, solver="cbc", threads=threads, progress=not quiet,
                             partial_inference=partial_inference)
        # HiGHS's dual bound bounds only the problem it solved: with pruned links it is a bound on
        # pruned placements, not on every placement, so it proves nothing about the full problem.
        solver_bound_global = res.bound if (res.bound is not None and not pk) else None
        bound = min(x for x in (solver_bound_global, cb) if x is not None)
        gap = max(0.0, (bound - res.objective) / res.objective) if res.objective else None
        milp_info = {"objective": res.objective, "solver_bound": res.bound, "solver_gap": res.gap,
                     "solver_bound_scope": (f"pruned problem ({pk} fastest links per node)" if pk
                                            else "full problem"),
                     "best_upper_bound": bound, "gap_to_best_upper_bound": gap, "coverage_bound": cb,
                     "solve_time_s": res.solve_time_s, "status": res.status, "solver": res.solver,
                     "rows": res.rows, "cols": res.cols, "prune_keep": pk, "warm_start_flow": heur_v}
        log.extend(res.log)
        _say(log, f"[milp] {res.solver} status={res.status} objective={res.objective} bound={res.bound} "
                  f"gap={res.gap} time={res.solve_time_s:.1f}s rows={res.rows} cols={res.cols}", quiet)
        if res.placement is not None:
            v_m = solve_flow(p, res.placement, partial=partial_inference).value
            best_v = solve_flow(p, best, partial=partial_inference).value
            if v_m > best_v + 1e-6:
                best, best_v = res.placement, v_m
        remaining = time_limit_s - (time.monotonic() - t0)
        if remaining > 1.0 and not optimal(best_v) and not partial_inference:  # local search is strict-only
            best, best_v = local_search(p, best, remaining, seed=seed + 1, ff=ff, temperature=1e-3,
                                        stop_at=cb * (1 - 1e-7))
    final = solve_flow(p, best, partial=partial_inference).value
    proof = optimality(final, cb, milp_info)
    if milp_info:
        milp_info.update(proof)
    _say(log, f"[{method}] final max flow {final:.2f} tokens/s in {time.monotonic() - t0:.1f}s; "
              f"{proof['optimality']} (infinite-network bound {ub:.2f})", quiet)
    return PlaceResult(method, best, final, ub, cb, heuristic_flow=heur_v, milp=milp_info,
                       times_s={"heuristic": t_heur, "total": time.monotonic() - t0}, log=log)


def optimality(final: float, coverage_bound: float, milp: dict | None = None) -> dict:
    """Say which bound proves what about a plan's max flow `final` (tokens/s).

    Proven optimal only by an upper bound valid for every placement: the coverage bound (network-
    free) or the MILP solver's own dual bound when it solved the unpruned problem. A solver that hit
    its time limit still reports its status and bound separately; its status never proves anything
    on its own. Returns {"proven_optimal", "proof", "optimality"} (the last a one-line statement).
    """
    tol = 1e-7
    if final >= coverage_bound * (1 - tol):
        return {"proven_optimal": True, "proof": "coverage bound",
                "optimality": f"proven optimal: the coverage bound {coverage_bound:.2f} tokens/s caps every "
                              "placement and this plan reaches it"}
    milp = milp or {}
    sb, scope = milp.get("solver_bound"), milp.get("solver_bound_scope", "")
    solver = milp.get("solver", "the MILP solver")
    status = milp.get("status")
    if sb is not None and scope == "full problem" and final >= sb * (1 - tol):
        return {"proven_optimal": True, "proof": f"{solver} bound",
                "optimality": f"proven optimal: {solver}'s bound {sb:.2f} tokens/s on the unpruned MILP "
                              f"(status {status}) and this plan reaches it"}
    best = min([coverage_bound] + ([sb] if sb is not None and scope == "full problem" else []))
    where = "" if not milp else (f"; {solver} status {status}, its bound {sb:.2f} tokens/s on the {scope}"
                                 if sb is not None else f"; {solver} status {status}, no bound")
    return {"proven_optimal": False, "proof": None,
            "optimality": f"not proven optimal: gap {(best - final) / final:.2%} to the best upper bound "
                          f"{best:.2f} tokens/s{where}" if final > 0 else "not proven optimal"}

