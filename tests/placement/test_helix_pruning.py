"""Issue 19 item 3: Helix's 12-link pruning, re-derived, gives exactly the artifact's pruned link sets,
and `place(prune_keep=...)` searches and certifies plans on that link set."""

from __future__ import annotations

import pytest

from llmsched.theory.placement.flow import helix_prune_edges, make_problem, prune_edges, solve_flow
from llmsched.theory.placement.io import DATA_DIR, load_cluster, read_helix_layout
from llmsched.theory.placement.spec import MODELS, SINK, SOURCE

M70 = MODELS["llama-2-70b"]


@pytest.mark.parametrize("setup", ["3cluster24", "cluster42"])
def test_helix_pruning_equals_the_artifact_pruned_cluster(setup):
    full = load_cluster(setup).directed_edges(M70)
    artifact = {(u, v) for u, v, _, _ in load_cluster(f"{setup}-helixpruned").directed_edges(M70)}
    ours = {(u, v) for u, v, _, _ in helix_prune_edges(full, 12)}
    assert ours == artifact
    assert sum(1 for u, _ in ours if u == SOURCE) == 12 and sum(1 for _, v in ours if v == SINK) == 12
    # negative control: the MILP-shrinking rule keeps every coordinator link, so it differs
    assert {(u, v) for u, v, _, _ in prune_edges(full, 12)} != artifact


def test_helix_layout_keeps_its_objective_and_swarm_loses_its_source_on_the_pruned_graph():
    p = make_problem(load_cluster("3cluster24"), M70)
    p.edges = helix_prune_edges(p.edges, 12)
    n = p.cluster.n
    helix = read_helix_layout(DATA_DIR / "layouts" / "3cluster24" / "ilp_sol.ini", n)
    swarm = read_helix_layout(DATA_DIR / "layouts" / "3cluster24" / "swarm_sol.ini", n)
    assert solve_flow(p, helix).value == pytest.approx(1212.1768454598214, rel=1e-9)
    assert solve_flow(p, swarm).value == 0.0


def test_place_with_prune_searches_and_certifies_the_pruned_space(tmp_path):
    from llmsched.experiments.placement import place

    out = place("3cluster24", method="heuristic", out=tmp_path / "p", time_limit_s=2.0, prune_keep=12,
                figure=False)
    assert out.certificate.ok
    s = out.summary
    assert s["links"].startswith("Helix-pruned, 12") and s["max_flow_full_links_tok_s"] >= s["max_flow_tok_s"] > 0
    p = make_problem(load_cluster("3cluster24"), M70)
    p.edges = helix_prune_edges(p.edges, 12)
    assert solve_flow(p, out.result.placement).value == pytest.approx(s["max_flow_tok_s"], abs=1e-3)
