"""Figures of placement plans: the layer layout of a plan, shaded by flow over capacity.

Plotting lives in experiments (DESIGN.md layers); the plan itself is `llmsched.theory.placement.plan`.
"""

from __future__ import annotations

from pathlib import Path

from llmsched.experiments.style import figure, save
from llmsched.theory.placement.flow import FlowProblem, Placement


def layout_figure(p: FlowProblem, plc: Placement, node_flow: dict[int, float], out_dir: str | Path,
                  title: str = "") -> list[Path]:
    """Bars of each node's layer range, coloured by GPU type, shaded by flow / capacity."""
    fig, ax = figure("text", height_in=0.16 * p.n + 0.8)
    types = sorted({nd.gpu_type for nd in p.cluster.nodes})
    cmap = {g: f"C{j}" for j, g in enumerate(types)}
    order = sorted(range(p.n), key=lambda i: (plc.get(i, (p.L + 1, 0))[0], i))
    for row, i in enumerate(order):
        if i not in plc:
            continue
        s, k = plc[i]
        g = p.cluster.nodes[i].gpu_type
        util = node_flow.get(i, 0.0) / max(p.node_cap(i, k), 1e-9)
        ax.barh(row, k, left=s, color=cmap[g], alpha=0.3 + 0.7 * min(util, 1.0), edgecolor="k", linewidth=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(color=cmap[g], label=g) for g in types]
    ax.set_yticks(range(len(order)), [f"{i}" for i in order])
    ax.set_xlim(0, p.L)
    ax.set_xlabel("layer")
    ax.set_ylabel("node")
    ax.legend(handles=handles, ncol=1, loc="upper left", frameon=True, fontsize=6)
    if title:
        ax.set_title(title + " (shade = flow / capacity)")
    return save(fig, out_dir, "layout")
