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
from llmsched.theory.placement.realisable import EVAL_COST_MAX_FLOWS
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
# the layer-cut bound runs after the search (it cannot change the plan) for this share of the limit,
# on top of it: cluster10 is solved to optimality in about 45 s, cluster42 tightens for minutes
LAYER_CUT_SHARE = 0.1


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
    layer_cut_bound: float | None = None  # the layer-cut MILP's proven bound (`layer_cut.py`), method milp


def _say(log: list[str], msg: str, quiet: bool) -> None:
    log.append(msg)
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def place(cluster: PlacementCluster, model: ModelSpec, method: str, time_limit_s: float = 60.0,
          seed: int = 0, prune_keep: int | None = None, solver: str = "highs",
          quiet: bool = False, threads: int = 1, capacity_model: str = "helix",
          partial_inference: bool = False, budget: str = "work", length_cv: float = 0.0,
          kv_fraction: float = 1.0) -> PlaceResult:
    """Place `model` on `cluster` with `method`; with `partial_inference` (Helix's option) a node may
    start inside its predecessor's range and run only the layers after it (s_v <= e_u < e_v). The
    heuristics search strict chains (a special case); the MILP and every evaluation use the rule.
    capacity_model "realisable" scores every plan by its max flow under the bandwidth-delay x KV caps
    for requests with length CV `length_cv` admitted up to `kv_fraction` of each KV cache; the MILP
    then solves Helix's model, a relaxation of it (its T_i(k) are upper bounds of those caps)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    work = budget == "work"
    capped: list[str] = []  # phases a wall-clock safety cap cut short (work budgets only)
    p = make_problem(cluster, model, capacity_model=capacity_model, length_cv=length_cv, kv_fraction=kv_fraction)
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
    best_v, best_name, best = _seeds(p, ff, ub, log, quiet)
    optimal = lambda v: v >= cb * (1 - 1e-7)  # noqa: E731  (no plan can beat the coverage bound)
    share = (0.35 if method == "milp" else 0.95) * time_limit_s
    t_ls = share if work else max(0.0, share - (time.monotonic() - t0))
    best, best_v = _search(p, best, 0.0 if optimal(best_v) else t_ls, seed, work, ff, cb, capped, "local search",
                           log, quiet, progress=None if quiet else
                           (lambda t, v: _say(log, f"[local-search] t={t:5.0f}s best={v:.2f}", quiet)))
    t_heur = time.monotonic() - t0
    heur_v = solve_flow(p, best, partial=partial_inference).value
    _say(log, f"[heuristic] {heur_v:.2f} tokens/s after {t_heur:.1f}s (seed {best_name})", quiet)
    milp_info: dict = {}
    if method == "milp":
        pk = None if prune_keep is not None else DEFAULT_PRUNE.get(cluster.name)
        t_milp = max(1.0, 0.55 * time_limit_s)
        if optimal(heur_v):  # proven optimal already: a short MILP run only to report its numbers
            t_milp = max(1.0, min(t_milp, 0.1 * time_limit_s))
        best, milp_info = _milp_phase(p, best, heur_v, pk, t_milp, solver, threads, work, partial_inference,
                                      cb, capped, log, quiet)
        best_v = solve_flow(p, best, partial=partial_inference).value
        remaining = 0.10 * time_limit_s if work else time_limit_s - (time.monotonic() - t0)
        if remaining > 1.0 and not optimal(best_v) and not partial_inference:  # local search is strict-only
            best, best_v = _search(p, best, remaining, seed + 1, work, ff, cb, capped, "polish", log, quiet,
                                   temperature=1e-3)
    final = solve_flow(p, best, partial=partial_inference).value
    lcb = None
    if method == "milp" and not optimal(final):  # after the search: it cannot change the plan
        from llmsched.theory.placement.layer_cut import layer_cut_bound

        lc = layer_cut_bound(p.caps, model.num_layers, LAYER_CUT_SHARE * time_limit_s, upper=cb)
        lcb = min(cb, lc.bound_tok_s)
        _say(log, f"[layer-cut] bound {lc.bound_tok_s:.2f} tokens/s, best prefix-cut value {lc.best_tok_s:.2f} "
                  f"({lc.status}, {lc.seconds:.1f}s, {lc.rows} x {lc.cols})", quiet)
    proof = optimality(final, cb, milp_info, lcb)
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
                       budget=budget, deterministic=work and not capped, layer_cut_bound=lcb)


def _seeds(p, ff: FastFlow, ub: float, log: list[str], quiet: bool) -> tuple[float, str, Placement]:
    """The best starting plan: stage construction, type-class DP, and Swarm / Petals plans."""
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
    return cands[0]


def _search(p, start: Placement, seconds: float, seed: int, work: bool, ff: FastFlow, cb: float,
            capped: list[str], name: str, log: list[str], quiet: bool, **kw) -> tuple[Placement, float]:
    """Local search for `seconds` of the limit: as evaluations (work budget, wall clock a capped
    safety net) or as wall-clock time; notes in `capped` when the cap cut it short."""
    stats: dict = {}
    # a realisable evaluation costs EVAL_COST_MAX_FLOWS max flows: the same seconds buy fewer evaluations
    per_eval = 1 if p.realisable is None else EVAL_COST_MAX_FLOWS
    evals = round(LS_EVALS_PER_S * seconds / per_eval) if work else None
    best, best_v = local_search(p, start, SAFETY_CAP * seconds if work else seconds, seed=seed, max_evals=evals,
                                ff=ff, stop_at=cb * (1 - 1e-7), stats=stats, **kw)
    if stats.get("hit_time_cap"):
        capped.append(name)
    if work and seconds > 0:
        _say(log, f"[{name}] {stats.get('evals', 0)} evaluations (work budget {evals}, seed {seed})", quiet)
    return best, best_v


def _milp_phase(p, warm: Placement, heur_v: float, pk: int | None, t_milp: float, solver: str, threads: int,
                work: bool, partial_inference: bool, cb: float, capped: list[str], log: list[str],
                quiet: bool) -> tuple[Placement, dict]:
    """The Helix MILP warm-started from `warm` (on `pk` links per node if given, plus the warm
    start's links); returns the better of the two plans and the MILP's numbers."""
    from llmsched.theory.placement.milp import solve_milp

    pm = p
    if pk:  # K fastest links per node, plus every link the warm start uses (so it stays feasible)
        pm = make_problem(p.cluster, p.model, caps=p.caps, prune_keep=pk, capacity_model=p.capacity_model)
        pm.realisable = None  # the MILP solves Helix's T_i(k), a relaxation of the realisable model
        have = {(u, v) for u, v, _, _ in pm.edges}
        pm.edges.extend(e for e in p.edges if (e[0], e[1]) not in have and enabled(p, warm, e[0], e[1]))
    nodes = max(1, round(MILP_NODES_PER_S * t_milp)) if work and solver == "highs" else None
    res = solve_milp(pm, SAFETY_CAP * t_milp if nodes is not None else t_milp, warm_start=warm, solver=solver,
                     threads=threads, progress=not quiet, partial_inference=partial_inference, max_nodes=nodes)
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
    info = {"objective": res.objective, "solver_bound": res.bound, "solver_gap": res.gap,
            "solver_bound_scope": (f"pruned problem ({pk} fastest links per node)" if pk else "full problem"),
            "best_upper_bound": bound, "gap_to_best_upper_bound": gap, "coverage_bound": cb,
            "solve_time_s": res.solve_time_s, "status": res.status, "solver": res.solver,
            "rows": res.rows, "cols": res.cols, "prune_keep": pk, "warm_start_flow": heur_v,
            "node_limit": nodes, "nodes": res.nodes}
    log.extend(res.log)
    _say(log, f"[milp] {res.solver} status={res.status} objective={res.objective} bound={res.bound} "
              f"gap={res.gap} time={res.solve_time_s:.1f}s rows={res.rows} cols={res.cols}", quiet)
    best = warm
    if res.placement is not None:
        v_m = solve_flow(p, res.placement, partial=partial_inference).value
        if v_m > solve_flow(p, warm, partial=partial_inference).value + 1e-6:
            best = res.placement
    return best, info


def optimality(final: float, coverage_bound: float, milp: dict | None = None,
               layer_cut_bound: float | None = None) -> dict:
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
    if layer_cut_bound is not None and final >= layer_cut_bound * (1 - tol):
        return {"proven_optimal": True, "proof": "layer-cut bound",
                "optimality": f"proven optimal: the layer-cut bound {layer_cut_bound:.2f} tokens/s caps every "
                              "placement and this plan reaches it"}
    milp = milp or {}
    sb, scope = milp.get("solver_bound"), milp.get("solver_bound_scope", "")
    solver = milp.get("solver", "the MILP solver")
    status = milp.get("status")
    if sb is not None and scope == "full problem" and final >= sb * (1 - tol):
        return {"proven_optimal": True, "proof": f"{solver} bound",
                "optimality": f"proven optimal: {solver}'s bound {sb:.2f} tokens/s on the unpruned MILP "
                              f"(status {status}) and this plan reaches it"}
    best = min([coverage_bound] + ([sb] if sb is not None and scope == "full problem" else [])
               + ([layer_cut_bound] if layer_cut_bound is not None else []))
    where = "" if not milp else (f"; {solver} status {status}, its bound {sb:.2f} tokens/s on the {scope}"
                                 if sb is not None else f"; {solver} status {status}, no bound")
    return {"proven_optimal": False, "proof": None,
            "optimality": f"not proven optimal: gap {(best - final) / final:.2%} to the best upper bound "
                          f"{best:.2f} tokens/s{where}" if final > 0 else "not proven optimal"}

