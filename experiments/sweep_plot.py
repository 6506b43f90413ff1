"""Plots drawn from a sweep's summary table (never from live runs): metric y against column x,
one line per value of an optional hue column, averaged over every other varying column (e.g. seeds)
with a min-max band. Figures go through `llmsched.experiments.style`; this module computes nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmsched.experiments import style
from llmsched.sim.errors import InputError


def resolve_column(df: pd.DataFrame, name: str, what: str) -> str:
    """`name` itself, or `config.<name>` (so `workload.rate` finds `config.workload.rate`)."""
    for cand in (name, f"config.{name}"):
        if cand in df.columns:
            return cand
    near = [c for c in df.columns if name.split(".")[-1] in c][:6]
    raise InputError("--plot", what, f"no column {name!r} in the summary table",
                     f"try one of: {', '.join(near) if near else ', '.join(list(df.columns)[:8])}")


def parse_plot_arg(text: str) -> tuple[str, str, str | None]:
    """'X:Y' or 'X:Y:HUE' -> (x, y, hue)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError("--plot", text, "expected X:Y or X:Y:HUE",
                         "e.g. --plot workload.rate:ttft_s.p50:cluster.instances.0.batching")
    return parts[0], parts[1], (parts[2] if len(parts) == 3 else None)


@style.styled
def plot_summary(summary: pd.DataFrame, x: str, y: str, hue: str | None, out_dir: str | Path,
                 logy: bool = False) -> list[Path]:
    """Draw y vs x (mean over repeated rows, min-max band) per hue value; write PNG + PDF."""
    xc, yc = resolve_column(summary, x, "X"), resolve_column(summary, y, "Y")
    hc = resolve_column(summary, hue, "HUE") if hue else None
    fig, ax = style.figure()
    groups = summary.groupby(hc, sort=True) if hc else [(None, summary)]
    for key, g in groups:
        stats = g.groupby(xc)[yc].agg(["mean", "min", "max"]).sort_index()
        label = None if hc is None else str(key[0] if isinstance(key, tuple) else key)
        (line,) = ax.plot(stats.index, stats["mean"], marker="o", label=label)
        if (stats["min"] != stats["max"]).any():
            ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hc:
        ax.legend(title=hue.split(".")[-1])
    stem = f"{y}_vs_{x}" + (f"_by_{hue}" if hue else "")
    return style.save(fig, Path(out_dir), stem.replace("/", "_"))
