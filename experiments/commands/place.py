"""`llmsched place`: heterogeneous layer placement (Helix MILP, heuristics, baselines) + certificate.

Writes plan.json, flow.csv, cut.json, layout.ini, certificate.json and layout.png/pdf to --out,
prints the max flow, the bound and the certificate verdict. Exit 0 if the certificate holds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from llmsched.sim.errors import InputError

HELP = "place model layers on a heterogeneous cluster (MILP/heuristic/baselines) with a max-flow certificate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", required=True,
                   help="single24 | 3cluster24 | cluster42 | cluster10 | PATH (.ini Helix format or .toml)")
    p.add_argument("--model", default="llama-2-70b", help="llama-2-70b | llama-1-30b")
    p.add_argument("--method", default="milp",
                   help="milp | heuristic | swarm | petals | sp | sp+ | homogeneous")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds for milp/heuristic (default 60)")
    p.add_argument("--solver", default="highs", help="highs (default) | cbc")
    p.add_argument("--prune", type=int, default=None,
                   help="keep each node's K fastest links in the MILP (default: Helix AE setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default results/place/<cluster>-<method>)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--partial-inference", action="store_true",
                   help="allow a node to start inside its predecessor's layer range and run only the layers "
                        "after it (Helix's option: s_v <= e_u < e_v); used by the MILP and every evaluation")
    p.add_argument("--capacity-model", default="helix", choices=("helix", "pipelined"),
                   help="T_i(k): Helix's typical batch (default; the MILP objective Helix reports) or ours, "
                        "which adds the wait at each busy node to the round trip (docs/placement.md)")
    p.add_argument("--simulate", type=float, default=0.0, metavar="SECONDS",
                   help="also simulate the plan for SECONDS (first half discarded) and compare with the "
                        "max flow; writes simulation.json (default 0 = off; 1200 is enough on single24)")
    p.add_argument("--length-cv", type=float, default=0.0,
                   help="--simulate: lognormal request lengths with this coefficient of variation around "
                        "Helix's means 750/240 (default 0: every request has the mean lengths)")
    p.add_argument("--batch-limit", default="typical", choices=("typical", "profile"),
                   help="--simulate: each node runs at most the batch behind T_i(k) per iteration, with "
                        "chunked prefill (default: the operating point the max flow assumes), or greedy "
                        "batching up to the profile's maximum batch, whole prompts")
    p.add_argument("--kv-fraction", type=float, default=1.0,
                   help="--simulate: admit a request while every node on its path stays within this share "
                        "of its KV cache (default 1.0, saturation, as Helix's simulator)")


def run(args: argparse.Namespace) -> int:
    from llmsched.experiments.placement_figures import layout_figure
    from llmsched.proofs_check.placement import check_placement
    from llmsched.theory.placement.flow import make_problem, solve_flow
    from llmsched.theory.placement.io import load_cluster
    from llmsched.theory.placement.plan import write_plan
    from llmsched.theory.placement.solve import METHODS, optimality, place
    from llmsched.theory.placement.spec import MODELS

    if args.model not in MODELS:
        raise InputError("--model", args.model, "unknown model", f"use one of {', '.join(MODELS)}")
    if args.method not in METHODS:
        raise InputError("--method", args.method, "unknown method", f"use one of {', '.join(METHODS)}")
    if not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise InputError("--time-limit", str(args.time_limit), "must be a finite number of seconds > 0")
    if args.seed < 0:
        raise InputError("--seed", str(args.seed), "must be >= 0")
    if args.prune is not None and args.prune < 1:
        raise InputError("--prune", str(args.prune), "must be >= 1 links per node", "omit it for the default")
    if not (math.isfinite(args.simulate) and args.simulate >= 0):
        raise InputError("--simulate", str(args.simulate), "must be a finite number of seconds >= 0")
    if not (math.isfinite(args.length_cv) and args.length_cv >= 0):
        raise InputError("--length-cv", str(args.length_cv), "must be a finite number >= 0")
    if not 0 < args.kv_fraction <= 1:
        raise InputError("--kv-fraction", str(args.kv_fraction), "must be in (0, 1]")
    if args.simulate > 0 and args.partial_inference:
        raise InputError("--simulate", str(args.simulate), "the plan simulator runs strict chains only",
                         "drop --partial-inference or --simulate")
    if args.solver not in ("highs", "cbc"):
        raise InputError("--solver", args.solver, "unknown solver", "use highs or cbc")
    cluster = load_cluster(args.cluster)
    model = MODELS[args.model]
    cluster_ref = args.cluster if not Path(args.cluster).exists() else str(Path(args.cluster).resolve())
    out = Path(args.out or f"results/place/{cluster.name}-{args.method.replace('+', 'plus')}")
    res = place(cluster, model, args.method, args.time_limit, seed=args.seed, prune_keep=args.prune,
                solver=args.solver, quiet=args.quiet, capacity_model=args.capacity_model,
                partial_inference=args.partial_inference)
    p = make_problem(cluster, model, capacity_model=args.capacity_model)
    numbers = {"upper_bound_tok_s": res.upper_bound, "coverage_bound_tok_s": res.coverage_bound,
               "heuristic_flow_tok_s": res.heuristic_flow,
               "milp": res.milp, "times_s": res.times_s, "time_limit_s": args.time_limit,
               "seed": args.seed, "log": res.log}
    write_plan(out, p, res.placement, args.method, cluster_ref, numbers, res.groups, args.partial_inference)
    if not args.no_figure:
        fl = solve_flow(p, res.placement, res.groups, args.partial_inference)
        layout_figure(p, res.placement, fl.node_flow, out,
                      f"{cluster.name} {model.name} {args.method}: {res.max_flow:.0f} tokens/s")
    verdict = check_placement(out)
    (out / "certificate.json").write_text(verdict.to_json())
    summary = {"cluster": cluster.name, "model": model.name, "method": args.method,
               "capacity_model": args.capacity_model,
               "max_flow_tok_s": round(res.max_flow, 3), "coverage_bound_tok_s": round(res.coverage_bound, 3),
               "upper_bound_tok_s": round(res.upper_bound, 3),
               "certificate": "PASS" if verdict.ok else "FAIL", "out": str(out)}
    proof = optimality(res.max_flow, res.coverage_bound, res.milp)
    summary["proven_optimal"] = proof["proven_optimal"]
    summary["optimality"] = proof["optimality"]  # which bound proves what
    if res.milp:
        summary["milp_objective_tok_s"] = res.milp.get("objective")
        summary["milp_status"] = res.milp.get("status")
        summary["milp_solver_bound_tok_s"] = res.milp.get("solver_bound")  # the solver's own dual bound
        summary["milp_solver_bound_scope"] = res.milp.get("solver_bound_scope")
        summary["best_upper_bound_tok_s"] = res.milp.get("best_upper_bound")
        summary["milp_solve_time_s"] = round(res.milp.get("solve_time_s", 0.0), 1)
    if args.simulate > 0:
        summary.update(_simulate(p, res, args, out))
    print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                      for k, v in summary.items()}))  # strict JSON: no NaN
    if not verdict.ok:
        print(str(verdict))
    return 0 if verdict.ok else 1


def _simulate(p, res, args: argparse.Namespace, out: Path) -> dict:
    """Run the plan simulator and write simulation.json atomically; return the summary fields."""
    from llmsched.experiments.atomic import write_json
    from llmsched.theory.placement.flow import make_problem, solve_flow
    from llmsched.theory.placement.profiles import CAPACITY_MODELS
    from llmsched.theory.placement.simulate import simulate_plan

    sim = simulate_plan(p, res.placement, duration_s=args.simulate, warmup_s=args.simulate / 2,
                        kv_fraction=args.kv_fraction, seed=args.seed, batch_limit=args.batch_limit,
                        length_cv=args.length_cv,
                        groups=res.groups, progress=not args.quiet)
    record = {"duration_s": args.simulate, "warmup_s": args.simulate / 2, "kv_fraction": args.kv_fraction,
              "length_cv": args.length_cv,
              "batch_limit": args.batch_limit, "seed": args.seed, "max_flow_tok_s": sim.max_flow_tok_s,
              "sim_total_tok_s": sim.total_tok_s, "sim_prompt_tok_s": sim.prompt_tok_s,
              "sim_decode_tok_s": sim.decode_tok_s, "ratio": sim.ratio, "capacity_model": p.capacity_model,
              "completed_requests": sim.completed_requests,
              "node_busy_frac": {str(i): b for i, b in sim.node_busy_frac.items()},
              "node_tok_s": {str(i): t for i, t in sim.node_tok_s.items()},
              "node_mean_decode_batch": {str(i): b for i, b in sim.node_decode_batch.items()}}
    for model_name in CAPACITY_MODELS:  # the plan's max flow under each capacity model, side by side
        other = make_problem(p.cluster, p.model, capacity_model=model_name)
        mf = solve_flow(other, res.placement, res.groups).value
        record[f"max_flow_{model_name}_tok_s"] = mf
        record[f"ratio_{model_name}"] = sim.total_tok_s / mf if mf else float("nan")
    write_json(out / "simulation.json", record)
    return {"sim_total_tok_s": round(sim.total_tok_s, 3), "sim_ratio_to_max_flow": round(sim.ratio, 4),
            **{f"sim_ratio_{m}": round(record[f"ratio_{m}"], 4) for m in CAPACITY_MODELS}}
