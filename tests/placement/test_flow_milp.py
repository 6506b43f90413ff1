"""Max flow, min cut, the MILP (pulp/HiGHS and CBC), the cvxpy cross-check, and brute force agree."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsched.theory.placement.cvx_check import solve_cvxpy
from llmsched.theory.placement.flow import FastFlow, solve_flow
from llmsched.theory.placement.milp import solve_milp
from llmsched.theory.placement.profiles import coverage_bound, infinite_network_bound
from llmsched.theory.placement.toy import all_placements, brute_force, toy_problem

# 3 nodes, 4 layers. T_i(k) decreasing in k, as for real GPUs.
CAPS = [[90.0, 40.0, 25.0], [60.0, 28.0], [50.0, 26.0, 16.0]]


def test_pipeline_flow_is_min_capacity_and_cut_certifies():
    p = toy_problem(CAPS, 4)
    plc = {0: (0, 2), 1: (2, 1), 2: (3, 1)}  # chain 0 -> 1 -> 2: caps 40, 60, 50
    r = solve_flow(p, plc)
    assert r.value == pytest.approx(40.0)  # hand-derived: min(40, 60, 50)
    assert r.cut_value == pytest.approx(40.0)
    assert r.cut_edges == [(("start", 0), ("end", 0))]


def test_link_capacity_binds():
    p = toy_problem(CAPS, 4, slow_links={(0, 1): 7.0})
    r = solve_flow(p, {0: (0, 2), 1: (2, 1), 2: (3, 1)})
    assert r.value == pytest.approx(7.0)  # the 0 -> 1 link carries 7 tokens/s


def test_non_chaining_placement_has_zero_flow():
    p = toy_problem(CAPS, 4)
    assert solve_flow(p, {0: (0, 2), 1: (3, 1), 2: (1, 1)}).value == 0.0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=3, max_size=3))
def test_fastflow_matches_networkx_and_bounds(spec):
    p = toy_problem(CAPS, 4)
    plc = {}
    for i, (s, k) in enumerate(spec):
        k = min(k, p.max_layers(i), 4 - s)
        if k >= 1:
            plc[i] = (s, k)
    v = solve_flow(p, plc).value
    assert FastFlow(p, scale=1e6).value(plc) == pytest.approx(v, abs=1e-4)
    assert v <= coverage_bound(p.caps, 4) + 1e-6 <= infinite_network_bound(p.caps, 4) + 2e-6


def test_milp_cvxpy_and_brute_force_agree():
    p = toy_problem(CAPS, 4)
    best, _ = brute_force(p)
    r = solve_milp(p, 30.0, progress=False)
    assert r.objective == pytest.approx(best, rel=1e-6)
    assert solve_flow(p, r.placement).value == pytest.approx(best, rel=1e-6)
    r_cbc = solve_milp(p, 30.0, solver="cbc", progress=False)
    assert r_cbc.objective == pytest.approx(best, rel=1e-6)
    v_cvx, plc_cvx = solve_cvxpy(p)
    assert v_cvx == pytest.approx(best, rel=1e-6)
    assert solve_flow(p, plc_cvx).value == pytest.approx(best, rel=1e-6)


def test_milp_with_slow_link_agrees_with_brute_force():
    p = toy_problem(CAPS, 4, slow_links={(0, 1): 3.0, (0, 2): 5.0})
    best, _ = brute_force(p)
    assert solve_milp(p, 30.0, progress=False).objective == pytest.approx(best, rel=1e-6)
    assert solve_cvxpy(p)[0] == pytest.approx(best, rel=1e-6)


def test_milp_accepts_warm_start_and_never_goes_below_it():
    p = toy_problem(CAPS, 4)
    warm = {0: (0, 2), 1: (2, 1), 2: (3, 1)}
    r = solve_milp(p, 10.0, warm_start=warm, progress=False)
    assert r.objective >= solve_flow(p, warm).value - 1e-6


def test_brute_force_enumerates_everything():
    p = toy_problem(CAPS, 4)
    # per node: sum_k (L - k + 1) options = 4+3+2, 4+3, 4+3+2 -> 9 * 7 * 9
    assert sum(1 for _ in all_placements(p)) == 9 * 7 * 9


def test_partial_inference_milp_matches_brute_force():
    # an instance (found by random search) where slow links make exact chaining costly and
    # overlapping ranges (partial inference) pay off: brute force gives 67 vs 51 tokens/s
    p = toy_problem([[69.0, 67.0, 5.0], [82.0], [95.0, 77.0, 45.0]], 4,
                    slow_links={(0, 2): 36.0, (1, 2): 51.0})
    best_partial, _ = brute_force(p, partial=True)
    best_exact, _ = brute_force(p)
    assert best_partial > best_exact + 1.0
    r = solve_milp(p, 30.0, progress=False, partial_inference=True)
    assert r.objective == pytest.approx(best_partial, rel=1e-6)
    assert solve_flow(p, r.placement, partial=True).value == pytest.approx(best_partial, rel=1e-6)
