"""Our single24 plan is feasible in Helix's own saved Gurobi model and beats its objective; the
layer-coverage bound certifies it optimal."""

import pytest

from llmsched.theory.placement.flow import FastFlow, make_problem
from llmsched.theory.placement.helix_lp import check_in_helix_lp
from llmsched.theory.placement.heuristic import best_stage_plan, fill_unused
from llmsched.theory.placement.io import DATA_DIR, load_cluster, read_helix_layout
from llmsched.theory.placement.profiles import coverage_bound, infinite_network_bound
from llmsched.theory.placement.spec import MODELS


def test_single24_plan_in_helix_model_and_optimal():
    p = make_problem(load_cluster("single24"), MODELS["llama-2-70b"])
    plc, v = best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, 80))
    lp = DATA_DIR / "layouts" / "single24" / "ilp_model.lp.gz"
    ours = check_in_helix_lp(lp, p, plc)
    assert ours["feasible"] and ours["rows"] == 1848 and ours["cols"] == 1376
    assert ours["objective"] > 1289.5557702751735 * 1.5  # Helix's Gurobi objective (ilp_solution.sol)
    assert v == pytest.approx(coverage_bound(p.caps, 80), rel=1e-6)  # no plan can do better
    # negative control: Helix's layout is also feasible there, at its own objective
    theirs = check_in_helix_lp(lp, p, fill_unused(p, read_helix_layout(DATA_DIR / "layouts" / "single24"
                                                                       / "ilp_sol.ini", p.n)))
    assert theirs["feasible"] and theirs["objective"] == pytest.approx(1289.5557702751735, rel=1e-6)
    # negative control: capacities doubled on our side -> the routed flow breaks Helix's node caps
    from llmsched.theory.placement.flow import FlowProblem

    inflated = FlowProblem(p.cluster, p.model, [[2 * t for t in c] for c in p.caps], p.edges)
    bad = check_in_helix_lp(lp, inflated, plc)
    assert not bad["feasible"] and bad["max_violation"] > 1000
