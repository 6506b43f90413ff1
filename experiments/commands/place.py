"""`llmsched place`: heterogeneous layer placement (Helix MILP, heuristics, baselines) + certificate.

Writes plan.json, flow.csv, cut.json, layout.ini, certificate.json and layout.png/pdf to --out,
prints the max flow, the bound and the certificate verdict. Exit 0 if the certificate holds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

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
                   help="search on Helix's pruned link set, K links per node (its AE uses 12 on 3cluster24 "
                        "and cluster42): heuristics, MILP and the reported max flow all use it (default: the "
                        "full link set, with the MILP alone pruned to Helix's AE setting)")
    p.add_argument("--seed", type=int, default=0, help="local-search seed (recorded in plan.json; default 0)")
    p.add_argument("--budget", default="work", choices=("work", "time"),
                   help="work (default): the time limit becomes load-independent work (local-search "
                        "evaluations, MILP nodes), so the same command gives the same plan on a busy machine; "
                        "time: wall-clock limits")
    p.add_argument("--out", default=None, help="output directory (default results/place/<cluster>-<method>)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--partial-inference", action="store_true",
                   help="allow a node to start inside its predecessor's layer range and run only the layers "
                        "after it (Helix's option: s_v <= e_u < e_v); used by the MILP and every evaluation")
    p.add_argument("--capacity-model", default="helix", choices=("helix", "pipelined", "realisable"),
                   help="T_i(k): Helix's typical batch (default; the MILP objective Helix reports); pipelined "
                        "(ours) adds the wait at each busy node to the round trip; realisable (ours) scales Helix's "
                        "max flow down to the load whose requests in flight (round trip with FIFO link queues) "
                        "fit every KV cache, for --length-cv and --kv-fraction (docs/placement.md)")
    p.add_argument("--simulate", type=float, default=0.0, metavar="SECONDS",
                   help="also simulate the plan for SECONDS (first half discarded) and compare with the "
                        "max flow; writes simulation.json (default 0 = off; 1200 is enough on single24)")
    p.add_argument("--length-cv", type=float, default=0.0,
                   help="--simulate: lognormal request lengths with this coefficient of variation around "
                        "Helix's means 750/240 (default 0: every request has the mean lengths)")
    p.add_argument("--batch-limit", default="typical", choices=("typical", "typical-split", "profile"),
                   help="--simulate: each node's iteration is one token budget the size of the batch "
                        "behind T_i(k), decodes first, prompt chunks in the rest (default: the operating "
                        "point the max flow assumes); typical-split: separate prompt and decode caps at "
                        "that batch (ablation); profile: greedy batching up to the profile's maximum "
                        "batch, whole prompts (Helix's simulator)")
    p.add_argument("--kv-fraction", type=float, default=1.0,
                   help="--simulate: admit a request while every node on its path stays within this share "
                        "of its KV cache (default 1.0, saturation, as Helix's simulator)")


def run(args: argparse.Namespace) -> int:
    """The workflow (solve, write, certify, simulate) is `llmsched.experiments.placement.place`
    (also `llmsched.place`)."""
    from llmsched.experiments.placement import place
    from llmsched.theory.placement.io import load_cluster

    cluster = load_cluster(args.cluster)
    cluster_ref = args.cluster if not Path(args.cluster).exists() else str(Path(args.cluster).resolve())
    out = Path(args.out or f"results/place/{cluster.name}-{args.method.replace('+', 'plus')}")
    outcome = place(cluster, args.model, args.method, out=out, time_limit_s=args.time_limit, seed=args.seed,
                    prune_keep=args.prune, solver=args.solver, capacity_model=args.capacity_model,
                    partial_inference=args.partial_inference, figure=not args.no_figure,
                    simulate_s=args.simulate, kv_fraction=args.kv_fraction, batch_limit=args.batch_limit,
                    length_cv=args.length_cv, quiet=args.quiet, cluster_ref=cluster_ref, budget=args.budget)
    print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                      for k, v in outcome.summary.items()}))  # strict JSON: no NaN
    if not outcome.certificate.ok:
        print(str(outcome.certificate))
    return 0 if outcome.certificate.ok else 1
