"""The layer-cut bound (ours): an integer upper bound on Helix's max flow without big-M edge switches.

Owns the bound and its small MILP; `llmsched place` records it beside the coverage bound.

Proof. Put the layer boundaries 0..L on a line. A placement makes node i an edge from boundary s_i
to s_i + k_i of capacity T_i(k_i); without link and NIC limits (dropping them only raises the max
flow) the runtime graph's max flow is the max flow from boundary 0 to boundary L of this multigraph,
because i -> j is allowed exactly when j starts where i ends. The prefix cut {0..l} is crossed by
exactly the nodes holding layer l, so every placement has F <= min_l sum_{i holds l} T_i(k_i).
Maximising the right-hand side over all placements is an integer program with no flow variables:

    max F  s.t.  sum_{c,s,k : s <= l < s+k} T_c(k) n_{c,s,k} >= F   (every layer l),
                 sum_{s,k} n_{c,s,k} <= |c|                           (every class c),
                 n_{c,s,k} integer >= 0,

where a class c is a set of nodes with identical T(.) (counting variables remove their symmetry).
Its optimum, or any dual bound HiGHS proves for it, bounds Helix's MILP from above. It is a
relaxation in two ways: links and NICs are ignored, and only prefix cuts are imposed (a placement can
have a smaller non-prefix cut), so it need not be tight.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerCutBound:
    bound_tok_s: float  # proven upper bound on the max flow (HiGHS's dual bound, or the optimum)
    best_tok_s: float  # the layer-cut value of the best integer solution HiGHS found
    status: str
    seconds: float
    rows: int
    cols: int


def layer_cut_bound(caps: list[list[float]], num_layers: int, time_limit_s: float = 60.0,
                    upper: float | None = None) -> LayerCutBound:
    """Solve the layer-cut MILP (HiGHS, one thread). caps[i][k-1] = T_i(k); `upper` (e.g. the
    coverage bound) is a valid cap on F that tightens the LP relaxation."""
    import time

    import highspy
    import numpy as np

    classes: dict[tuple[float, ...], int] = {}
    for row in caps:
        key = tuple(float(t) for t in row)
        classes[key] = classes.get(key, 0) + 1
    L = num_layers
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", float(time_limit_s))
    inf = highspy.kHighsInf
    h.addVar(0.0, inf if upper is None else float(upper))  # column 0: F
    cover: list[list[tuple[int, float]]] = [[] for _ in range(L)]
    class_cols: list[list[int]] = []
    col = 1
    for key, count in classes.items():
        cols = []
        for k, t in enumerate(key, start=1):
            if t <= 0 or k > L:
                continue
            for s in range(L - k + 1):
                h.addVar(0.0, float(count))
                cols.append(col)
                for layer in range(s, s + k):
                    cover[layer].append((col, t))
                col += 1
        class_cols.append(cols)
    h.changeColsIntegrality(col - 1, np.arange(1, col, dtype=np.int32),
                            np.full(col - 1, highspy.HighsVarType.kInteger))
    for layer in range(L):  # sum T n - F >= 0
        idx = np.array([0] + [c for c, _ in cover[layer]], dtype=np.int32)
        val = np.array([-1.0] + [t for _, t in cover[layer]])
        h.addRow(0.0, inf, len(idx), idx, val)
    for (_key, count), cols in zip(classes.items(), class_cols, strict=True):
        h.addRow(-inf, float(count), len(cols), np.array(cols, dtype=np.int32), np.ones(len(cols)))
    h.changeColCost(0, 1.0)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    t0 = time.perf_counter()
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    best = float(info.objective_function_value) if info.primal_solution_status == 2 else 0.0
    bound = float(info.mip_dual_bound)  # HiGHS stops at a relative gap of 1e-4: the dual bound, not the incumbent
    return LayerCutBound(bound, best, status, time.perf_counter() - t0, L + len(classes), col)
