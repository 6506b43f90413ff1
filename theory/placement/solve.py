"""One entry point: place a model on a cluster with a method, returning the plan and its numbers.

Orchestrates heuristics, the MILP and baselines under one time limit; writes nothing to disk.
"""

# `place(...)` runs a baseline, or for method "milp": stage construction -> local search -> the
# Helix MILP warm-started from the best heuristic plan -> a final local-search polish, splitting the
# time limit 35% / 55% / 10%. By default every candidate is scored by the exact max flow on the
# *unpruned* cluster and link pruning only shrinks the MILP (it keeps each node's K fastest links
# plus the links the warm start uses, so the warm start stays feasible). With an explicit
# `prune_keep` the whole search runs on Helix's pruned link set (`flow.helix_prune_edges`, equal to
# the artifact's pruned_cluster.ini), so the result compares with Helix's objective in the same
# space. Progress lines go to stderr.

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from llmsched.theory.placement import baselines
from llmsched.theory.placement.flow import (
    FastFlow,
    Placement,
    enabled,
    helix_prune_edges,
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
# Budgets. "work" (default): the time limit is converted into work that does not depend on machine
# load, so the same command gives the same plan on an idle or a busy machine: local-search
# evaluations at LS_EVALS_PER_S and HiGHS branch-and-bound nodes at MILP_NODES_PER_S. Measured on the
# 2-core development machine (2026-12-03): 340-530 max-flow evaluations/s on single24, 3cluster24 and
# cluster42 with one job running, 174/s with four jobs on the two cores; HiGHS 3.7 nodes/s on
# single24 and 0.07 on pruned cluster42. The rates are set below the loaded rate, so a busy machine
# still finishes the work; wall-clock time is then only a safety cap at SAFETY_CAP x each share, and
# the plan records whether a cap cut a phase short (then, and only then, the result depends on
# load). On an idle machine a phase ends before its share. "time": the wall-clock limits of
# earlier versions.
BUDGETS = ("work", "time")
LS_EVALS_PER_S = 150.0
MILP_NODES_PER_S = 0.5
SAFETY_CAP = 3.0


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
    budget: str = "work"  # "work" (load-independent) or "time" (wall clock)
    deterministic: bool = False  # work budget and no wall-clock safety cap hit


def _say(log: list[str], msg: str, quiet: bool) -> None:
    log.append(msg)
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def place(cluster: PlacementCluster, model: ModelSpec, method: str, time_limit_s: float = 60.0,
          seed: int = 0, prune_keep: int | None = None, solver: str = "highs",
          quiet: bool = False, threads: int = 1, capacity_model: str = "helix",
          partial_inference: bool = False, budget: str = "work") -> PlaceResult:
    """Place `model` on `cluster` with `method`; with `partial_inference` (Helix's option) a node may
    start inside its predecessor's range and run only the layers after it (s_v <= e_u < e_v). The
    heuristics search strict chains (a special case); the MILP and every evaluation use the rule."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    work = budget == "work"
    capped: list[str] = []  # phases a wall-clock safety cap cut short (work budgets only)
    p = make_problem(cluster, model, capacity_model=capacity_model)
    if prune_keep is not None:  # Helix's setting: search (and score) only Helix's pruned link set
        p.edges = helix_prune_edges(p.edges, prune_keep)
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
                           log=log, budget=budget, deterministic=True)

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
    share = (0.35 if method == "milp" else 0.95) * time_limit_s
    t_ls = share if work else max(0.0, share - spent)
    if optimal(best_v):
        t_ls = 0.0
    ls_stats: dict = {}
    best, best_v = local_search(p, best, SAFETY_CAP * t_ls if work else t_ls, seed=seed,
                                max_evals=round(LS_EVALS_PER_S * t_ls) if work else None, ff=ff,
                                stop_at=cb * (1 - 1e-7), stats=ls_stats,
                                progress=None if quiet else
                                (lambda t, v: _say(log, f"[local-search] t={t:5.0f}s best={v:.2f}", quiet)))
    if ls_stats.get("hit_time_cap"):
        capped.append("local search")
    if work:
        _say(log, f"[local-search] {ls_stats.get('evals', 0)} evaluations (work budget "
                  f"{round(LS_EVALS_PER_S * t_ls)}, seed {seed})", quiet)
    t_heur = time.monotonic() - t0
    heur_v = solve_flow(p, best, partial=partial_inference).value
    _say(log, f"[heuristic] {heur_v:.2f} tokens/s after {t_heur:.1f}s (seed {best_name})", quiet)
    milp_info: dict = {}
    if method == "milp":
        from llmsched.theory.placement.milp import solve_milp

        # explicit prune_keep: p already is the pruned space; else shrink the MILP only (warm start kept)
        pk = None if prune_keep is not None else DEFAULT_PRUNE.get(cluster.name)
        warm = best
        pm = p
        if pk:  # K fastest links per node, plus every link the warm start uses (so it stays feasible)
            pm = make_problem(cluster, model, caps=p.caps, prune_keep=pk, capacity_model=p.capacity_model)
            have = {(u, v) for u, v, _, _ in pm.edges}
            pm.edges.extend(e for e in p.edges if (e[0], e[1]) not in have and enabled(p, warm, e[0], e[1]))
        t_milp = max(1.0, 0.55 * time_limit_s)
        if optimal(heur_v):  # proven optimal already: a short MILP run only to report its numbers
            t_milp = max(1.0, min(t_milp, 0.1 * time_limit_s))
        nodes = max(1, round(MILP_NODES_PER_S * t_milp)) if work and solver == "highs" else None
        t_cap = SAFETY_CAP * t_milp if nodes is not None else t_milp
        res = solve_milp(pm, t_cap, warm_start=warm, solver=solver, threads=threads, progress=not quiet,
                         partial_inference=partial_inference, max_nodes=nodes)
        if nodes is not None and str(res.status).lower().startswith("time limit"):
            capped.append("MILP")
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
                     "rows": res.rows, "cols": res.cols, "prune_keep": pk, "warm_start_flow": heur_v,
                     "node_limit": nodes, "nodes": res.nodes}
        log.extend(res.log)
        _say(log, f"[milp] {res.solver} status={res.status} objective={res.objective} bound={res.bound} "
                  f"gap={res.gap} time={res.solve_time_s:.1f}s rows={res.rows} cols={res.cols}", quiet)
        if res.placement is not None:
            v_m = solve_flow(p, res.placement, partial=partial_inference).value
            best_v = solve_flow(p, best, partial=partial_inference).value
            if v_m > best_v + 1e-6:
                best, best_v = res.placement, v_m
        remaining = 0.10 * time_limit_s if work else time_limit_s - (time.monotonic() - t0)
        if remaining > 1.0 and not optimal(best_v) and not partial_inference:  # local search is strict-only
            polish: dict = {}
            best, best_v = local_search(p, best, SAFETY_CAP * remaining if work else remaining, seed=seed + 1,
                                        max_evals=round(LS_EVALS_PER_S * remaining) if work else None, ff=ff,
                                        temperature=1e-3, stop_at=cb * (1 - 1e-7), stats=polish)
            if polish.get("hit_time_cap"):
                capped.append("polish")
    final = solve_flow(p, best, partial=partial_inference).value
    proof = optimality(final, cb, milp_info)
    if milp_info:
        milp_info.update(proof)
    _say(log, f"[{method}] final max flow {final:.2f} tokens/s in {time.monotonic() - t0:.1f}s; "
              f"{proof['optimality']} (infinite-network bound {ub:.2f})", quiet)
    if work:
        _say(log, f"[{method}] work budget, seed {seed}: " + (
            "deterministic (no wall-clock cap was hit)" if not capped else
            f"the wall-clock safety cap cut {', '.join(capped)} short: this plan depends on machine load"), quiet)
    return PlaceResult(method, best, final, ub, cb, heuristic_flow=heur_v, milp=milp_info,
                       times_s={"heuristic": t_heur, "total": time.monotonic() - t0}, log=log,
                       budget=budget, deterministic=work and not capped)


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

