"""Check a placement against Helix's own saved MILP (`ilp_model.lp.gz`, Gurobi LP format).

Reads the model with highspy, writes our plan (start_i, hold_i_k, flow_u_v, switch_u_v) into its
columns, and reports the largest row/bound violation and the objective. An independent check
that our plans are feasible in the authors' model, not only in our re-derivation of it.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from llmsched.theory.placement.flow import FlowProblem, Placement, enabled, solve_flow


def check_in_helix_lp(lp_gz: str | Path, p: FlowProblem, plc: Placement) -> dict:
    """{'feasible', 'max_violation', 'objective', 'missing_links'} for plan `plc` in the model;
    the flow is the max flow of `plc` over the links the model keeps (Helix pruned some)."""
    import highspy

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.lp"
        path.write_bytes(gzip.decompress(Path(lp_gz).read_bytes()))
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.readModel(str(path))
    lp = h.getLp()
    idx = {n: i for i, n in enumerate(lp.col_names_)}
    x = np.zeros(lp.num_col_)
    # route the max flow only over links the (possibly pruned) model has
    kept = [e for e in p.edges if f"flow_{e[0]}_{e[1]}" in idx]
    p = FlowProblem(p.cluster, p.model, p.caps, kept, p.capacity_model)
    res = solve_flow(p, plc)
    missing = []
    for i, (s, k) in plc.items():
        x[idx[f"start_{i}"]] = s
        x[idx[f"hold_{i}_{k}"]] = 1.0
    for (u, v), f in res.edge_flow.items():
        name = f"flow_{u}_{v}"
        if name in idx:
            x[idx[name]] = f
        else:
            missing.append([u, v, f])
    for name, j in idx.items():
        if name.startswith("switch_"):
            _, u, v = name.split("_")
            uu = u if u == "source" else int(u)
            vv = v if v == "sink" else int(v)
            x[j] = 1.0 if enabled(p, plc, uu, vv) else 0.0
    a = lp.a_matrix_
    m = sp.csc_matrix((a.value_, a.index_, a.start_), shape=(lp.num_row_, lp.num_col_))
    ax = m @ x
    viol_rows = np.maximum(np.array(lp.row_lower_) - ax, 0) + np.maximum(ax - np.array(lp.row_upper_), 0)
    viol_cols = np.maximum(np.array(lp.col_lower_) - x, 0) + np.maximum(x - np.array(lp.col_upper_), 0)
    worst = float(max(viol_rows.max(initial=0.0), viol_cols.max(initial=0.0)))
    obj = float(np.dot(lp.col_cost_, x))
    return {"feasible": worst <= 1e-6 * max(1.0, abs(obj)) and not missing, "max_violation": worst,
            "objective": obj, "missing_links": missing, "rows": lp.num_row_, "cols": lp.num_col_}
