"""`llmsched place` says which bound proves what (issue 15 item 14): a solver that hit its time limit
never makes a plan "proven optimal" on its own, and the solver's own bound is reported under its own
name, apart from the coverage bound."""

from __future__ import annotations

import json

from llmsched.experiments.cli import main
from llmsched.theory.placement.solve import optimality


def test_coverage_bound_proves_optimality_whatever_the_solver_said():
    milp = {"solver": "highs", "status": "Time limit reached", "solver_bound": 112154.0,
            "solver_bound_scope": "full problem"}
    v = optimality(2045.64, 2045.64, milp)
    assert v["proven_optimal"] and v["proof"] == "coverage bound"
    assert "coverage bound" in v["optimality"]


def test_time_limit_without_a_reaching_bound_is_not_optimal():
    # the solver stopped at its time limit with a dual bound far above the plan: nothing is proven
    milp = {"solver": "highs", "status": "Time limit reached", "solver_bound": 3000.0,
            "solver_bound_scope": "full problem"}
    v = optimality(2000.0, 2800.0, milp)
    assert not v["proven_optimal"]
    # gap to the best upper bound min(2800, 3000) = 2800: (2800 - 2000) / 2000 = 40.00%
    assert "40.00%" in v["optimality"] and "Time limit reached" in v["optimality"]


def test_a_pruned_solver_bound_proves_nothing_about_the_full_problem():
    milp = {"solver": "highs", "status": "Optimal", "solver_bound": 2000.0,
            "solver_bound_scope": "pruned problem (8 fastest links per node)"}
    v = optimality(2000.0, 2800.0, milp)
    assert not v["proven_optimal"]
    full = dict(milp, solver_bound_scope="full problem")
    assert optimality(2000.0, 2800.0, full)["proof"] == "highs bound"


def test_place_summary_names_the_bounds(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["place", "--cluster", "single24", "--method", "milp", "--time-limit", "4", "--quiet",
                 "--no-figure", "--out", str(out)]) in (0, 1)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert "milp_bound_tok_s" not in summary
    assert {"milp_solver_bound_tok_s", "milp_status", "optimality", "proven_optimal"} <= set(summary)
    if summary["proven_optimal"]:
        assert summary["optimality"].startswith("proven optimal:")
    if summary["milp_status"] != "Optimal" and summary["proven_optimal"]:
        assert "coverage bound" in summary["optimality"]
