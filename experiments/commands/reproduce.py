"""`llmsched reproduce`: regenerate paper figures/tables (registered reproductions), then the report.

Exit 0 when every selected reproduction succeeded, 1 when any failed (the others still ran and the
report still lists them), 2 on bad input. Work is done by `llmsched.experiments.reproduce`/`llmsched.experiments.report`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "regenerate paper figures/tables (--list, NAME..., --all), then build OUT/reproductions.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="reproductions to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered reproductions")
    p.add_argument("--all", action="store_true", help="run every registered reproduction")
    p.add_argument("--quick", action="store_true", help="quick mode (minutes on a 2-core machine)")
    p.add_argument("--out", metavar="DIR", default="results", help="results directory (default: results)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--report", metavar="PATH", default=None,
                   help="where to write the report (default: OUT/reproductions.md; the tracked "
                        "docs/reproductions.md is written only when named here)")
    p.add_argument("--no-report", action="store_true", help="do not rebuild the report")
    p.add_argument("--resume", action="store_true",
                   help="keep sweep points already in OUT/NAME (default: start each reproduction afresh)")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="run this many reproductions at once, each in its own process (default 1)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _report_path(explicit: str | None, out: Path) -> Path:
    return Path(explicit) if explicit else out / "reproductions.md"


def run(args: argparse.Namespace) -> int:
    from llmsched.experiments.registry import all_reproductions, import_errors
    from llmsched.experiments.report import build_report
    from llmsched.experiments.reproduce import run_reproductions, select

    broken = import_errors()
    for module, tb in broken.items():
        sys.stderr.write(f"warning: reproduction module {module} failed to import: "
                         f"{tb.strip().splitlines()[-1]}\n")
    if args.list:
        for r in all_reproductions().values():
            print(f"{r.name:<28} {r.paper} — {r.target} (quick ≈ {r.quick_minutes:g} min)")
        return 0
    repros = select(args.names, args.all)
    # The command that regenerates these results, rebuilt from the parsed flags (not sys.argv, which
    # is the host's when called in-process).
    words = ["llmsched", "reproduce", *(["--all"] if args.all else args.names)]
    words += (["--quick"] if args.quick else []) + ["--seed", str(args.seed), "--out", args.out]
    command = " ".join(shlex.quote(w) for w in words)
    records = run_reproductions(repros, args.out, quick=args.quick, seed=args.seed, command=command,
                                progress=not args.quiet, resume=args.resume, jobs=args.jobs)
    failed = [r for r in records if r.status != "ok"]
    for r in records:
        print(f"{r.name:<28} {r.status:<7} {r.wall_s:8.1f} s  {r.out_dir}")
    if not args.no_report:
        path = build_report(args.out, _report_path(args.report, Path(args.out)))
        print(f"report: {path}")
    if failed:
        sys.stderr.write(f"{len(failed)} of {len(records)} reproduction(s) failed: "
                         f"{', '.join(r.name for r in failed)}\n")
    if args.all and broken:
        sys.stderr.write(f"{len(broken)} reproduction module(s) could not be imported, so --all is incomplete\n")
    return 1 if failed or (args.all and broken) else 0
