"""The placement plan directory: what `llmsched place` writes and `llmsched check placement` reads.

Files: `plan.json` (cluster, model, method, per-node explicit layer lists, objective numbers),
`flow.csv` (every directed link of the runtime graph: capacity, flow), `cut.json` (min-cut edges),
`layout.ini` (Helix's layout format), and the figure `layout.png/pdf`. Plain JSON/CSV, SI units.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from llmsched.sim.errors import InputError
from llmsched.theory.placement.flow import FlowProblem, Placement, flow_graph, solve_flow
from llmsched.theory.placement.io import write_helix_layout
from llmsched.theory.placement.spec import SINK, SOURCE

PLAN_VERSION = 1


def write_plan(out_dir: str | Path, p: FlowProblem, plc: Placement, method: str,
               cluster_ref: str, numbers: dict, groups: dict[int, int] | None = None,
               partial_inference: bool = False) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = solve_flow(p, plc, groups, partial_inference)
    nodes = []
    for nd in p.cluster.nodes:
        entry = {"index": nd.index, "gpu_type": nd.gpu_type, "max_layers": p.max_layers(nd.index)}
        if nd.index in plc:
            s, k = plc[nd.index]
            cap = res.node_cap[nd.index] if res.node_cap is not None else p.node_cap(nd.index, k)
            entry.update(layers=list(range(s, s + k)), capacity_tok_s=cap,
                         flow_tok_s=res.node_flow.get(nd.index, 0.0))
            if p.realisable is not None:  # the realisable cap is min(T_i(k), KV cap); T_i(k) beside it
                entry["helix_capacity_tok_s"] = p.node_cap(nd.index, k)
        else:
            entry.update(layers=[], capacity_tok_s=0.0, flow_tok_s=0.0)
        if groups is not None:
            entry["group"] = groups.get(nd.index)
        nodes.append(entry)
    plan = {
        "version": PLAN_VERSION,
        "cluster": cluster_ref,
        "cluster_name": p.cluster.name,
        "model": p.model.name,
        "num_layers": p.L,
        "method": method,
        "partial_inference": bool(partial_inference),
        "capacity_model": p.capacity_model,
        "separate_groups": groups is not None,
        "nodes": nodes,
        "max_flow_tok_s": res.value,
        "min_cut_tok_s": res.cut_value,
        **numbers,
    }
    (out / "plan.json").write_text(json.dumps(plan, indent=2, default=float))
    g = flow_graph(p, plc, groups, partial_inference)
    with open(out / "flow.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["src", "dst", "capacity_tok_s", "flow_tok_s", "latency_s"])
        for u, v, c, lat in p.edges:
            a = SOURCE if u == SOURCE else ("out", u)
            b = SINK if v == SINK else ("in", v)
            f = res.edge_flow.get((u, v), 0.0)
            if g.has_edge(a, b) or f > 0:
                w.writerow([u, v, c, f, lat])
    cut = [[_cut_name(a), _cut_name(b), g[a][b]["capacity"]] for a, b in res.cut_edges]
    (out / "cut.json").write_text(json.dumps({"value_tok_s": res.cut_value, "edges": cut}, indent=2))
    write_helix_layout(out / "layout.ini", plc)
    return plan


def _cut_name(x) -> str:
    return x if isinstance(x, str) else f"{x[0]}:{x[1]}"


def read_plan(plan_dir: str | Path) -> tuple[dict, list[dict], dict]:
    """plan.json, flow.csv rows (floats), cut.json."""
    d = Path(plan_dir)
    for name in ("plan.json", "flow.csv", "cut.json"):
        if not (d / name).is_file():
            raise InputError(str(d), name, "missing", "pass a directory written by `llmsched place`")
    loaded = {}
    for name in ("plan.json", "cut.json"):
        try:
            loaded[name] = json.loads((d / name).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(d / name), "", f"not valid JSON ({exc})",
                             "pass a directory written by `llmsched place`") from None
    plan, cut = loaded["plan.json"], loaded["cut.json"]
    _check_plan_shape(d / "plan.json", plan)
    if not (isinstance(cut, dict) and isinstance(cut.get("edges"), list)
            and all(isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[1], str)
                    for e in cut["edges"])):
        raise InputError(str(d / "cut.json"), "edges", "must be a list of [from, to, capacity] entries",
                         "pass a directory written by `llmsched place`")
    rows = []
    with open(d / "flow.csv", encoding="utf-8", errors="replace") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            try:
                rows.append({
                    "src": r["src"] if r["src"] == SOURCE else int(r["src"]),
                    "dst": r["dst"] if r["dst"] == SINK else int(r["dst"]),
                    "capacity_tok_s": float(r["capacity_tok_s"]),
                    "flow_tok_s": float(r["flow_tok_s"]),
                })
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{d / 'flow.csv'}:{line}", "src/dst/capacity_tok_s/flow_tok_s",
                                 f"unreadable row ({exc})", "node indices are integers, rates are numbers") from None
    return plan, rows, cut


def _check_plan_shape(path: Path, plan) -> None:
    """The fields the checker reads, with the right types (one clear line instead of a traceback)."""
    from llmsched.theory.placement.spec import MODELS

    def bad(field: str, problem: str) -> InputError:
        return InputError(str(path), field, problem, "pass a directory written by `llmsched place`")

    if not isinstance(plan, dict):
        raise bad("(top level)", "must be a JSON object")
    if not isinstance(plan.get("cluster"), str):
        raise bad("cluster", "missing or not a string")
    if plan.get("model") not in MODELS:
        raise bad("model", f"{plan.get('model')!r} is not one of {', '.join(MODELS)}")
    nodes = plan.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise bad("nodes", "missing or empty")
    seen = set()
    for nd in nodes:
        if not (isinstance(nd, dict) and isinstance(nd.get("index"), int) and isinstance(nd.get("layers"), list)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in nd["layers"])):
            raise bad("nodes", f"entry {nd!r} needs an integer index and a list of integer layers")
        if nd["index"] in seen:
            raise bad("nodes", f"node {nd['index']} is listed twice")
        seen.add(nd["index"])

