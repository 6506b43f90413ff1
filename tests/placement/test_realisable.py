"""The realisable capacity model (issue 19 item 1): length moments equal the simulator's draw, the
bandwidth-delay x KV caps never exceed Helix's T_i(k), bind only where round trips are long, fall
as latency grows, and the checker certifies a realisable plan and rejects one whose recorded
capacity is Helix's T_i(k) instead of its realisable cap (negative control)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llmsched.experiments.cli import main
from llmsched.proofs_check.placement import check_placement
from llmsched.theory.placement import baselines
from llmsched.theory.placement.flow import FastFlow, make_problem, placement_node_caps, solve_flow
from llmsched.theory.placement.io import load_cluster
from llmsched.theory.placement.realisable import length_moments
from llmsched.theory.placement.simulate import MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS, _PlanRun
from llmsched.theory.placement.spec import MODELS, Link

M = MODELS["llama-2-70b"]


@pytest.mark.parametrize("cv", [0.0, 0.5, 1.0])
def test_length_moments_match_the_simulators_draw(cv):
    p = make_problem(load_cluster("single24"), M)
    run = _PlanRun(p, {0: (0, 1)}, 1.0, 0.5, 750, 240, 1.0, cv, 3, 1, "profile", None)
    draws = np.array([run.draw_request() for _ in range(40_000)], dtype=float)
    P, D = draws[:, 0], draws[:, 1]
    m = length_moments(cv, 750, 240, MAX_PROMPT_TOKENS, MAX_OUTPUT_TOKENS)
    assert m.e_tokens == pytest.approx(np.mean(P + D), rel=0.01)
    assert m.e_tokens_passes == pytest.approx(np.mean((P + D) * (D + 1)), rel=0.02)
    assert m.e_tokens_prompt == pytest.approx(np.mean((P + D) * P), rel=0.02)
    assert m.e_prompt_sq == pytest.approx(np.mean(P * P), rel=0.02)


def _swarm(cluster_name: str, **kw):
    c = load_cluster(cluster_name)
    ph = make_problem(c, M)
    pr = make_problem(c, M, capacity_model="realisable", **kw)
    return ph, pr, baselines.BASELINES["swarm"](ph)


@pytest.mark.parametrize("cluster_name", ["single24", "3cluster24"])
def test_caps_never_exceed_helix_and_fast_flow_agrees(cluster_name):
    ph, pr, plc = _swarm(cluster_name)
    caps = placement_node_caps(pr, plc)
    for i, (_s, k) in plc.items():
        assert caps[i] <= ph.node_cap(i, k) * (1 + 1e-12)
    real, helix = solve_flow(pr, plc).value, solve_flow(ph, plc).value
    assert real <= helix * (1 + 1e-12)
    # the fixed point follows the link loads of whichever maximum flow the solver returns, so the
    # search's scipy evaluator and the reported networkx value may differ slightly
    assert FastFlow(pr).value(plc) == pytest.approx(real, rel=0.02)


def test_binds_only_with_long_round_trips():
    """single24 (1 ms links): Swarm's max flow is untouched; 3cluster24 (50 ms cross-region links,
    12.5 MB/s): the KV held over the longer round trips cuts it."""
    ph, pr, plc = _swarm("single24")
    assert solve_flow(pr, plc).value == pytest.approx(solve_flow(ph, plc).value, rel=1e-9)
    ph, pr, plc = _swarm("3cluster24")
    assert solve_flow(pr, plc).value < 0.97 * solve_flow(ph, plc).value


def test_falls_as_latency_grows():
    c = load_cluster("single24")
    vals = []
    for lat in (0.001, 0.05, 0.2):
        cl = replace(c, links=tuple(Link(ln.src, ln.dst, ln.bandwidth_Bps, lat) for ln in c.links))
        pr = make_problem(cl, M, capacity_model="realisable")
        plc = baselines.BASELINES["swarm"](make_problem(cl, M))
        vals.append(solve_flow(pr, plc).value)
    assert vals[0] > vals[1] > vals[2] > 0


def test_longer_requests_need_more_kv():
    """Length variability raises E[(P+D)(D+1)] / E[P+D] (long outputs hold more KV for longer)."""
    _ph, pr0, plc = _swarm("3cluster24")
    pr5 = make_problem(pr0.cluster, M, capacity_model="realisable", length_cv=0.5)
    assert solve_flow(pr5, plc).value < solve_flow(pr0, plc).value


@pytest.fixture(scope="module")
def realisable_plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "swarm3c"
    assert main(["place", "--cluster", "3cluster24", "--method", "swarm", "--capacity-model", "realisable",
                 "--out", str(out), "--quiet", "--no-figure"]) == 0
    return out


def test_checker_certifies_a_realisable_plan(realisable_plan):
    v = check_placement(realisable_plan)
    assert v.ok, str(v)
    plan = json.loads((realisable_plan / "plan.json").read_text())
    assert plan["capacity_model"] == "realisable"
    used = [n for n in plan["nodes"] if n["layers"]]
    assert any(n["capacity_tok_s"] < 0.97 * n["helix_capacity_tok_s"] for n in used)


def test_checker_rejects_helix_capacity_in_a_realisable_plan(realisable_plan, tmp_path):
    d = tmp_path / "inflated"
    d.mkdir()
    for f in ("plan.json", "flow.csv", "cut.json"):
        (d / f).write_text((realisable_plan / f).read_text())
    plan = json.loads((d / "plan.json").read_text())
    node = next(n for n in plan["nodes"] if n["layers"] and n["capacity_tok_s"] < 0.97 * n["helix_capacity_tok_s"])
    node["capacity_tok_s"] = node["helix_capacity_tok_s"]
    (d / "plan.json").write_text(json.dumps(plan))
    v = check_placement(d)
    assert not v.ok
    assert "realisable cap" in v.summary


def _chain(tmp_path, slow_Bps: float, latency_s: float = 0.05):
    """7 A100s in a chain; node 2 -> node 3 is a slow geo link (slow_Bps, latency_s)."""
    from llmsched.theory.placement.io import read_toml_cluster

    f = tmp_path / "chain.toml"
    f.write_text(f'name = "chain"\n[[nodes]]\ngpu = "A100"\ncount = 7\nvram_bytes = 40e9\n'
                 f'[links]\nbandwidth_Bps = 1e9\nlatency_s = 0.001\n'
                 f'[[links.override]]\nsrc = 2\ndst = 3\nbandwidth_Bps = {slow_Bps}\nlatency_s = {latency_s}\n')
    plc = {0: (0, 12), 1: (12, 12), 2: (24, 12), 3: (36, 11), 4: (47, 11), 5: (58, 11), 6: (69, 11)}
    return read_toml_cluster(f), plc


def test_a_fifo_link_is_never_planned_at_full_load(tmp_path):
    """Helix's max flow loads the slow link to its bandwidth; a FIFO link at utilisation 1 has an
    unbounded queue, so the realisable flow stays strictly below it, and the scale it picks is the
    largest at which every node's KV cap holds with the Pollaczek-Khinchine waits of that load."""
    from llmsched.theory.placement.realisable import kv_caps

    c, plc = _chain(tmp_path, 12.5e6)
    ph, pr = make_problem(c, M), make_problem(c, M, capacity_model="realisable")
    helix = solve_flow(ph, plc)
    assert helix.value == pytest.approx(12.5e6 / 16384)  # the slow link binds: bandwidth / activation bytes
    real = solve_flow(pr, plc)
    assert 0 < real.value < 0.97 * helix.value
    lc = {(u, v): cap for u, v, cap, _lt in pr.edges}
    t = real.value / helix.value
    loads = {e: t * f for e, f in helix.edge_flow.items()}
    caps = kv_caps(pr, plc, loads, lc)
    assert all(t * helix.node_flow[i] <= caps[i] * (1 + 1e-9) for i in plc)  # feasible at t
    more = {e: 1.001 * f for e, f in loads.items()}
    caps_more = kv_caps(pr, plc, more, lc)
    assert any(1.001 * t * helix.node_flow[i] > caps_more[i] for i in plc)  # and not beyond it


def test_simulated_link_is_fifo_per_request_message(tmp_path):
    """The plan simulator sends one message per request item over a link, back to back (FIFO), as
    Helix's prototype does (one ZeroMQ socket per next hop, `output_sockets[next_server_id]->send`
    per request in `llm_sys/comm/src/compute_worker.h`, sender_thread): a decode queued behind a
    750-token prompt on the 12.5 MB/s link arrives after the prompt's whole transfer."""
    c, plc = _chain(tmp_path, 12.5e6)
    p = make_problem(c, M)
    run = _PlanRun(p, plc, 10.0, 0.0, 750, 240, 1.0, 0.0, 0, 4, "typical", None)
    run.send(0.0, 2, 3, [(0, 750, True)])
    run.send(0.0, 2, 3, [(1, 1, False)])
    arrivals = {}
    while run.events:
        (t,), (_kind, (_v, items)) = run.events.pop()
        arrivals[items[0][0]] = t
    s = 16384 / 12.5e6  # seconds per activation token on the slow link
    assert arrivals[0] == pytest.approx(750 * s + 0.05)
    assert arrivals[1] == pytest.approx(751 * s + 0.05)  # waited for the prompt's transfer


def test_checker_rejects_helix_flow_labelled_realisable(tmp_path):
    """Negative control: Swarm's Helix-model max flow on 3cluster24, relabelled as a realisable plan
    (caps set to its own node flows, so only the KV check can object), is not realisable: some node's
    flow exceeds its KV cap at the waits that very flow causes."""
    out = tmp_path / "helix3c"
    assert main(["place", "--cluster", "3cluster24", "--method", "swarm", "--out", str(out), "--quiet",
                 "--no-figure"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    plan.update(capacity_model="realisable", length_cv=0.0, kv_fraction=1.0)
    for n in plan["nodes"]:
        if n["layers"]:
            n["capacity_tok_s"] = n["flow_tok_s"]
    (out / "plan.json").write_text(json.dumps(plan))
    v = check_placement(out)
    assert not v.ok
    assert "exceeds its realisable cap" in v.summary, v.summary
