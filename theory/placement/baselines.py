"""Baseline placements: Swarm-style, Petals-style, separate pipelines (SP, SP+), homogeneous.

Each is a function FlowProblem -> Placement; scoring and certification live in flow.py/checker.
No solver calls here.
"""

# Swarm (Helix `swarm_layout.py`, re-derived): S equal stages of L/S layers (S the smallest divisor
# count whose stage fits every node), nodes sorted by T_i(L/S) descending, each joins the stage
# with the least total throughput. Petals (Helix `petals_layout.py`, after Petals App. D): nodes in
# random order, each holds its maximum layers at the window whose sorted per-layer throughput is
# lexicographically smallest. Petals relies on partial inference, so without it its plans chain
# poorly; that is the published behaviour, not a bug here.
# SP (our reading of Helix Sec 6.3 "separate pipelines"): one group per GPU type; a type that cannot
# hold a full copy within its layer limits joins the next slower type (Helix's SP+ grouping for
# V100+T4). Each group forms disjoint pipelines: nodes of a pipeline split L evenly, the group
# builds as many pipelines as it can from its fastest nodes. SP+: each group is placed by our
# stage construction (pipelines may share stages inside a group, never across groups).
# Homogeneous (Helix `homogeneous_layout.py`): as Swarm's stages, nodes dealt round-robin.

from __future__ import annotations

import numpy as np

from llmsched.theory.placement.flow import FastFlow, FlowProblem, Placement


def _stage_count(p: FlowProblem, nodes: list[int]) -> int:
    kmin = min(p.max_layers(i) for i in nodes)
    for s in range(1, p.L + 1):
        if p.L % s == 0 and p.L // s <= kmin:
            return s
    return p.L


def swarm(p: FlowProblem) -> Placement:
    nodes = list(range(p.n))
    S = _stage_count(p, nodes)
    k = p.L // S
    order = sorted(nodes, key=lambda i: (-p.node_cap(i, k), i))
    tput = [0.0] * S
    plc: Placement = {}
    for i in order:
        st = int(np.argmin(tput))
        plc[i] = (st * k, k)
        tput[st] += p.node_cap(i, k)
    return plc


def homogeneous(p: FlowProblem) -> Placement:
    S = _stage_count(p, list(range(p.n)))
    k = p.L // S
    return {i: ((i % S) * k, k) for i in range(p.n)}


def petals(p: FlowProblem, seed: int = 0) -> Placement:
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(p.n))
    cover = [0.0] * p.L
    plc: Placement = {}
    for i in order:
        i = int(i)
        K = min(p.max_layers(i), p.L)
        perf = p.node_cap(i, K)
        best_s, best_key = 0, None
        for s in range(p.L - K + 1):
            key = sorted(cover[s:s + K])
            if best_key is None or key < best_key:
                best_s, best_key = s, key
        plc[i] = (best_s, K)
        for layer in range(best_s, best_s + K):
            cover[layer] += perf
    return plc


def type_groups(p: FlowProblem) -> list[list[int]]:
    """Per-type node groups, slow types merged upward until each group can hold the model."""
    by_type: dict[str, list[int]] = {}
    for nd in p.cluster.nodes:
        by_type.setdefault(nd.gpu_type, []).append(nd.index)
    # fastest type first: by the throughput of one node holding its max layers x layers
    types = sorted(by_type, key=lambda g: -max(k * p.node_cap(by_type[g][0], k)
                                               for k in range(1, p.max_layers(by_type[g][0]) + 1)))
    groups: list[list[int]] = []
    cur: list[int] = []
    for g in types:
        cur = cur + by_type[g]
        if sum(p.max_layers(i) for i in cur) >= p.L:
            groups.append(cur)
            cur = []
    if cur:
        if groups:
            groups[-1] = groups[-1] + cur
        else:
            groups.append(cur)
    return groups


def _pipelines(p: FlowProblem, nodes: list[int]) -> Placement:
    """Disjoint pipelines inside one group: greedily take the fewest nodes (largest layer limit
    first) that hold L layers, split L in proportion to their limits, repeat."""
    free = sorted(nodes, key=lambda i: (-p.max_layers(i), -p.node_cap(i, 1), i))
    plc: Placement = {}
    while free:
        chosen, tot = [], 0
        for i in free:
            if tot >= p.L:
                break
            chosen.append(i)
            tot += p.max_layers(i)
        if tot < p.L:
            break
        # even split, respecting limits
        m = len(chosen)
        base = [min(p.max_layers(i), p.L // m) for i in chosen]
        rest = p.L - sum(base)
        for j, i in enumerate(chosen):
            add = min(rest, p.max_layers(i) - base[j])
            base[j] += add
            rest -= add
        s = 0
        for j, i in enumerate(chosen):
            plc[i] = (s, base[j])
            s += base[j]
        free = [i for i in free if i not in chosen]
    return plc


def separate_pipelines(p: FlowProblem) -> Placement:
    plc: Placement = {}
    for grp in type_groups(p):
        plc.update(_pipelines(p, grp))
    return plc  # flows stay inside a group: evaluate with groups=group_map(p)


def separate_pipelines_plus(p: FlowProblem) -> Placement:
    from llmsched.theory.placement.heuristic import best_stage_plan
    from llmsched.theory.placement.profiles import infinite_network_bound

    plc: Placement = {}
    for grp in type_groups(p):
        sub = FlowProblem(p.cluster.subset(grp), p.model, [p.caps[i] for i in grp],
                          p.cluster.subset(grp).directed_edges(p.model), p.capacity_model)
        sp, _ = best_stage_plan(sub, FastFlow(sub), infinite_network_bound(sub.caps, p.L))
        # keep only nodes that carry flow in the sub-problem's own plan
        for j, i in enumerate(grp):
            if j in sp:
                plc[i] = sp[j]
    return plc


def group_map(p: FlowProblem) -> dict[int, int]:
    """node -> group id, for restricting SP/SP+ flows to their own group."""
    return {i: g for g, grp in enumerate(type_groups(p)) for i in grp}


BASELINES = {
    "swarm": swarm,
    "petals": petals,
    "sp": separate_pipelines,
    "sp+": separate_pipelines_plus,
    "homogeneous": homogeneous,
}
