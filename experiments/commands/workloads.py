"""`llmsched workloads`: list the bundled traces and generators (name, kind, description, and for
request traces their rows, span and mean rate as shipped). `--json` prints the same as JSON;
`--params NAME` shows the parameters a name accepts with their defaults.
"""

from __future__ import annotations

import argparse
import json
import math

from llmsched.sim.errors import InputError

HELP = "list bundled workload traces and generators (with rows, span and rate for traces)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--params", metavar="NAME", help="show the parameters of one workload and their defaults")


def _plain(v):
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def rows() -> list[dict]:
    """One dict per catalogue entry, with trace statistics where the entry is a request trace."""
    from llmsched.sim.workload import catalog

    out = []
    for e in catalog.entries():
        row = {"name": e.name, "kind": e.kind, "description": e.description, "source": e.source}
        row.update(catalog.describe(e.name))
        out.append(row)
    return out


def _fmt_stats(r: dict) -> tuple[str, str, str]:
    n = f"{r['rows']:,}" if "rows" in r else "-"
    span = "-"
    if "span_s" in r:
        s = r["span_s"]
        span = f"{s / 86400:.1f} d" if s >= 86400 else f"{s / 3600:.1f} h" if s >= 7200 else f"{s / 60:.1f} min"
    rate = f"{r['rate_rps']:.2f}/s" if "rate_rps" in r else "-"
    return n, span, rate


def run(args: argparse.Namespace) -> int:
    from llmsched.sim.workload import catalog

    if args.params:
        if args.params not in catalog.names():
            raise InputError("llmsched workloads", "--params", f"unknown workload {args.params!r}",
                             f"use one of: {', '.join(catalog.names())}")
        d = {k: _plain(v) for k, v in catalog.defaults(args.params).items()}
        if args.json:
            print(json.dumps(d, indent=2))
        else:
            for k, v in d.items():
                print(f"{k:<20} {v}")
        return 0
    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    header = ("name", "kind", "rows", "span", "rate", "description")
    cells = [(r["name"], r["kind"], *_fmt_stats(r), r["description"]) for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header[:-1])]
    line = "  ".join(h.ljust(w) if i != 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    print(line + "  " + header[-1])
    for c in cells:
        print("  ".join(x.rjust(w) if i in (2, 4) else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths)))
              + "  " + c[-1])
    print("\nUse one with: llmsched simulate --workload NAME (or a .csv/.jsonl path); "
          "parameters: llmsched workloads --params NAME; docs/workloads.md")
    return 0
