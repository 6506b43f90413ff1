"""The placement plan simulator runs on the simulator's one event queue (`llmsched.sim.events`).

The numbers below were recorded from the plan simulator as it was before the move (its own heapq
loop, commit e9c3252) on this exact run; the queue keeps the same (time, insertion) order, so the
run must reproduce them bit for bit. The run uses the separate prompt and decode caps
("typical-split"), the batching rule of that time.
"""

from __future__ import annotations

from llmsched.theory.placement.flow import FastFlow, make_problem
from llmsched.theory.placement.heuristic import best_stage_plan
from llmsched.theory.placement.io import load_cluster
from llmsched.theory.placement.profiles import infinite_network_bound
from llmsched.theory.placement.simulate import simulate_plan
from llmsched.theory.placement.spec import MODELS


def test_plan_simulation_numbers_are_preserved_on_the_shared_event_queue():
    p = make_problem(load_cluster("single24"), MODELS["llama-2-70b"])
    plc, _ = best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, 80))
    r = simulate_plan(p, plc, duration_s=90.0, warmup_s=30.0, kv_fraction=1.0, length_cv=0.5, seed=1,
                      batch_limit="typical-split")
    assert (r.total_tok_s, r.prompt_tok_s, r.decode_tok_s, r.completed_requests) == (
        1883.2666666666669, 1615.3833333333334, 267.8833333333333, 11)
    assert r.admitted_mean_lengths == (719.0029850746268, 234.69402985074626)
