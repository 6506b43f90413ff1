"""Small synthetic placement instances (for tests, docs and solver cross-checks).

`toy_problem(caps, num_layers)` builds a full-mesh cluster with the given per-node capacity
tables T_i(k) and a made-up model of `num_layers` layers; link bandwidths are given in tokens/s
of activations (bytes = tokens x activation bytes). `brute_force` enumerates every placement.
"""

from __future__ import annotations

import itertools

from llmsched.theory.placement.flow import FastFlow, FlowProblem, Placement
from llmsched.theory.placement.spec import SINK, SOURCE, GpuNode, Link, ModelSpec, PlacementCluster

TOY_ACTIVATION_BYTES = 1000.0


def toy_problem(caps: list[list[float]], num_layers: int, link_tok_s: float = 1e9,
                slow_links: dict[tuple[int, int], float] | None = None) -> FlowProblem:
    n = len(caps)
    model = ModelSpec("toy", num_layers, 1.0, TOY_ACTIVATION_BYTES, 1e9, "none")
    nodes = tuple(GpuNode(i, f"G{i}", 1e10, 1e15, 1e15) for i in range(n))
    links = [Link(SOURCE, i, 1e15, 0.0) for i in range(n)] + [Link(i, SINK, 1e15, 0.0) for i in range(n)]
    slow = slow_links or {}
    for i in range(n):
        for j in range(i + 1, n):
            tok = slow.get((i, j), slow.get((j, i), link_tok_s))
            links.append(Link(i, j, tok * TOY_ACTIVATION_BYTES, 1e-3))
    cluster = PlacementCluster("toy", nodes, tuple(links))
    return FlowProblem(cluster, model, [list(c) for c in caps], cluster.directed_edges(model))


def all_placements(p: FlowProblem):
    options = [[(s, k) for k in range(1, p.max_layers(i) + 1) for s in range(0, p.L - k + 1)]
               for i in range(p.n)]
    for combo in itertools.product(*options):
        yield dict(enumerate(combo))


def brute_force(p: FlowProblem, partial: bool = False) -> tuple[float, Placement]:
    from llmsched.theory.placement.flow import solve_flow

    ff = FastFlow(p, scale=1e6)
    best, best_v = None, -1.0
    for plc in all_placements(p):
        v = solve_flow(p, plc, partial=True).value if partial else ff.value(plc)
        if v > best_v:
            best, best_v = plc, v
    return best_v, best
