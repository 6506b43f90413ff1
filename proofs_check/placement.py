"""Certificate checker for a placement plan directory (`llmsched check placement PLAN_DIR`).

Recomputes capacities from the cluster and model named in the plan; never trusts the plan's own
numbers. Returns the first violation with a witness.
"""

# Recomputes node capacities T_i(k) and link capacities from the cluster and model named in the plan,
# then checks: (1) each node holds a contiguous layer range within its layer limit; (2) every
# positive-flow edge chains (u's last layer + 1 == v's first; source -> layer 0; -> sink from L-1),
# so every source-to-sink path covers layers 0..L-1 in order (verified by walking the paths);
# (3) conservation at every node; (4) link and node capacities respected; (5) the recorded flow
# value is maximum: it equals an independent networkx max flow and the recorded min cut, whose
# edges separate source from sink; (6) MILP objective and flow <= the infinite-network bound and the layer-coverage bound.
# Returns the first violation with a witness.

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from llmsched.proofs_check.registry import checker
from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.errors import InputError

NAME = "placement"


def _fail(summary: str, witness: dict, details: dict | None = None) -> Verdict:
    return Verdict(NAME, False, summary, witness, details or {})


Tol = Callable[[float], float]
Chains = Callable[[int | str, int | str], bool]


@checker(NAME, target="plan", help="placement plan: contiguous layers, chaining, conservation, "
                                    "capacities, max flow == min cut, objective <= bound")
def check_placement(path: Path, rel_tol: float = 1e-6, abs_tol: float = 1e-3) -> Verdict:
    from llmsched.theory.placement.io import load_cluster
    from llmsched.theory.placement.plan import read_plan
    from llmsched.theory.placement.profiles import node_capacities
    from llmsched.theory.placement.spec import MODELS

    plan, rows, cut = read_plan(path)
    try:
        cluster = load_cluster(plan["cluster"])
    except InputError as exc:  # name the plan file, not the `place` flag
        raise InputError(str(Path(path) / "plan.json"), "cluster", str(exc)) from None
    model = MODELS[plan["model"]]
    L = model.num_layers
    caps = node_capacities(cluster, model, plan.get("capacity_model", "helix"))
    tol = lambda x: abs_tol + rel_tol * abs(x)  # noqa: E731
    partial = bool(plan.get("partial_inference"))

    ranges = _layer_ranges(plan, cluster.n, caps, L)  # (1)
    if isinstance(ranges, Verdict):
        return ranges
    rng, groups = ranges
    chains = _chaining_rule(rng, groups, partial, L)  # (2)
    edges = cluster.directed_edges(model)
    if plan.get("prune_keep"):  # the plan was searched on Helix's pruned link set: check it there
        from llmsched.theory.placement.flow import helix_prune_edges

        edges = helix_prune_edges(edges, int(plan["prune_keep"]))
    link_cap = {(u, v): c for u, v, c, _ in edges}  # recomputed
    flows = _edge_flows(rows, link_cap, rng, chains, tol)  # (2), (4) links
    if isinstance(flows, Verdict):
        return flows
    value, pos_edges, inflow, outflow = flows
    bound_caps = caps  # placement-free T_i(k): the bounds of (6) hold for every placement
    if plan.get("capacity_model") == "realisable":  # (4) with the placement's bandwidth-delay x KV caps
        rcaps = _realisable_caps(cluster, model, plan, rng, groups, edges, caps, pos_edges, inflow)
        if isinstance(rcaps, Verdict):
            return rcaps
        caps = rcaps
    failure = _node_balance(inflow, outflow, rng, caps, tol)  # (3), (4) nodes
    if failure is None:
        failure = _walk_flow_paths(pos_edges, rng, partial, L)  # (2b)
    if failure is not None:
        return failure
    g = _flow_graph(cluster, model, rng, caps, link_cap, chains)  # (5)
    cut_cap = _max_flow_and_cut(g, value, plan, cut, tol)
    if isinstance(cut_cap, Verdict):
        return cut_cap
    return _bounds(bound_caps, L, value, cut_cap, plan, len(rng), tol)  # (6)


REALISABLE_CAP_RTOL = 1e-6  # float slack of the realisable checks (the model itself is exact arithmetic)
REALISABLE_TIGHT = 1e-3  # the recorded flow must be within this of the largest realisable scale


def _realisable_caps(cluster, model, plan: dict, rng: dict[int, tuple[int, int]], groups: dict[int, int],
                     edges: list, caps: list, pos_edges: list, inflow: dict[int, float]) -> list | Verdict:
    """T_i(k) with each placed node's entry replaced by its recorded realisable cap, after checking
    that the recorded flow is realisable (`realisable.py`): each node's cap is its flow in the
    recorded split and at most T_i(k); each node's flow is within its KV cap recomputed at the link
    loads the recorded flow itself causes (from the cluster, the layers, `length_cv`,
    `kv_fraction`); and the flow is maximal along its split: 1 + REALISABLE_TIGHT times it breaks
    some KV cap, unless it already is Helix's max flow. Any maximum flow's split is accepted."""
    from llmsched.theory.placement.flow import FlowProblem, solve_flow
    from llmsched.theory.placement.realisable import kv_caps, realisable_spec
    from llmsched.theory.placement.spec import SOURCE

    spec = realisable_spec(float(plan.get("length_cv", 0.0)), float(plan.get("kv_fraction", 1.0)))
    p = FlowProblem(cluster, model, caps, edges, "realisable", spec)
    plc = {i: (lo, hi - lo) for i, (lo, hi) in rng.items()}
    link_cap = {(u, v): c for u, v, c, _ in edges}
    loads = {(u, v): f for u, v, f in pos_edges}
    kv = kv_caps(p, plc, loads, link_cap)
    recorded = {int(nd["index"]): nd.get("capacity_tok_s") for nd in plan["nodes"]}
    out = [list(c) for c in caps]
    slack = lambda x: REALISABLE_CAP_RTOL * abs(x) + 1e-6  # noqa: E731
    for i, (lo, hi) in rng.items():
        rec, flow, t_ik = recorded.get(i), inflow.get(i, 0.0), caps[i][hi - lo - 1]
        witness = {"node": i, "recorded": rec, "flow": flow, "kv_cap_at_recorded_loads": kv[i], "T_i_k": t_ik}
        if rec is None or rec > t_ik + slack(t_ik) or abs(rec - flow) > slack(flow):
            return _fail(f"node {i}'s recorded capacity is not its realisable cap (its flow in the split, "
                         "at most T_i(k))", witness)
        if flow > kv[i] + slack(kv[i]):
            return _fail(f"node {i}'s flow exceeds its realisable cap (KV cap at the recorded loads)", witness)
        out[i][hi - lo - 1] = rec
    more = kv_caps(p, plc, {e: (1 + REALISABLE_TIGHT) * f for e, f in loads.items()}, link_cap)
    if all((1 + REALISABLE_TIGHT) * inflow.get(i, 0.0) <= more[i] for i in rng):
        helix = solve_flow(FlowProblem(cluster, model, caps, edges), plc, groups or None,
                           bool(plan.get("partial_inference")))
        value = sum(f for u, _v, f in pos_edges if u == SOURCE)
        if value < helix.value * (1 - REALISABLE_TIGHT):
            return _fail("the recorded flow is not the realisable cap: a larger load along its split still fits "
                         "every KV cap", {"value": value, "helix_max_flow": helix.value})
    return out


def _layer_ranges(plan: dict, n_nodes: int, caps: list, L: int
                  ) -> Verdict | tuple[dict[int, tuple[int, int]], dict[int, int]]:
    """(1) Each node's layers form a contiguous range [lo, hi) within 0..L-1 and its layer limit:
    node -> (lo, hi) for the nodes that hold layers, and node -> group where the plan names one."""
    rng: dict[int, tuple[int, int]] = {}
    groups: dict[int, int] = {}
    if len(plan["nodes"]) != n_nodes:
        return _fail("plan lists a different number of nodes than the cluster",
                     {"plan_nodes": len(plan["nodes"]), "cluster_nodes": n_nodes})
    for nd in plan["nodes"]:
        i, layers = int(nd["index"]), list(nd["layers"])
        if nd.get("group") is not None:
            groups[i] = int(nd["group"])
        if not layers:
            continue
        lo, hi = min(layers), max(layers)
        if layers != list(range(lo, hi + 1)):
            missing = sorted(set(range(lo, hi + 1)) - set(layers))
            return _fail(f"node {i} holds a non-contiguous layer set", {"node": i, "layers": layers,
                                                                        "missing": missing})
        if lo < 0 or hi >= L:
            return _fail(f"node {i} holds layers outside 0..{L - 1}", {"node": i, "layers": [lo, hi]})
        if len(layers) > len(caps[i]):
            return _fail(f"node {i} exceeds its layer limit", {"node": i, "holds": len(layers),
                                                               "limit": len(caps[i])})
        rng[i] = (lo, hi + 1)
    return rng, groups


def _chaining_rule(rng: dict[int, tuple[int, int]], groups: dict[int, int], partial: bool, L: int) -> Chains:
    """(2) The chaining rule between two placed nodes (or the source/sink): e_u == s_v, or with
    Helix's partial inference s_v <= e_u < e_v; nodes of different pipeline groups never chain."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    def chains(u, v) -> bool:
        if u == SOURCE:
            return rng[v][0] == 0
        if v == SINK:
            return rng[u][1] == L
        if groups and groups.get(u) != groups.get(v):
            return False
        if partial:
            return rng[v][0] <= rng[u][1] < rng[v][1]
        return rng[u][1] == rng[v][0]

    return chains


def _placed(u, v, rng: dict[int, tuple[int, int]]) -> bool:
    """Both ends of the edge hold layers (or are the source/sink)."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    return not ((u != SOURCE and u not in rng) or (v != SINK and v not in rng))


def _edge_flows(rows: list, link_cap: dict, rng: dict[int, tuple[int, int]], chains: Chains, tol: Tol
                ) -> Verdict | tuple[float, list, dict[int, float], dict[int, float]]:
    """(2) and (4) per edge: flow only on existing links, non-negative, within the link's capacity,
    and positive only where the layer ranges chain. Returns (flow value, positive edges,
    inflow per node, outflow per node)."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    inflow: dict[int, float] = defaultdict(float)
    outflow: dict[int, float] = defaultdict(float)
    value = 0.0
    pos_edges = []
    for r in rows:
        u, v, f = r["src"], r["dst"], r["flow_tok_s"]
        if (u, v) not in link_cap:
            return _fail("flow on a link that does not exist", {"edge": [u, v], "flow": f})
        if f < -tol(0):
            return _fail("negative flow", {"edge": [u, v], "flow": f})
        if f > link_cap[(u, v)] + tol(link_cap[(u, v)]):
            return _fail("link over capacity", {"edge": [u, v], "flow": f, "capacity": link_cap[(u, v)]})
        if f <= tol(0):
            continue
        if not (_placed(u, v, rng) and chains(u, v)):
            return _fail("flow on an edge whose layer ranges do not chain",
                         {"edge": [u, v], "flow": f, "src_layers": rng.get(u), "dst_layers": rng.get(v)})
        pos_edges.append((u, v, f))
        if u == SOURCE:
            value += f
        else:
            outflow[u] += f
        if v != SINK:
            inflow[v] += f
    return value, pos_edges, inflow, outflow


def _node_balance(inflow: dict[int, float], outflow: dict[int, float], rng: dict[int, tuple[int, int]],
                  caps: list, tol: Tol) -> Verdict | None:
    """(3) conservation at every node and (4) its capacity T_i(k) for the k layers it holds."""
    for i in set(inflow) | set(outflow):
        if abs(inflow[i] - outflow[i]) > tol(inflow[i]):
            return _fail(f"flow not conserved at node {i}", {"node": i, "in": inflow[i], "out": outflow[i]})
        k = rng[i][1] - rng[i][0]
        if inflow[i] > caps[i][k - 1] + tol(caps[i][k - 1]):
            return _fail(f"node {i} over capacity", {"node": i, "flow_in": inflow[i],
                                                      "capacity_T_i_k": caps[i][k - 1], "k": k})
    return None


def _walk_flow_paths(pos_edges: list, rng: dict[int, tuple[int, int]], partial: bool, L: int) -> Verdict | None:
    """(2b) Every source-to-sink path of the positive-flow subgraph covers layers 0..L-1 in order."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    succ: dict = defaultdict(list)
    for u, v, _ in pos_edges:
        succ[u].append(v)
    stack: list[tuple] = [(SOURCE, 0, [SOURCE])]
    seen_state = set()
    while stack:
        node, next_layer, trail = stack.pop()
        if node == SINK:
            if next_layer != L:
                return _fail("a flow path reaches the sink without covering all layers",
                             {"path": trail, "covered_up_to": next_layer})
            continue
        if node != SOURCE:
            lo, hi = rng[node]
            if not (lo <= next_layer < hi if partial else lo == next_layer):
                return _fail("a flow path skips or repeats layers", {"path": trail, "expected": next_layer,
                                                                      "node_layers": [lo, hi]})
            next_layer = hi
        if (node, next_layer) in seen_state:
            continue
        seen_state.add((node, next_layer))
        for v in succ[node]:
            stack.append((v, next_layer, [*trail[-6:], v]))
    return None


def _flow_graph(cluster, model, rng: dict[int, tuple[int, int]], caps: list, link_cap: dict,
                chains: Chains) -> nx.DiGraph:
    """(5) The plan's flow network, built independently: per placed node NIC in -> compute -> NIC
    out, and every link between placed ends whose layer ranges chain."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    g = nx.DiGraph()
    for i, (lo, hi) in rng.items():
        nd = cluster.nodes[i]
        g.add_edge(("in", i), ("start", i), capacity=nd.nic_in_Bps / model.activation_bytes)
        g.add_edge(("start", i), ("end", i), capacity=caps[i][hi - lo - 1])
        g.add_edge(("end", i), ("out", i), capacity=nd.nic_out_Bps / model.activation_bytes)
    for (u, v), c in link_cap.items():
        if not _placed(u, v, rng):
            continue
        if chains(u, v):
            g.add_edge(SOURCE if u == SOURCE else ("out", u), SINK if v == SINK else ("in", v), capacity=c)
    g.add_node(SOURCE)
    g.add_node(SINK)
    return g


def _max_flow_and_cut(g: nx.DiGraph, value: float, plan: dict, cut: dict, tol: Tol) -> Verdict | float:
    """(5) The recorded value is maximum: it equals an independent max flow, plan.json's number and
    the capacity of the recorded cut, which separates source from sink. Returns the cut capacity."""
    from llmsched.theory.placement.spec import SINK, SOURCE

    mf = nx.maximum_flow_value(g, SOURCE, SINK)
    if abs(mf - value) > tol(mf):
        return _fail("recorded flow is not a maximum flow", {"recorded": value, "max_flow": mf})
    if abs(plan.get("max_flow_tok_s", value) - value) > tol(value):
        return _fail("plan.json max_flow differs from the flow in flow.csv",
                     {"plan_json": plan.get("max_flow_tok_s"), "flow_csv": value})

    def parse(x):
        if x in (SOURCE, SINK):
            return x
        a, b = x.split(":")
        return (a, int(b))

    cut_edges = [(parse(a), parse(b)) for a, b, _ in cut["edges"]]
    cut_cap = 0.0
    for a, b in cut_edges:
        if not g.has_edge(a, b):
            return _fail("min-cut edge is not in the flow graph", {"edge": [str(a), str(b)]})
        cut_cap += g[a][b]["capacity"]
    h = g.copy()
    h.remove_edges_from(cut_edges)
    if nx.has_path(h, SOURCE, SINK):
        return _fail("recorded cut does not separate source from sink",
                     {"path": [str(x) for x in nx.shortest_path(h, SOURCE, SINK)]})
    if abs(cut_cap - value) > tol(value):
        return _fail("flow value differs from the min-cut capacity", {"flow": value, "cut": cut_cap})
    return cut_cap


def _bounds(caps: list, L: int, value: float, cut_cap: float, plan: dict, nodes_used: int, tol: Tol) -> Verdict:
    """(6) The flow and the MILP objective stay within the infinite-network and layer-coverage bounds."""
    from llmsched.theory.placement.profiles import coverage_bound, infinite_network_bound

    ub = infinite_network_bound(caps, L)
    cb = coverage_bound(caps, L)
    milp_obj = (plan.get("milp") or {}).get("objective")
    for label, x in (("max flow", value), ("MILP objective", milp_obj)):
        if x is not None and x > ub + tol(ub):
            return _fail(f"{label} exceeds the infinite-network bound", {label: x, "bound": ub})
        if x is not None and x > cb + tol(cb):
            return _fail(f"{label} exceeds the layer-coverage bound", {label: x, "coverage_bound": cb})
    return Verdict(NAME, True,
                   f"valid plan: max flow {value:.2f} tokens/s == min cut {cut_cap:.2f}; "
                   f"bounds: coverage {cb:.2f}, infinite-network {ub:.2f}; {nodes_used} nodes used",
                   None, {"max_flow_tok_s": value, "min_cut_tok_s": cut_cap, "upper_bound_tok_s": ub, "coverage_bound_tok_s": cb,
                          "nodes_used": nodes_used})
