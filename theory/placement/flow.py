"""Max flow of a placement: the runtime flow graph, its max flow, a min cut, and a fast evaluator.

Owns graph construction and link pruning; knows nothing about how placements are searched.
A placement is `{node: (start_layer, num_layers)}` (absent = unused).
"""

#
# A placement is `{node: (start_layer, num_layers)}` (absent = unused). Graph (Helix
# `simulator/scheduler/global_maxflow/network_flow.py`, re-derived): every used node i is split
# in_i -> start_i -> end_i -> out_i with capacities NIC_in/activation, T_i(k), NIC_out/activation;
# edge out_i -> in_j exists iff i's last layer + 1 == j's first layer (source -> in_i iff i starts at
# layer 0, out_i -> sink iff i ends at layer L), capacity = link bandwidth / bytes per token.
# Flow value == the Helix MILP objective for the same placement (T_i(k) already includes the NIC cap).

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from llmsched.theory.placement.spec import SINK, SOURCE, ModelSpec, PlacementCluster

if TYPE_CHECKING:
    from llmsched.theory.placement.realisable import RealisableSpec

Placement = dict[int, tuple[int, int]]


@dataclass
class FlowProblem:
    """Everything fixed while the placement varies: capacities and the directed link list."""

    cluster: PlacementCluster
    model: ModelSpec
    caps: list[list[float]]  # T_i(k), index k-1
    edges: list[tuple[int | str, int | str, float, float]]  # (u, v, tokens/s, latency s)
    capacity_model: str = "helix"  # how caps were derived (`profiles.CAPACITY_MODELS`); recorded in plans
    # the realisable model (capacity_model "realisable"): caps stay Helix's T_i(k), and every max flow
    # also applies the placement's bandwidth-delay x KV caps (`realisable.py`)
    realisable: RealisableSpec | None = None

    @property
    def L(self) -> int:
        return self.model.num_layers

    @property
    def n(self) -> int:
        return self.cluster.n

    def max_layers(self, i: int) -> int:
        return len(self.caps[i])

    def node_cap(self, i: int, k: int) -> float:
        return self.caps[i][k - 1]


def make_problem(cluster: PlacementCluster, model: ModelSpec, caps: list[list[float]] | None = None,
                 prune_keep: int | None = None, capacity_model: str = "helix", length_cv: float = 0.0,
                 kv_fraction: float = 1.0) -> FlowProblem:
    """capacity_model: how T_i(k) is derived when `caps` is not given (`profiles.CAPACITY_MODELS`);
    "realisable" adds the bandwidth-delay x KV caps for requests of lengths with CV `length_cv`
    admitted up to `kv_fraction` of each KV cache."""
    from llmsched.theory.placement.profiles import node_capacities

    caps = caps if caps is not None else node_capacities(cluster, model, capacity_model)
    edges = cluster.directed_edges(model)
    if prune_keep:
        edges = prune_edges(edges, prune_keep)
    spec = None
    if capacity_model == "realisable":
        from llmsched.theory.placement.realisable import realisable_spec

        spec = realisable_spec(length_cv, kv_fraction)
    return FlowProblem(cluster, model, caps, edges, capacity_model, spec)


def prune_edges(edges, keep: int):
    """Helix-style link pruning (`fake_cluster_generator.py::prune_cluster`, min_keep = max_keep
    = keep): an undirected compute link survives if it is among the `keep` fastest links of either
    endpoint; coordinator links are all kept (they carry token ids, never a bottleneck in the
    Helix configs). Ties break by the other endpoint's index, so the result is deterministic."""
    pair_bw: dict[tuple[int, int], float] = {}
    for u, v, c, _ in edges:
        if isinstance(u, int) and isinstance(v, int):
            pair_bw[(min(u, v), max(u, v))] = c
    by_node: dict[int, list[tuple[float, int, tuple[int, int]]]] = {}
    for (a, b), c in pair_bw.items():
        by_node.setdefault(a, []).append((-c, b, (a, b)))
        by_node.setdefault(b, []).append((-c, a, (a, b)))
    kept = set()
    for lst in by_node.values():
        lst.sort()
        kept.update(p for _, _, p in lst[:keep])
    return [e for e in edges if not (isinstance(e[0], int) and isinstance(e[1], int))
            or (min(e[0], e[1]), max(e[0], e[1])) in kept]


def helix_prune_edges(edges, keep: int):
    """Helix's own pruning (`fake_cluster_generator.py::prune_cluster` with min_keep = max_keep =
    `keep`, as in the AE): the source keeps its `keep` fastest links, the sink its `keep` fastest,
    and an undirected compute link survives if it is among the `keep` fastest of either endpoint.
    Ties go as Helix's descending sorts put them: coordinator links to the higher node index first,
    compute links by the link name "Link-a-b" (a < b) in descending string order. On 3cluster24 and
    cluster42 this gives exactly the link sets of the artifact's `pruned_cluster.ini` files."""
    src = sorted(((c, v) for u, v, c, _ in edges if u == SOURCE), reverse=True)[:keep]
    snk = sorted(((c, u) for u, v, c, _ in edges if v == SINK), reverse=True)[:keep]
    keep_src, keep_snk = {v for _, v in src}, {u for _, u in snk}
    pair_bw: dict[tuple[int, int], float] = {}
    for u, v, c, _ in edges:
        if isinstance(u, int) and isinstance(v, int):
            pair_bw[(min(u, v), max(u, v))] = c
    by_node: dict[int, list[tuple[float, str, tuple[int, int]]]] = {}
    for (a, b), c in pair_bw.items():
        for x in (a, b):
            by_node.setdefault(x, []).append((c, f"Link-{a}-{b}", (a, b)))
    kept = set()
    for lst in by_node.values():
        lst.sort(reverse=True)
        kept.update(pr for _, _, pr in lst[:keep])
    out = []
    for e in edges:
        u, v = e[0], e[1]
        if u == SOURCE:
            ok = v in keep_src
        elif v == SINK:
            ok = u in keep_snk
        else:
            ok = (min(u, v), max(u, v)) in kept
        if ok:
            out.append(e)
    return out


def enabled(p: FlowProblem, plc: Placement, u, v, groups: dict[int, int] | None = None,
            partial: bool = False) -> bool:
    """Whether directed edge u -> v can carry flow under placement `plc` (layer chaining); with
    `groups` (separate-pipeline baselines) only between nodes of the same group; with `partial`
    (Helix's partial inference) v may start at or before u's end and run the rest of its range:
    s_v <= e_u < e_v."""
    if u == SOURCE:
        return v in plc and plc[v][0] == 0
    if v == SINK:
        return u in plc and plc[u][0] + plc[u][1] == p.L
    if u not in plc or v not in plc:
        return False
    if groups is not None and groups.get(u) != groups.get(v):
        return False
    e_u = plc[u][0] + plc[u][1]
    if partial:
        return plc[v][0] <= e_u < plc[v][0] + plc[v][1]
    return e_u == plc[v][0]


def flow_graph(p: FlowProblem, plc: Placement, groups: dict[int, int] | None = None,
               partial: bool = False, node_caps: dict[int, float] | None = None) -> nx.DiGraph:
    """The runtime flow graph (node split in/start/end/out) as a networkx DiGraph; `node_caps`
    overrides T_i(k) (the realisable model's caps, `placement_node_caps`)."""
    g = nx.DiGraph()
    g.add_node(SOURCE)
    g.add_node(SINK)
    for i, (_s, k) in plc.items():
        nd = p.cluster.nodes[i]
        g.add_edge(("in", i), ("start", i), capacity=nd.nic_in_Bps / p.model.activation_bytes)
        cap = p.node_cap(i, k) if node_caps is None else node_caps[i]
        g.add_edge(("start", i), ("end", i), capacity=cap)
        g.add_edge(("end", i), ("out", i), capacity=nd.nic_out_Bps / p.model.activation_bytes)
    for u, v, c, _ in p.edges:
        if enabled(p, plc, u, v, groups, partial):
            a = SOURCE if u == SOURCE else ("out", u)
            b = SINK if v == SINK else ("in", v)
            g.add_edge(a, b, capacity=c)
    return g


@dataclass
class FlowResult:
    value: float
    edge_flow: dict[tuple, float]  # link flows (u, v) in node-index terms -> tokens/s
    node_flow: dict[int, float]
    cut_value: float
    cut_edges: list[tuple]  # graph edges from the source side to the sink side
    node_cap: dict[int, float] | None = None  # the node caps used (T_i(k), or the realisable caps)


def placement_node_caps(p: FlowProblem, plc: Placement, groups: dict[int, int] | None = None,
                        partial: bool = False) -> dict[int, float]:
    """Each placed node's capacity under p's model: T_i(k), or with the realisable model
    Helix's max-flow split scaled to the largest load its KV caps hold (`realisable.realisable_split`)."""
    if p.realisable is None or not plc:
        return {i: p.node_cap(i, k) for i, (_s, k) in plc.items()}
    return _realisable(p, plc, groups, partial)[0]


def _realisable(p: FlowProblem, plc: Placement, groups: dict[int, int] | None,
                partial: bool) -> tuple[dict[int, float], dict[tuple, float]]:
    """(node caps, link flows) of the realisable model's flow (`realisable.realisable_split`)."""
    from llmsched.theory.placement.realisable import realisable_split

    def solve(caps):
        g = flow_graph(p, plc, groups, partial, caps)
        _v, fd = nx.maximum_flow(g, SOURCE, SINK)
        ef, lc = {}, {}
        for a, b, d in g.edges(data=True):
            u = SOURCE if a == SOURCE else (a[1] if a[0] == "out" else None)
            v = SINK if b == SINK else (b[1] if isinstance(b, tuple) and b[0] == "in" else None)
            if u is not None and v is not None:
                lc[(u, v)] = d["capacity"]
                ef[(u, v)] = fd[a][b]
        return _v, ef, lc

    return realisable_split(p, plc, solve)


def solve_flow(p: FlowProblem, plc: Placement, groups: dict[int, int] | None = None,
               partial: bool = False) -> FlowResult:
    """Max flow (networkx preflow-push) and a minimum s-t cut of the placement's graph."""
    ncap, split = _realisable(p, plc, groups, partial) if p.realisable is not None and plc else (None, None)
    g = flow_graph(p, plc, groups, partial, ncap)
    value, fd = nx.maximum_flow(g, SOURCE, SINK)
    cut_value, (S, T) = nx.minimum_cut(g, SOURCE, SINK)
    cut_edges = [(a, b) for a in S for b in g.successors(a) if b in T]
    edge_flow: dict[tuple, float] = {}
    node_flow: dict[int, float] = {}
    for a, nbrs in fd.items():
        for b, f in nbrs.items():
            if a == ("start", b[1]) if isinstance(b, tuple) and b[0] == "end" else False:
                node_flow[b[1]] = f
            u = SOURCE if a == SOURCE else (a[1] if isinstance(a, tuple) and a[0] == "out" else None)
            v = SINK if b == SINK else (b[1] if isinstance(b, tuple) and b[0] == "in" else None)
            if u is not None and v is not None and f > 0:
                edge_flow[(u, v)] = f
    for i in plc:
        node_flow.setdefault(i, 0.0)
    if split is not None:  # report the realisable split itself (any max flow under ncap has its value)
        edge_flow = dict(split)
        node_flow = {i: sum(f for (_u, v), f in split.items() if v == i) for i in plc}
    used = ncap if ncap is not None else {i: p.node_cap(i, k) for i, (_s, k) in plc.items()}
    return FlowResult(float(value), edge_flow, node_flow, float(cut_value), cut_edges, used)


class FastFlow:
    """Integer max flow (scipy, Dinic) of a placement, for local search: capacities are scaled by
    `scale` and rounded down, so the value is within n_edges/scale of the exact one (below it)."""

    def __init__(self, p: FlowProblem, scale: float = 1000.0):
        self.p = p
        self.scale = scale
        n = p.n
        big = int(min(2**30, scale * 10 * max(max(c) for c in p.caps) * n))
        self.big = big
        self.cap_link = {}
        for u, v, c, _ in p.edges:
            self.cap_link[(u, v)] = min(big, int(c * scale))
        self.icap = [[min(big, int(t * scale)) for t in c] for c in p.caps]
        self.src_nodes = [v for (u, v) in self.cap_link if u == SOURCE]
        self.sink_nodes = [u for (u, v) in self.cap_link if v == SINK]
        self.out_links: dict[int, list[int]] = {i: [] for i in range(n)}
        for (u, v) in self.cap_link:
            if isinstance(u, int) and isinstance(v, int):
                self.out_links[u].append(v)

    def value(self, plc: Placement) -> float:
        return self._solve(plc, want_cut=False)[0]

    def cut(self, plc: Placement) -> tuple[float, list[int], list[tuple[int, int]]]:
        """Max flow, min-cut nodes, and min-cut links (i, j) between compute nodes."""
        val, cut = self._solve(plc, want_cut=True)
        return val, [c for c in cut if isinstance(c, int)], [c for c in cut if isinstance(c, tuple)]

    def _solve(self, plc: Placement, want_cut: bool) -> tuple[float, list[int]]:
        n = self.p.n
        ncap = None
        if self.p.realisable is not None and plc:
            from llmsched.theory.placement.realisable import fixed_point_caps

            ncap = fixed_point_caps(self.p, plc, lambda caps: self._flows(plc, caps))
        rows, cols, data = self._edges(plc, ncap)
        if not rows:
            return 0.0, []
        m = csr_matrix((np.array(data, dtype=np.int32), (rows, cols)), shape=(2 * n + 2, 2 * n + 2))
        res = maximum_flow(m, 0, 1, method="dinic")
        val = res.flow_value / self.scale
        if not want_cut:
            return val, []
        reach = self._source_side(m, res.flow, 2 * n + 2)
        cut: list = [i for i in plc if reach[2 + 2 * i] and not reach[3 + 2 * i]]
        for r, c in zip(rows, cols):
            if r >= 2 and c >= 2 and r % 2 == 1 and c % 2 == 0 and reach[r] and not reach[c]:
                cut.append(((r - 3) // 2, (c - 2) // 2))
        return val, cut

    def _flows(self, plc: Placement, ncap: dict[int, float] | None):
        """(value, link flows, link capacities) in tokens/s, keyed (u, v) with SOURCE/SINK, for the
        realisable model's fixed point."""
        n = self.p.n
        rows, cols, data = self._edges(plc, ncap)
        if not rows:
            return 0.0, {}, {}
        m = csr_matrix((np.array(data, dtype=np.int32), (rows, cols)), shape=(2 * n + 2, 2 * n + 2))
        res = maximum_flow(m, 0, 1, method="dinic")
        fl = res.flow.tocsr()
        ef, lc = {}, {}
        for r, c, d in zip(rows, cols, data):
            if r == 0:
                key = (SOURCE, (c - 2) // 2)
            elif c == 1:
                key = ((r - 3) // 2, SINK)
            elif r % 2 == 1 and c % 2 == 0:
                key = ((r - 3) // 2, (c - 2) // 2)
            else:
                continue
            lc[key] = d / self.scale
            ef[key] = max(0.0, float(fl[r, c])) / self.scale
        return res.flow_value / self.scale, ef, lc

    @staticmethod
    def _source_side(m, flow, n_vertices: int) -> np.ndarray:
        """Vertices reachable from the source in the residual graph (the min cut's source side)."""
        resid = (m - flow).tocsr()  # residual: cap - flow forward, +flow backward
        reach = np.zeros(n_vertices, dtype=bool)
        reach[0] = True
        stack = [0]
        while stack:
            a = stack.pop()
            lo, hi = resid.indptr[a], resid.indptr[a + 1]
            for b, r in zip(resid.indices[lo:hi], resid.data[lo:hi]):
                if r > 0 and not reach[b]:
                    reach[b] = True
                    stack.append(b)
        return reach

    def _edges(self, plc: Placement, ncap: dict[int, float] | None = None) -> tuple[list[int], list[int], list[int]]:
        """The placement's flow network as (rows, cols, integer capacities); vertex ids: 0 source,
        1 sink, 2+2i in_i, 3+2i out_i. `ncap` overrides the node caps T_i(k)."""
        L = self.p.L
        rows, cols, data = [], [], []
        by_start: dict[int, list[int]] = {}
        for i, (s, _k) in plc.items():
            by_start.setdefault(s, []).append(i)
        for i, (_s, k) in plc.items():
            rows.append(2 + 2 * i)
            cols.append(3 + 2 * i)
            data.append(self.icap[i][k - 1] if ncap is None else min(self.big, int(ncap[i] * self.scale)))
        for i in self.src_nodes:
            if i in plc and plc[i][0] == 0:
                rows.append(0)
                cols.append(2 + 2 * i)
                data.append(self.cap_link[(SOURCE, i)])
        for i in self.sink_nodes:
            if i in plc and plc[i][0] + plc[i][1] == L:
                rows.append(3 + 2 * i)
                cols.append(1)
                data.append(self.cap_link[(i, SINK)])
        for i, (s, k) in plc.items():
            e = s + k
            if e >= L:
                continue
            for j in by_start.get(e, ()):
                c = self.cap_link.get((i, j))
                if c:
                    rows.append(3 + 2 * i)
                    cols.append(2 + 2 * j)
                    data.append(c)
        return rows, cols, data
