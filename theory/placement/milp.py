"""The Helix placement MILP in pulp (HiGHS through highspy by default, CBC as fallback).

Owns the model, the warm start and the solver reporting; search heuristics live in heuristic.py.
"""

# Model (Helix `simulator/initial_layout/ilp_layout/ilp_layout.py`, re-derived, `remove_redundant`
# variant): integer start s_i, one-hot b_ik (node i holds k layers), flows f_e >= 0 and edge
# switches d_e on every directed link; sum_k b_ik = 1; e_i = s_i + sum_k k b_ik <= L; flow
# conservation; inflow_i <= sum_k T_i(k) b_ik; source->i only if s_i = 0 (s_i <= L(1-d)); i->sink
# only if e_i = L (L d <= e_i); i->j only if s_j = e_i (|s_j - e_i| <= L(1-d)); f_e <= c_e d_e.
# Our one change: c_e is tightened to min(c_e, max_k T_u(k), max_k T_v(k)), which conservation
# and the node caps already imply (same feasible flows, smaller big-M). With partial inference,
# i->j needs s_j <= e_i < e_j instead (two big-M rows, no auxiliary binaries since we maximise).

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field

import pulp

from llmsched.theory.placement.flow import FlowProblem, Placement
from llmsched.theory.placement.spec import SINK, SOURCE


@dataclass
class MilpResult:
    placement: Placement | None
    objective: float | None  # MILP incumbent flow (tokens/s); None if no incumbent
    bound: float | None  # dual bound reported by the solver
    gap: float | None  # (bound - objective) / objective
    solve_time_s: float
    status: str
    solver: str
    rows: int = 0
    cols: int = 0
    log: list[str] = field(default_factory=list)
    nodes: int | None = None  # branch-and-bound nodes HiGHS explored


def _edge_name(u, v) -> str:
    return f"{u}_{v}"


def build_model(p: FlowProblem, partial_inference: bool = False):
    """The pulp model and its variables (start, hold, flow, switch)."""
    L, n = p.L, p.n
    prob = pulp.LpProblem("helix_placement", pulp.LpMaximize)
    start = {i: prob.add_variable(f"start_{i}", 0, L - 1, cat="Integer") for i in range(n)}
    hold = {(i, k): prob.add_variable(f"hold_{i}_{k}", cat="Binary")
            for i in range(n) for k in range(1, p.max_layers(i) + 1)}
    flow, switch, cap = {}, {}, {}
    maxcap = [max(c) for c in p.caps]
    for u, v, c, _ in p.edges:
        name = _edge_name(u, v)
        tight = c
        if u != SOURCE:
            tight = min(tight, maxcap[u])
        if v != SINK:
            tight = min(tight, maxcap[v])
        flow[(u, v)] = prob.add_variable(f"flow_{name}", 0)
        switch[(u, v)] = prob.add_variable(f"switch_{name}", cat="Binary")
        cap[(u, v)] = tight
    end = {i: start[i] + pulp.lpSum(k * hold[(i, k)] for k in range(1, p.max_layers(i) + 1)) for i in range(n)}
    prob += pulp.lpSum(flow[e] for e in flow if e[0] == SOURCE)
    for i in range(n):
        prob += pulp.lpSum(hold[(i, k)] for k in range(1, p.max_layers(i) + 1)) == 1, f"hold_{i}"
        prob += end[i] <= L, f"end_{i}"
        fin = [flow[e] for e in flow if e[1] == i]
        fout = [flow[e] for e in flow if e[0] == i]
        prob += pulp.lpSum(fin) == pulp.lpSum(fout), f"conserve_{i}"
        prob += pulp.lpSum(fin) <= pulp.lpSum(p.node_cap(i, k) * hold[(i, k)]
                                              for k in range(1, p.max_layers(i) + 1)), f"node_cap_{i}"
    for (u, v), d in switch.items():
        nm = _edge_name(u, v)
        if u == SOURCE:
            prob += start[v] <= L * (1 - d), f"src_{nm}"
        elif v == SINK:
            prob += L * d <= end[u], f"snk_{nm}"
        elif partial_inference:
            prob += start[v] - end[u] <= L * (1 - d), f"pi1_{nm}"
            prob += end[u] + 1 - end[v] <= (L + 1) * (1 - d), f"pi2_{nm}"
        else:
            prob += start[v] - end[u] <= L * (1 - d), f"ch1_{nm}"
            prob += end[u] - start[v] <= L * (1 - d), f"ch2_{nm}"
        prob += flow[(u, v)] <= cap[(u, v)] * d, f"cap_{nm}"
    return prob, start, hold, flow, switch


def _set_start(p: FlowProblem, plc: Placement, start, hold, flow, switch) -> None:
    """Write a full warm start (layout + its max flow + switches) into the variables."""
    from llmsched.theory.placement.flow import enabled, solve_flow

    res = solve_flow(p, plc)
    for i in range(p.n):
        s, k = plc[i]
        start[i].setInitialValue(s)
        for kk in range(1, p.max_layers(i) + 1):
            hold[(i, kk)].setInitialValue(1 if kk == k else 0)
    for e, var in flow.items():
        var.setInitialValue(res.edge_flow.get(e, 0.0))
        switch[e].setInitialValue(1 if enabled(p, plc, *e) else 0)


class _WarmHiGHS(pulp.HiGHS):
    """pulp's highspy interface plus a MIP start and an improving-solution progress line."""

    def __init__(self, warm: bool, progress: bool, **kw):
        super().__init__(**kw)
        self.warm = warm
        self.progress = progress
        self.info: dict = {}
        self.lines: list[str] = []

    def findSolutionValues(self, lp):
        try:
            return super().findSolutionValues(lp)
        except KeyError:  # a node limit ends as kSolutionLimit, which pulp does not map; values are set
            if math.isfinite(lp.solverModel.getInfo().objective_function_value):
                return pulp.constants.LpStatusOptimal, pulp.constants.LpSolutionIntegerFeasible
            return pulp.constants.LpStatusNotSolved, pulp.constants.LpSolutionNoSolutionFound

    def callSolver(self, lp):
        import highspy

        h = lp.solverModel
        if self.warm:
            sol = highspy.HighsSolution()
            sol.col_value = [float(v.varValue or 0.0) for v in lp.variables()]
            sol.value_valid = True
            h.setSolution(sol)
        t0 = time.monotonic()

        def on_improve(e):
            d = e.data_out
            line = (f"[milp] t={time.monotonic() - t0:6.1f}s incumbent={-d.objective_function_value:.2f} "
                    f"bound={-d.mip_dual_bound:.2f} tokens/s")
            self.lines.append(line)
            if self.progress:
                print(line, file=sys.stderr, flush=True)

        with contextlib.suppress(AttributeError):  # older highspy: no callbacks, still solves
            h.cbMipImprovingSolution.subscribe(on_improve)
        h.run()
        info = h.getInfo()
        self.info = {"status": h.modelStatusToString(h.getModelStatus()),"bound": -info.mip_dual_bound, "gap": info.mip_gap,
                     "objective": -info.objective_function_value, "nodes": int(info.mip_node_count)}


def solve_milp(p: FlowProblem, time_limit_s: float, warm_start: Placement | None = None,
               solver: str = "highs", threads: int = 1, partial_inference: bool = False,
               progress: bool = True, msg: bool = False, max_nodes: int | None = None) -> MilpResult:
    """Solve the Helix MILP; returns the incumbent placement, objective, bound and gap.

    max_nodes: HiGHS's branch-and-bound node limit (`mip_max_nodes`), a work budget that does not
    depend on machine load (single-threaded HiGHS is deterministic); the time limit stays a cap."""
    prob, start, hold, flow, switch = build_model(p, partial_inference)
    if warm_start is not None:
        _set_start(p, warm_start, start, hold, flow, switch)
    t0 = time.monotonic()
    if solver == "highs":
        extra = {"mip_max_nodes": int(max_nodes)} if max_nodes is not None else {}
        s = _WarmHiGHS(warm=warm_start is not None, progress=progress, msg=msg,
                       timeLimit=time_limit_s, threads=threads, **extra)
    elif solver == "cbc":
        cbc = pulp.COIN_CMD if pulp.COIN_CMD().available() else pulp.PULP_CBC_CMD
        s = cbc(msg=False, timeLimit=time_limit_s, warmStart=warm_start is not None, threads=threads)
    else:
        raise ValueError(f"unknown solver {solver!r} (use highs or cbc)")
    try:
        prob.solve(s)
    except pulp.PulpSolverError as exc:
        return MilpResult(None, None, None, None, time.monotonic() - t0, f"error: {exc}", solver)
    dt = time.monotonic() - t0
    status = pulp.LpStatus[prob.status]
    plc: Placement = {}
    ok = True
    for i in range(p.n):
        ks = [k for k in range(1, p.max_layers(i) + 1) if (hold[(i, k)].varValue or 0) > 0.5]
        if len(ks) != 1 or start[i].varValue is None:
            ok = False
            break
        plc[i] = (round(start[i].varValue), ks[0])
    obj = pulp.value(prob.objective) if ok else None
    bound = gap = None
    lines: list[str] = []
    nodes = None
    if isinstance(s, _WarmHiGHS):
        nodes = s.info.get("nodes")
        status = s.info.get("status", status)
        bound = s.info.get("bound")
        lines = s.lines
        if obj is not None and bound is not None and obj > 0:
            gap = (bound - obj) / obj
    return MilpResult(plc if ok else None, obj, bound, gap, dt, status, solver,
                      rows=prob.numConstraints(), cols=prob.numVariables(), log=lines, nodes=nodes)
