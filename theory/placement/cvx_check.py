"""The same Helix placement MILP written in cvxpy, to cross-check the pulp model on small instances.

Built from the same `FlowProblem` but with its own variable layout (vectors and an incidence
matrix instead of pulp's per-variable rows); solved with cvxpy's HIGHS or SCIPY MILP backend.
Only for small instances (a few nodes, few layers): no warm start, no time-limit handling.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from llmsched.theory.placement.flow import FlowProblem, Placement
from llmsched.theory.placement.spec import SINK, SOURCE


def solve_cvxpy(p: FlowProblem, solver: str | None = None) -> tuple[float, Placement]:
    n, L = p.n, p.L
    E = p.edges
    m = len(E)
    K = [p.max_layers(i) for i in range(n)]
    s = cp.Variable(n, integer=True)
    b = [cp.Variable(K[i], boolean=True) for i in range(n)]
    f = cp.Variable(m, nonneg=True)
    d = cp.Variable(m, boolean=True)
    end = [s[i] + np.arange(1, K[i] + 1) @ b[i] for i in range(n)]
    # incidence: +1 into node i, -1 out of node i
    A_in = np.zeros((n, m))
    A_out = np.zeros((n, m))
    src = np.zeros(m)
    cap = np.zeros(m)
    maxcap = [max(c) for c in p.caps]
    for e, (u, v, c, _) in enumerate(E):
        if u == SOURCE:
            src[e] = 1.0
        else:
            A_out[u, e] = 1.0
        if v != SINK:
            A_in[v, e] = 1.0
        cap[e] = min(c, maxcap[u] if u != SOURCE else np.inf, maxcap[v] if v != SINK else np.inf)
    cons = [s >= 0, s <= L - 1, A_in @ f == A_out @ f, f <= cp.multiply(cap, d)]
    for i in range(n):
        cons += [cp.sum(b[i]) == 1, end[i] <= L, A_in[i] @ f <= np.array(p.caps[i]) @ b[i]]
    for e, (u, v, _, _) in enumerate(E):
        if u == SOURCE:
            cons.append(s[v] <= L * (1 - d[e]))
        elif v == SINK:
            cons.append(L * d[e] <= end[u])
        else:
            cons += [s[v] - end[u] <= L * (1 - d[e]), end[u] - s[v] <= L * (1 - d[e])]
    prob = cp.Problem(cp.Maximize(src @ f), cons)
    chosen = solver or ("HIGHS" if "HIGHS" in cp.installed_solvers() else "SCIPY")
    prob.solve(solver=chosen)
    plc: Placement = {}
    for i in range(n):
        k = int(np.argmax(b[i].value)) + 1
        plc[i] = (round(float(s[i].value)), k)
    return float(prob.value), plc
