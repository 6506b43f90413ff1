"""`llmsched policies`: list the registered batching and routing policies and the planners, with their one-line rule."""

from __future__ import annotations

import argparse
import json

HELP = "list registered batching and routing policies and planners"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from llmsched.policies.registry import BATCHING, PLANNING, ROUTING, describe

    table = {family: describe(family) for family in (BATCHING, ROUTING, PLANNING)}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for family, entries in table.items():
        print(f"{family}:")
        width = max((len(n) for n in entries), default=0)
        for name, doc in entries.items():
            print(f"  {name:<{width}}  {doc}")
    return 0
