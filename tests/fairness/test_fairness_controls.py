"""Negative controls (the checkers catch policies that break the bounds), the Thm 4.8 lower bound
being reached, the CLI acceptance check, and metamorphic relations between policies."""

from __future__ import annotations

import numpy as np
import pytest
from fairness_sim import COST, run_saved, scenarios
from hypothesis import given, settings

from llmsched.experiments.cli import main as cli
from llmsched.experiments.reproductions._vtc_suites import dist_shift, flooding
from llmsched.proofs_check import fairness as fc
from llmsched.proofs_check._service_log import SavedRun
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, freeze_params
from llmsched.sim.run import simulate
from llmsched.sim.workload.core import Workload
from llmsched.theory import fairness as bounds

M_FLOOD = 1000


def _run(w: Workload, policy: str, M: int, **params):
    spec = InstanceSpec(batching=policy, batching_params=freeze_params(params),
                        kv_capacity_tokens=M, block_size=1, token_budget=2048)
    cluster = ClusterSpec(instances=(spec,))
    cfg = RunConfig(cluster=cluster).to_dict()
    res = simulate(w, cluster, cost_models=[COST], config=cfg)
    return SavedRun(res.service, res.requests, res.timeline, cfg), res


# ------------------------------------------------------------------------ Thm 4.8 flooding
def test_flooding_fcfs_breaks_2u_vtc_does_not_and_reaches_lower_bound():
    w = flooding(M_FLOOD)
    fcfs, _ = _run(w, "fcfs", M_FLOOD, admission="reserve")
    v = fc.check_backlogged_pair(fcfs)
    assert not v.ok and {v.witness["client_f"], v.witness["client_g"]} == {0, 1}
    assert v.witness["difference"] > v.witness["bound"]
    vtc, _ = _run(w, "vtc", M_FLOOD, admission="reserve")
    v = fc.check_backlogged_pair(vtc)
    assert v.ok
    # Thm 4.8: client 0's ten requests fill M before client 1 arrives; while 1 waits, they
    # generate 10 × 99 outputs: W_0 − W_1 = 2 · 990 = 1980 = 0.99 · w_q·M, within 2U = 4000.
    lower = bounds.work_conserving_lower_bound(bounds.ServiceScale(1, 2, 1, M_FLOOD))
    assert v.details["worst"]["difference"] >= 0.99 * lower


def test_cli_acceptance(tmp_path, capsys):
    w = flooding(M_FLOOD)
    for policy, code in (("fcfs", 1), ("vtc", 0)):
        _, res = _run(w, policy, M_FLOOD, admission="reserve")
        d = res.save(tmp_path / policy)
        assert cli(["check", "vtc-2u", str(d)]) == code
        out = capsys.readouterr().out
        assert ("witness" in out) == (code == 1), out


# ------------------------------------------------------------------ three-phase dist_shift
@pytest.fixture(scope="module")
def shift_workload():
    # phases of 30 s (time × 0.1, rates × 10), 32/32 tokens, cut after phase 2 (45 s); with
    # M = 192 the server runs ~8 req/s, so both clients are backlogged in phase 2
    return dist_shift(np.random.default_rng(0), time_scale=0.1, prompt=32, output=32).until(45)


@pytest.mark.parametrize("policy", ["fcfs", "lcf", "vtc-nolift"])
def test_dist_shift_breaks_2u_without_lift(shift_workload, policy):
    run, _ = _run(shift_workload, policy, 192, **({} if policy == "fcfs" else {"admission": "reserve"}))
    v = fc.check_backlogged_pair(run)
    assert not v.ok
    assert v.witness["difference"] > 4 * v.witness["bound"]
    assert not fc.check_counter_gap(run).ok


def test_dist_shift_vtc_holds(shift_workload):
    run, _ = _run(shift_workload, "vtc", 192, admission="reserve")
    for check in (fc.check_counter_gap, fc.check_backlogged_pair, fc.check_backlogged_vs_any,
                  fc.check_work_conservation):
        assert check(run).ok


def test_artifact_lift_breaks_bound_paper_lift_does_not():
    # client 0 is served alone (its counter grows), its queue empties; client 1 then arrives to
    # an empty queue: the paper lifts it to client 0's counter, the artifact does not, and then
    # serves client 1 alone while both wait until its counter catches up.
    n0, n1 = 30, 30
    arr = np.concatenate([np.zeros(n0), np.full(n1, 2.0), np.full(n1, 2.001)])
    cl = np.concatenate([np.zeros(n0, int), np.ones(n1, int), np.zeros(n1, int)])
    n = len(arr)
    w = Workload(arrival_s=arr, client=cl, prompt_tokens=np.full(n, 8), output_tokens=np.full(n, 8))
    # M = 64: four requests at once; client 0's first 30 take ~8 rounds of ~0.1 s, done before t=2
    paper, _ = _run(w, "vtc", 64, admission="reserve")
    assert fc.check_backlogged_pair(paper).ok and fc.check_counter_gap(paper).ok
    artifact, _ = _run(w, "vtc", 64, admission="reserve", lift="artifact")
    v = fc.check_backlogged_pair(artifact)
    assert not v.ok
    assert not fc.check_counter_gap(artifact, lift="artifact").ok


# ------------------------------------------------------------------------ work conservation
def test_rpm_is_not_work_conserving():
    n = 20
    w = Workload(arrival_s=np.zeros(n), client=np.zeros(n, int), prompt_tokens=np.full(n, 8),
                 output_tokens=np.full(n, 4))
    run, res = _run(w, "rpm", 512, limit=5, window_s=10.0)
    assert res.summary["num_finished"] == n  # held requests are served in later windows
    v = fc.check_work_conservation(run)
    assert not v.ok and v.witness["kind"] in ("idle", "under-filled")
    run, _ = _run(w, "fcfs", 512)
    assert fc.check_work_conservation(run).ok


# ------------------------------------------------------------------------ metamorphic
def _same_schedule(a, b):
    for col in ("dispatch_s", "first_token_s", "finish_s"):
        assert np.array_equal(a.requests[col].to_numpy(), b.requests[col].to_numpy()), col


@settings(max_examples=100)
@given(scenarios(max_clients=5))
def test_scaling_h_leaves_schedule_unchanged(sc):
    _, a = run_saved(sc, "vtc-h", cost="profiled", admission="reserve")
    _, b = run_saved(sc, "vtc-h", cost="profiled", scale=8.0, admission="reserve")
    _same_schedule(a, b)


@settings(max_examples=100)
@given(scenarios(max_clients=5))
def test_weighted_vtc_with_equal_weights_is_vtc(sc):
    _, a = run_saved(sc, "vtc", admission="reserve")
    _, b = run_saved(sc, "vtc-weighted", admission="reserve")
    _same_schedule(a, b)
    w2 = sc.workload.with_columns(client_weight=np.full(sc.workload.n_clients, 2.0))
    _, c = run_saved(type(sc)(w2, *list(sc.__dict__.values())[1:]), "vtc-weighted", admission="reserve")
    _same_schedule(a, c)


@settings(max_examples=100)
@given(scenarios(max_clients=5, prefixes=True))
def test_dlpm_with_infinite_quantum_is_lpm(sc):
    _, a = run_saved(sc, "lpm")
    _, b = run_saved(sc, "dlpm", quantum=float("inf"))
    _same_schedule(a, b)


@settings(max_examples=60)
@given(scenarios(max_clients=5))
def test_general_cost_with_linear_h_is_vtc(sc):
    _, a = run_saved(sc, "vtc", admission="reserve")
    _, b = run_saved(sc, "vtc-h", cost="linear", admission="reserve")
    _same_schedule(a, b)


# ------------------------------------------------------------------------ DLPM negative control
def _locality_flood(n: int = 100) -> Workload:
    """Client 0's prompts share a 48-token prefix (cached after its first request), client 1's
    share nothing; both flood at t≈0. LPM keeps serving the cached client."""
    hb = 16
    arr = np.concatenate([np.zeros(n), np.full(n, 1e-3)])
    cl = np.concatenate([np.zeros(n, int), np.ones(n, int)])
    offs, vals = [0], []
    for i in range(2 * n):
        vals.extend([7, 8, 9, 100 + i] if i < n else [10_000 + 4 * i + j for j in range(4)])
        offs.append(len(vals))
    o = np.argsort(arr, kind="stable")
    hashes = [vals[offs[i]:offs[i + 1]] for i in o]
    offs2 = np.concatenate([[0], np.cumsum([len(h) for h in hashes])])
    return Workload(arrival_s=arr[o], client=cl[o], prompt_tokens=np.full(2 * n, 64),
                    output_tokens=np.full(2 * n, 8), hash_offsets=offs2,
                    hash_values=np.concatenate(hashes), hash_block_tokens=hb)


def test_lpm_breaks_dlpm_bound_dlpm_does_not(tmp_path):
    w = _locality_flood()
    quantum = 16.0
    lpm, _ = _run(w, "lpm", 256, admission="reserve")
    v = fc.check_dlpm_bound(lpm, quantum=quantum)
    assert not v.ok and v.witness["difference"] > v.witness["bound"]
    dl, res = _run(w, "dlpm", 256, admission="reserve", quantum=quantum)
    assert fc.check_dlpm_bound(dl).ok  # Q_u read from the run's config
    d = res.save(tmp_path / "dlpm")
    assert cli(["check", "dlpm-bound", str(d)]) == 0
    assert cli(["check", "vtc-u", str(d), "-o", "lift=none"]) in (0, 1)  # options parse


def test_flooding_longer_fcfs_breaks_4u():
    # twice the flood: FCFS serves client 0's 80 requests while client 1 waits:
    # W_0 − W_1 grows to ~80 × (1 + 2·99) ≫ 4U = 8000
    run, _ = _run(flooding(M_FLOOD, n_each=80), "fcfs", M_FLOOD, admission="reserve")
    v = fc.check_backlogged_vs_any(run)
    assert not v.ok and v.witness["client_f"] == 1 and v.witness["client_g"] == 0
