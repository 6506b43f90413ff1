"""Property tests: VTC never breaks U, 2U, 4U and is work-conserving; DLPM never breaks 2(U+Q_u);
weighted VTC never breaks our U(1/w_f + 1/w_g). Each runs >= 300 generated scenarios."""

from __future__ import annotations

from fairness_sim import run_saved, scenarios
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.proofs_check import fairness as fc


def _ok(v):
    assert v.ok, str(v)


@settings(max_examples=300)
@given(scenarios())
def test_vtc_keeps_all_bounds(sc):
    run, res = run_saved(sc, "vtc", admission="reserve")
    assert int(res.requests["preemptions"].sum()) == 0  # reserve admission is non-preemptive
    assert res.summary["num_finished"] == sc.workload.n
    _ok(fc.check_counter_gap(run))
    _ok(fc.check_backlogged_pair(run))
    _ok(fc.check_backlogged_vs_any(run))
    _ok(fc.check_work_conservation(run))


@settings(max_examples=300)
@given(scenarios(prefixes=True), st.sampled_from([0.05, 1.0, 8.0]))
def test_dlpm_keeps_its_bound(sc, quantum_per_kv_token):
    quantum = quantum_per_kv_token * sc.kv_capacity_tokens  # Q_u from far below U to far above
    run, res = run_saved(sc, "dlpm", admission="reserve", quantum=quantum)
    assert res.summary["num_finished"] == sc.workload.n
    _ok(fc.check_dlpm_bound(run, quantum=quantum))
    _ok(fc.check_work_conservation(run))


@settings(max_examples=300)
@given(scenarios(max_clients=4))
def test_weighted_vtc_keeps_derived_bound(sc):
    weights = [1.0, 2.0, 3.0, 4.0][: sc.workload.n_clients]
    w = sc.workload.with_columns(client_weight=weights)
    sc = type(sc)(w, sc.kv_capacity_tokens, sc.block_size, sc.token_budget, sc.admission_interval)
    run, _ = run_saved(sc, "vtc-weighted", admission="reserve")
    text = ",".join(str(x) for x in weights)
    _ok(fc.check_counter_gap(run, weights=text))
    _ok(fc.check_backlogged_pair(run, weights=text))
