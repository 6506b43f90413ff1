"""`llmsched report RESULTS_DIR`: build docs/reproductions.md from a reproduction results directory.

The page is generated from the results only (`llmsched.experiments.report`); it is never edited by hand.
"""

from __future__ import annotations

import argparse

HELP = "build docs/reproductions.md from a results directory written by `llmsched reproduce`"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="the --out directory of `llmsched reproduce`")
    p.add_argument("--output", "-o", metavar="PATH", default="docs/reproductions.md",
                   help="Markdown file to write (default: docs/reproductions.md)")
    p.add_argument("--keep-previous", action="store_true",
                   help="keep the sections of reproductions that RESULTS_DIR does not hold, rebuilt from the "
                        "records the earlier report stored beside its figures (their commit stays the earlier run's)")


def run(args: argparse.Namespace) -> int:
    from llmsched.experiments.report import build_report

    path = build_report(args.results_dir, args.output, keep_previous=args.keep_previous)
    print(f"report: {path}")
    return 0
