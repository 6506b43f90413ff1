"""The placement workflow of `llmsched place` and `llmsched.place`: solve (Helix's MILP, a heuristic
or a baseline), write the plan files, certify the plan with the `placement` checker, optionally
simulate it against its max flow. The command line and the library call this one function.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.errors import InputError

__all__ = ["PlacementOutcome", "place"]


@dataclass
class PlacementOutcome:
    """What `place` produced: the solver's result, the certificate, the files and the numbers."""

    result: Any  # llmsched.theory.placement.solve.PlaceResult
    certificate: Verdict
    out_dir: Path
    summary: dict[str, Any]
    simulation: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def max_flow_tok_s(self) -> float:
        return float(self.result.max_flow)


def place(cluster: Any, model: str = "llama-2-70b", method: str = "milp", *, out: str | Path | None = None,
          time_limit_s: float = 60.0, seed: int = 0, prune_keep: int | None = None, solver: str = "highs",
          capacity_model: str = "helix", partial_inference: bool = False, figure: bool = True,
          simulate_s: float = 0.0, kv_fraction: float = 1.0, batch_limit: str = "typical",
          length_cv: float = 0.0, quiet: bool = True, cluster_ref: str | None = None,
          budget: str = "work") -> PlacementOutcome:
    """Place `model`'s layers on a heterogeneous `cluster` and certify the plan.

    cluster: a bundled cluster name (`single24`, ...), a cluster file (Helix .ini or TOML), or a
        `PlacementCluster`. method: `milp` (Helix's MILP) or a heuristic/baseline (`llmsched place -h`).
    Writes plan.json, flow.csv, cut.json, layout.ini, certificate.json (and layout.png/pdf with
    `figure`) under `out` (default: a temporary directory kept for the caller), checks the plan with
    the `placement` checker (max flow = min cut, layer coverage, conservation), and with
    `simulate_s` > 0 simulates it for that many seconds (first half discarded) against its max flow,
    writing simulation.json. `budget`: "work" (default) turns the time limit into load-independent
    work (local-search evaluations, MILP nodes) so the same call gives the same plan on a busy
    machine; "time" uses wall-clock limits. This is the library form of `llmsched place`.
    """
    from llmsched.experiments.placement_figures import layout_figure
    from llmsched.proofs_check.placement import check_placement
    from llmsched.theory.placement.flow import make_problem, solve_flow
    from llmsched.theory.placement.io import load_cluster
    from llmsched.theory.placement.plan import write_plan
    from llmsched.theory.placement.solve import place as solve
    from llmsched.theory.placement.spec import MODELS, PlacementCluster

    _check_args(model, method, time_limit_s, seed, prune_keep, simulate_s, length_cv, kv_fraction,
                partial_inference, budget, solver)
    if isinstance(cluster, PlacementCluster):
        pc = cluster
        ref = cluster_ref or pc.name
    else:
        pc = load_cluster(str(cluster))
        ref = cluster_ref or (str(cluster) if not Path(str(cluster)).exists() else str(Path(cluster).resolve()))
    spec = MODELS[model]
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"llmsched-place-{pc.name}-"))
    res = solve(pc, spec, method, time_limit_s, seed=seed, prune_keep=prune_keep, solver=solver, quiet=quiet,
                capacity_model=capacity_model, partial_inference=partial_inference, budget=budget,
                length_cv=length_cv, kv_fraction=kv_fraction)
    p = make_problem(pc, spec, capacity_model=capacity_model, length_cv=length_cv, kv_fraction=kv_fraction)
    full_flow = None
    if prune_keep is not None:  # the plan lives on Helix's pruned link set; its full-graph flow beside it
        from llmsched.theory.placement.flow import helix_prune_edges

        full_flow = solve_flow(p, res.placement, res.groups, partial_inference).value
        p.edges = helix_prune_edges(p.edges, prune_keep)
    numbers = {"upper_bound_tok_s": res.upper_bound, "coverage_bound_tok_s": res.coverage_bound,
               "layer_cut_bound_tok_s": res.layer_cut_bound,
               "heuristic_flow_tok_s": res.heuristic_flow, "milp": res.milp, "times_s": res.times_s,
               "time_limit_s": time_limit_s, "seed": seed, "length_cv": length_cv, "kv_fraction": kv_fraction, "budget": budget, "prune_keep": prune_keep,
               "max_flow_full_links_tok_s": full_flow,
               "deterministic": res.deterministic, "log": res.log}
    write_plan(out_dir, p, res.placement, method, ref, numbers, res.groups, partial_inference)
    files: list[Path] = []
    if figure:
        fl = solve_flow(p, res.placement, res.groups, partial_inference)
        files += layout_figure(p, res.placement, fl.node_flow, out_dir,
                               f"{pc.name} {spec.name} {method}: {res.max_flow:.0f} tokens/s")
    verdict = check_placement(out_dir)
    (out_dir / "certificate.json").write_text(verdict.to_json())
    summary: dict[str, Any] = {
        "cluster": pc.name, "model": spec.name, "method": method, "capacity_model": capacity_model,
        "max_flow_tok_s": round(res.max_flow, 3), "coverage_bound_tok_s": round(res.coverage_bound, 3),
        "upper_bound_tok_s": round(res.upper_bound, 3),
        "certificate": "PASS" if verdict.ok else "FAIL", "out": str(out_dir),
        "seed": seed, "budget": budget, "deterministic": res.deterministic,
        "placement_sha256": _placement_digest(res.placement)}
    if prune_keep is not None:
        summary["links"] = f"Helix-pruned, {prune_keep} per node (max flow on that link set)"
        summary["max_flow_full_links_tok_s"] = round(full_flow, 3) if full_flow is not None else None
    from llmsched.theory.placement.solve import optimality

    proof = optimality(res.max_flow, res.coverage_bound, res.milp, res.layer_cut_bound)
    if res.layer_cut_bound is not None:
        summary["layer_cut_bound_tok_s"] = round(res.layer_cut_bound, 3)
    summary["proven_optimal"] = proof["proven_optimal"]
    summary["optimality"] = proof["optimality"]  # which bound proves what
    if res.milp:
        summary["milp_objective_tok_s"] = res.milp.get("objective")
        summary["milp_status"] = res.milp.get("status")
        summary["milp_solver_bound_tok_s"] = res.milp.get("solver_bound")  # the solver's own dual bound
        summary["milp_solver_bound_scope"] = res.milp.get("solver_bound_scope")
        summary["best_upper_bound_tok_s"] = res.milp.get("best_upper_bound")
        summary["milp_solve_time_s"] = round(res.milp.get("solve_time_s", 0.0), 1)
    simulation = None
    if simulate_s > 0:
        simulation = _simulate_plan(p, res, out_dir, simulate_s, kv_fraction, seed, batch_limit, length_cv,
                                    quiet)
        summary.update({"sim_total_tok_s": round(simulation["sim_total_tok_s"], 3),
                        "sim_ratio_to_max_flow": round(simulation["ratio"], 4),
                        **{k.replace("ratio_", "sim_ratio_"): round(v, 4) for k, v in simulation.items()
                           if k.startswith("ratio_")}})
    files += sorted(f for f in out_dir.iterdir() if f.is_file() and f not in files)
    return PlacementOutcome(res, verdict, out_dir, summary, simulation, files)


def _check_args(model: str, method: str, time_limit_s: float, seed: int, prune_keep: int | None,
                simulate_s: float, length_cv: float, kv_fraction: float, partial_inference: bool,
                budget: str, solver: str) -> None:
    """One clear InputError (flag, value, fix) for the first bad argument of `place`."""
    from llmsched.theory.placement.solve import BUDGETS, METHODS
    from llmsched.theory.placement.spec import MODELS

    if model not in MODELS:
        raise InputError("--model", model, "unknown model", f"use one of {', '.join(MODELS)}")
    if method not in METHODS:
        raise InputError("--method", method, "unknown method", f"use one of {', '.join(METHODS)}")
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise InputError("--time-limit", str(time_limit_s), "must be a finite number of seconds > 0")
    if seed < 0:
        raise InputError("--seed", str(seed), "must be >= 0")
    if prune_keep is not None and prune_keep < 1:
        raise InputError("--prune", str(prune_keep), "must be >= 1 links per node", "omit it for the default")
    if not (math.isfinite(simulate_s) and simulate_s >= 0):
        raise InputError("--simulate", str(simulate_s), "must be a finite number of seconds >= 0")
    if not (math.isfinite(length_cv) and length_cv >= 0):
        raise InputError("--length-cv", str(length_cv), "must be a finite number >= 0")
    if not 0 < kv_fraction <= 1:
        raise InputError("--kv-fraction", str(kv_fraction), "must be in (0, 1]")
    if simulate_s > 0 and partial_inference:
        raise InputError("--simulate", str(simulate_s), "the plan simulator runs strict chains only",
                         "drop --partial-inference or --simulate")
    if budget not in BUDGETS:
        raise InputError("--budget", budget, "unknown budget", f"use one of {', '.join(BUDGETS)}")
    if solver not in ("highs", "cbc"):
        raise InputError("--solver", solver, "unknown solver", "use highs or cbc")


def _placement_digest(plc: dict) -> str:
    """A short fingerprint of a placement, to compare two runs' plans at a glance."""
    import hashlib

    text = ";".join(f"{i}:{s}+{k}" for i, (s, k) in sorted(plc.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _simulate_plan(p: Any, res: Any, out: Path, duration_s: float, kv_fraction: float, seed: int,
                   batch_limit: str, length_cv: float, quiet: bool) -> dict[str, Any]:
    """Run the plan simulator and write simulation.json atomically; return its record."""
    from llmsched.sim.atomic import write_json
    from llmsched.theory.placement.flow import make_problem, solve_flow
    from llmsched.theory.placement.profiles import CAPACITY_MODELS
    from llmsched.theory.placement.simulate import simulate_plan

    sim = simulate_plan(p, res.placement, duration_s=duration_s, warmup_s=duration_s / 2,
                        kv_fraction=kv_fraction, seed=seed, batch_limit=batch_limit, length_cv=length_cv,
                        groups=res.groups, progress=not quiet)
    record = {"duration_s": duration_s, "warmup_s": duration_s / 2, "kv_fraction": kv_fraction,
              "length_cv": length_cv, "batch_limit": batch_limit, "seed": seed,
              "max_flow_tok_s": sim.max_flow_tok_s, "sim_total_tok_s": sim.total_tok_s,
              "sim_prompt_tok_s": sim.prompt_tok_s, "sim_decode_tok_s": sim.decode_tok_s, "ratio": sim.ratio,
              "capacity_model": p.capacity_model, "completed_requests": sim.completed_requests,
              "node_busy_frac": {str(i): b for i, b in sim.node_busy_frac.items()},
              "node_tok_s": {str(i): t for i, t in sim.node_tok_s.items()},
              "node_mean_decode_batch": {str(i): b for i, b in sim.node_decode_batch.items()}}
    for model_name in CAPACITY_MODELS:  # the plan's max flow under each capacity model, side by side
        other = make_problem(p.cluster, p.model, capacity_model=model_name, length_cv=length_cv,
                             kv_fraction=kv_fraction)
        mf = solve_flow(other, res.placement, res.groups).value
        record[f"max_flow_{model_name}_tok_s"] = mf
        record[f"ratio_{model_name}"] = sim.total_tok_s / mf if mf else float("nan")
    write_json(out / "simulation.json", record)
    return record
