"""`llmsched sweep SWEEP.toml`: run a resumable grid of configs locally (joblib) or on Dask.

Exit 0 when every point is done, 1 when some points failed (they are retried on the next start),
2 on a malformed sweep file or bad flags. The machinery lives in `llmsched.experiments.sweep`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmsched.sim.errors import InputError

HELP = "run a grid of configs (resumable) with joblib, or on Dask with --dask ADDRESS / --dask-local N"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_file", help="TOML with [base] (a RunConfig), [grid] (dotted key = [values]) "
                   "and optional [sweep] (name, point, metrics)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS (tcp://host:8786)")
    g.add_argument("--dask-local", metavar="N", type=int, help="start a local Dask cluster of N worker processes")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="local worker processes (joblib; default: one per core; 1 = run in this process)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: results/sweeps/<sweep name>)")
    p.add_argument("--rerun", action="store_true", help="delete earlier point results in OUT, then recompute every point")
    p.add_argument("--allow-import", action="store_true",
                   help="let the sweep file's `point = \"module:function\"` name an unregistered function "
                   "(importing it runs that module's code)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the points, run nothing")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--plot", metavar="X:Y[:HUE]", action="append", default=[],
                   help="after the sweep, plot summary column Y against X (one line per HUE), e.g. "
                   "workload.rate:ttft_s.p50:cluster.instances.0.batching (repeatable; OUT/plots/)")
    p.add_argument("--logy", action="store_true", help="log-scale y axis for --plot")


def run(args: argparse.Namespace) -> int:
    from llmsched.experiments import sweep
    from llmsched.experiments.sweep_plot import parse_plot_arg, plot_summary

    plots = [parse_plot_arg(text) for text in args.plot]
    if (args.dask is not None or args.dask_local is not None) and args.jobs is not None:
        raise InputError("llmsched sweep", "--jobs", "has no effect with --dask/--dask-local", "drop --jobs")
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    spec = sweep.load_spec(args.sweep_file, allow_import=args.allow_import)
    sweep.check_plot_columns(spec, plots)
    out = Path(args.out) if args.out else Path("results") / "sweeps" / spec.name
    if args.dry_run:
        points = sweep.expand(spec)
        done = sweep.completed_points(out)
        for pt in points:
            state = "done" if pt.key in done else "todo"
            label = ", ".join(f"{k}={v!r}" for k, v in pt.params.items())
            print(f"{pt.index:>5} {pt.key} {state}  {label}")
        print(f"{len(points)} points, {sum(p.key in done for p in points)} done, output {out}")
        return 0
    outcome = sweep.run_sweep(spec, out, jobs=jobs, dask_address=args.dask,
                              dask_local=args.dask_local, progress=not args.quiet, rerun=args.rerun)
    print(f"{spec.name}: {outcome.total} points, {outcome.skipped} already done, {outcome.ran} run "
          f"({outcome.backend}), {len(outcome.failed)} failed; summary: {out / 'summary.parquet'}")
    for x, y, hue in plots:
        if len(outcome.summary):
            paths = plot_summary(outcome.summary, x, y, hue, out / "plots", logy=args.logy)
            print(f"plot: {paths[0]}")
    if outcome.failed:
        sys.stderr.write(f"{len(outcome.failed)} point(s) failed; errors in {out / 'failed'}; "
                         "run the same command again to retry them\n")
        return 1
    return 0
