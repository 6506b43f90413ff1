"""Readers and T_i(k): Helix's own published numbers are reproduced from the copied profiles."""

from pathlib import Path

import pytest

from llmsched.sim.errors import InputError
from llmsched.theory.placement.flow import make_problem, solve_flow
from llmsched.theory.placement.io import (
    DATA_DIR,
    eval_units,
    load_cluster,
    read_helix_layout,
    read_toml_cluster,
    write_helix_layout,
)
from llmsched.theory.placement.profiles import coverage_bound, infinite_network_bound
from llmsched.theory.placement.spec import MODELS

M70 = MODELS["llama-2-70b"]


def test_units_are_bytes_per_second():
    # Helix utils.py: mbps = 1000*1000 (bytes), MilliSec = 0.001; README units note
    assert eval_units("1000 * mbps") == 1e9
    assert eval_units("12.5*mbps") == 12.5e6
    assert eval_units("10 * gbps") == 1e10
    assert eval_units("55 * MilliSec") == pytest.approx(0.055)
    with pytest.raises(InputError):
        eval_units("__import__('os')")


def test_single24_reader():
    c = load_cluster("single24")
    assert c.n == 24 and c.type_counts() == {"L4": 8, "T4": 12, "A100": 4}
    # 276 GPU pairs + 24 source + 24 sink links (reference README)
    assert len(c.links) == 324
    assert all(ln.bandwidth_Bps == 1e9 and ln.latency_s == pytest.approx(1e-3) for ln in c.links)


@pytest.mark.parametrize("name,helix_objective", [
    # Helix Gurobi objectives, ilp_solution.sol line 2 (shared/reference README "Quick regression numbers")
    ("single24", 1289.5557702751735),
    ("3cluster24", 1212.1768454598214),
    ("cluster42", 4137.5475853976423),
])
def test_helix_solution_max_flow_reproduced(name, helix_objective):
    c = load_cluster(name)
    p = make_problem(c, M70)
    plc = read_helix_layout(DATA_DIR / "layouts" / name / "ilp_sol.ini", c.n)
    assert solve_flow(p, plc).value == pytest.approx(helix_objective, rel=1e-6)


def test_infinite_network_bound_matches_helix_readme():
    # Helix readme L107: "Max compute throughput = 2803.86" for single24 / LLaMA-2-70B
    p = make_problem(load_cluster("single24"), M70)
    assert infinite_network_bound(p.caps, 80) == pytest.approx(2803.860988272896, rel=1e-9)
    assert coverage_bound(p.caps, 80) <= infinite_network_bound(p.caps, 80)


def test_toml_cluster_and_layout_roundtrip(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text('name = "mini"\n[[nodes]]\ngpu = "A100"\ncount = 8\nvram_bytes = 40e9\n'
                 '[links]\nbandwidth_Bps = 1e9\nlatency_s = 0.001\n'
                 '[[links.override]]\nsrc = 0\ndst = 1\nbandwidth_Bps = 1e6\n')
    c = read_toml_cluster(f)
    assert c.n == 8 and len(c.links) == 8 + 28 + 8
    slow = [ln for ln in c.links if {ln.src, ln.dst} == {0, 1}]
    assert slow[0].bandwidth_Bps == 1e6
    plc = {0: (0, 10), 1: (10, 12)}
    write_helix_layout(tmp_path / "l.ini", plc)
    assert read_helix_layout(tmp_path / "l.ini", 8) == plc


def test_bad_inputs_are_input_errors(tmp_path: Path):
    with pytest.raises(InputError):
        load_cluster("nope42")
    bad = tmp_path / "bad.toml"
    bad.write_text("nodes = []\n")
    with pytest.raises(InputError):
        read_toml_cluster(bad)
    lay = tmp_path / "gap.ini"
    lay.write_text("[Settings]\noffset=2\n[Solution]\ncompute_node_2=[0, 1, 3]\n")
    with pytest.raises(InputError):
        read_helix_layout(lay, 4)
