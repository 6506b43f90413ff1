"""`llmsched place` writes a plan that `llmsched check placement` accepts; broken plans are rejected
with a witness (negative controls: gap in layers, over-capacity flow, non-chaining edge)."""

import csv
import json
from pathlib import Path

import pytest

from llmsched.experiments.cli import main
from llmsched.proofs_check.placement import check_placement
from llmsched.proofs_check.registry import checkers


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "swarm24"
    assert main(["place", "--cluster", "single24", "--method", "swarm", "--out", str(out),
                 "--quiet", "--no-figure"]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("plan.json", "flow.csv", "cut.json"):
        (dst / f).write_text((src / f).read_text())
    return dst


def _rows(d: Path):
    with open(d / "flow.csv") as fh:
        return list(csv.DictReader(fh))


def _write_rows(d: Path, rows):
    with open(d / "flow.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_registered_and_valid(plan_dir):
    assert checkers()["placement"].target == "plan"
    v = check_placement(plan_dir)
    assert v.ok, str(v)
    plan = json.loads((plan_dir / "plan.json").read_text())
    # Swarm on single24: 20 stages of 4 layers (the T4 limit) over 24 nodes, so 16 stages hold one node;
    # the slowest single-node stage is a T4, whose T(4) is therefore the max flow
    from llmsched.theory.placement.io import load_cluster
    from llmsched.theory.placement.profiles import typical_capacity_table
    from llmsched.theory.placement.spec import MODELS

    t4 = typical_capacity_table(MODELS["llama-2-70b"], load_cluster("single24").type_counts())["T4"][3]
    assert plan["max_flow_tok_s"] == pytest.approx(t4, rel=1e-9)
    assert plan["max_flow_tok_s"] == pytest.approx(v.details["min_cut_tok_s"])
    assert json.loads((plan_dir / "certificate.json").read_text())["ok"] is True


def test_rejects_gap_in_layers(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path / "gap")
    plan = json.loads((d / "plan.json").read_text())
    node = next(nd for nd in plan["nodes"] if len(nd["layers"]) >= 3)
    node["layers"] = node["layers"][:1] + node["layers"][2:]
    (d / "plan.json").write_text(json.dumps(plan))
    v = check_placement(d)
    assert not v.ok and "non-contiguous" in v.summary
    assert v.witness["node"] == node["index"] and v.witness["missing"]


def test_rejects_over_capacity_flow(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path / "over")
    rows = _rows(d)
    plan = json.loads((d / "plan.json").read_text())
    # push 10x the flow through one whole source-to-sink chain: conservation holds, node caps break
    first = next(r for r in rows if r["src"] == "source" and float(r["flow_tok_s"]) > 0)
    node = int(first["dst"])
    bump = 10 * plan["nodes"][node]["capacity_tok_s"]
    path = [first]
    while path[-1]["dst"] != "sink":
        nxt = next(r for r in rows if r["src"] == path[-1]["dst"] and float(r["flow_tok_s"]) > 0)
        path.append(nxt)
    for r in path:
        r["flow_tok_s"] = str(float(r["flow_tok_s"]) + bump)
    _write_rows(d, rows)
    v = check_placement(d)
    assert not v.ok and "over capacity" in v.summary
    assert v.witness["flow_in"] > v.witness["capacity_T_i_k"]


def test_rejects_non_chaining_edge(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path / "chain")
    plan = json.loads((d / "plan.json").read_text())
    rng = {nd["index"]: (nd["layers"][0], nd["layers"][-1] + 1) for nd in plan["nodes"] if nd["layers"]}
    u, v_ = next((a, b) for a in rng for b in rng if a != b and rng[a][1] != rng[b][0])
    rows = _rows(d)
    rows.append({"src": str(u), "dst": str(v_), "capacity_tok_s": "61035.15625", "flow_tok_s": "1.0",
                 "latency_s": "0.001"})
    _write_rows(d, rows)
    v = check_placement(d)
    assert not v.ok and "do not chain" in v.summary
    assert v.witness["edge"] == [u, v_]


def test_rejects_non_maximal_flow(plan_dir, tmp_path):
    d = _copy(plan_dir, tmp_path / "half")
    rows = _rows(d)
    for r in rows:
        r["flow_tok_s"] = str(float(r["flow_tok_s"]) / 2)
    _write_rows(d, rows)
    v = check_placement(d)
    assert not v.ok and "not a maximum flow" in v.summary
    assert v.witness["recorded"] == pytest.approx(v.witness["max_flow"] / 2)


def test_cli_check_exit_codes(plan_dir, tmp_path):
    assert main(["check", "placement", str(plan_dir)]) == 0
    d = _copy(plan_dir, tmp_path / "bad")
    rows = _rows(d)
    rows[0]["flow_tok_s"] = "-5"
    _write_rows(d, rows)
    assert main(["check", "placement", str(d)]) == 1
    v = check_placement(d)
    assert v.summary == "negative flow" and v.witness["flow"] == -5.0


def test_cli_place_bad_input_exits_2(tmp_path):
    assert main(["place", "--cluster", "nope", "--out", str(tmp_path / "x")]) == 2
    assert main(["place", "--cluster", "single24", "--method", "magic", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("method", ["heuristic", "sp", "sp+", "homogeneous", "petals"])
def test_every_method_writes_a_certified_plan(method, tmp_path):
    out = tmp_path / method
    figure = method == "sp"
    assert main(["place", "--cluster", "single24", "--method", method, "--time-limit", "1",
                 "--out", str(out), "--quiet", *([] if figure else ["--no-figure"])]) == 0
    assert (out / "layout.ini").is_file() and (out / "layout.png").is_file() == figure
    assert check_placement(out).ok


def test_milp_cli_short(tmp_path):
    out = tmp_path / "milp"
    assert main(["place", "--cluster", "single24", "--method", "milp", "--time-limit", "8",
                 "--out", str(out), "--quiet", "--no-figure"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    # beats Helix's Gurobi objective 1289.56 (ilp_solution.sol) and is within the coverage bound
    assert plan["max_flow_tok_s"] > 1289.56
    assert plan["milp"]["rows"] == 1848 and plan["milp"]["cols"] == 1376  # Helix's model size (trace.txt)


def test_checks_capacities_of_the_plans_own_capacity_model(plan_dir, tmp_path):
    """A Helix-capacity plan relabelled as pipelined claims more flow than the pipelined T_i(k)
    allow (Swarm on single24: 757.9 vs 502.5 tokens/s), so the checker must reject it."""
    d = _copy(plan_dir, tmp_path / "relabelled")
    plan = json.loads((d / "plan.json").read_text())
    assert plan["capacity_model"] == "helix"
    plan["capacity_model"] = "pipelined"
    (d / "plan.json").write_text(json.dumps(plan))
    v = check_placement(d)
    assert not v.ok and "over capacity" in v.summary, str(v)
    assert v.witness["flow_in"] > v.witness["capacity_T_i_k"]


@pytest.fixture(scope="module")
def partial_plan_dir(tmp_path_factory) -> Path:
    """Petals on single24 needs partial inference: strict chaining gives it no path at all."""
    out = tmp_path_factory.mktemp("plan") / "petals24"
    assert main(["place", "--cluster", "single24", "--method", "petals", "--partial-inference",
                 "--out", str(out), "--quiet", "--no-figure"]) == 0
    return out


def test_partial_inference_plan_is_certified(partial_plan_dir):
    plan = json.loads((partial_plan_dir / "plan.json").read_text())
    assert plan["partial_inference"] is True and plan["max_flow_tok_s"] > 0
    v = check_placement(partial_plan_dir)
    assert v.ok, str(v)
    # at least one positive-flow edge overlaps (s_v < e_u): the plan really uses partial inference
    rng = {nd["index"]: (nd["layers"][0], nd["layers"][-1] + 1) for nd in plan["nodes"] if nd["layers"]}
    overlaps = [r for r in _rows(partial_plan_dir) if float(r["flow_tok_s"]) > 0
                and r["src"] not in ("source", "sink") and r["dst"] not in ("source", "sink")
                and rng[int(r["dst"])][0] < rng[int(r["src"])][1]]
    assert overlaps


def test_partial_plan_without_the_flag_is_rejected(partial_plan_dir, tmp_path):
    d = _copy(partial_plan_dir, tmp_path / "noflag")
    plan = json.loads((d / "plan.json").read_text())
    plan["partial_inference"] = False
    (d / "plan.json").write_text(json.dumps(plan))
    v = check_placement(d)
    assert not v.ok and "do not chain" in v.summary, str(v)
    assert v.witness["src_layers"][1] != v.witness["dst_layers"][0]


def test_partial_plan_rejects_an_edge_that_skips_layers(partial_plan_dir, tmp_path):
    d = _copy(partial_plan_dir, tmp_path / "skip")
    plan = json.loads((d / "plan.json").read_text())
    rng = {nd["index"]: (nd["layers"][0], nd["layers"][-1] + 1) for nd in plan["nodes"] if nd["layers"]}
    # an edge u -> v with e_u < s_v leaves layers e_u..s_v-1 unserved even with partial inference
    u, v_ = next((a, b) for a in rng for b in rng if a != b and rng[a][1] < rng[b][0])
    rows = _rows(d)
    rows.append({"src": str(u), "dst": str(v_), "capacity_tok_s": "61035.15625", "flow_tok_s": "1.0",
                 "latency_s": "0.001"})
    _write_rows(d, rows)
    v = check_placement(d)
    assert not v.ok and "do not chain" in v.summary, str(v)


def test_simulate_refuses_partial_plans():
    assert main(["place", "--cluster", "single24", "--method", "swarm", "--partial-inference",
                 "--simulate", "10", "--quiet", "--no-figure", "--out", "/nonexistent/never"]) == 2


@pytest.mark.parametrize("breakage", ["empty-plan", "unknown-model", "string-layer", "duplicate-node",
                                      "cut-not-list", "bad-flow-row", "unknown-cluster", "unknown-option"])
def test_malformed_plans_are_input_errors(plan_dir, tmp_path, breakage, capsys):
    """Malformed plan files are bad input (exit 2, one line), not a violated certificate (exit 1)."""
    d = _copy(plan_dir, tmp_path / breakage)
    plan = json.loads((d / "plan.json").read_text())
    extra = []
    if breakage == "empty-plan":
        plan = {}
    elif breakage == "unknown-model":
        plan["model"] = "gpt2"
    elif breakage == "string-layer":
        next(nd for nd in plan["nodes"] if nd["layers"])["layers"] = ["a"]
    elif breakage == "duplicate-node":
        plan["nodes"].append(plan["nodes"][0])
    elif breakage == "cut-not-list":
        (d / "cut.json").write_text("[]")
    elif breakage == "bad-flow-row":
        rows = _rows(d)
        rows[0]["src"] = "x"
        _write_rows(d, rows)
    elif breakage == "unknown-cluster":
        plan["cluster"] = "no-such-cluster"
    elif breakage == "unknown-option":
        extra = ["-o", "foo=1"]
    (d / "plan.json").write_text(json.dumps(plan))
    assert main(["check", "placement", str(d), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
