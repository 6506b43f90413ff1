"""Issue 19 item 4: local search under a work budget (evaluations) gives the same plan however slow
the machine is; under a wall-clock budget the amount of search, and so the plan, depends on speed."""

from __future__ import annotations

import time

import pytest

from llmsched.theory.placement.flow import FastFlow, make_problem
from llmsched.theory.placement.heuristic import best_stage_plan, local_search
from llmsched.theory.placement.io import load_cluster
from llmsched.theory.placement.profiles import infinite_network_bound
from llmsched.theory.placement.solve import place
from llmsched.theory.placement.spec import MODELS


class _SlowFlow(FastFlow):
    """The same evaluator on a 'loaded machine': every evaluation takes 3 ms longer."""

    def value(self, plc):
        time.sleep(0.003)
        return super().value(plc)


def _start(p):
    return best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, p.L))[0]


def test_work_budget_is_independent_of_machine_speed():
    p = make_problem(load_cluster("3cluster24"), MODELS["llama-2-70b"])
    start = _start(p)
    fast, slow = {}, {}
    a = local_search(p, start, 60.0, seed=3, max_evals=150, ff=FastFlow(p), stats=fast)
    b = local_search(p, start, 60.0, seed=3, max_evals=150, ff=_SlowFlow(p), stats=slow)
    assert fast["evals"] == slow["evals"] == 150 and not fast["hit_time_cap"] and not slow["hit_time_cap"]
    assert a == b


def test_wall_clock_budget_depends_on_machine_speed():
    # negative control: the same search under a 0.5 s wall-clock budget does less work when slow
    p = make_problem(load_cluster("3cluster24"), MODELS["llama-2-70b"])
    start = _start(p)
    fast, slow = {}, {}
    local_search(p, start, 0.5, seed=3, ff=FastFlow(p), stats=fast)
    local_search(p, start, 0.5, seed=3, ff=_SlowFlow(p), stats=slow)
    assert slow["evals"] < fast["evals"]


def test_time_cap_is_reported_when_it_cuts_a_work_budget():
    p = make_problem(load_cluster("3cluster24"), MODELS["llama-2-70b"])
    st: dict = {}
    local_search(p, _start(p), 0.2, seed=0, max_evals=10**9, ff=_SlowFlow(p), stats=st)
    assert st["hit_time_cap"] and st["evals"] < 10**9


def test_place_records_budget_and_rejects_unknown():
    res = place(load_cluster("single24"), MODELS["llama-2-70b"], "heuristic", 2.0, quiet=True)
    assert res.budget == "work"
    with pytest.raises(ValueError):
        place(load_cluster("single24"), MODELS["llama-2-70b"], "heuristic", 2.0, quiet=True, budget="fast")
