"""Checker unit tests on hand-built service logs: positive and negative cases, and the linear-scan
pair algorithm against an independent brute force over all intervals."""

from __future__ import annotations

import itertools

import numpy as np
from fairness_synth import write_run
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.proofs_check import fairness as fc
from llmsched.proofs_check._service_log import load_run
from llmsched.proofs_check.registry import checkers


def test_checkers_registered():
    names = set(checkers())
    assert {"vtc-u", "vtc-2u", "vtc-4u", "work-conservation", "dlpm-bound"} <= names


def _two_backlogged(tmp_path, M):
    # f (client 0) gets 10 prompt tokens at t=0 and 20 outputs by t=5; g (client 1) gets nothing;
    # both wait over [0, 10). By hand: on [0, 10), W_f = 10 + 2*20 = 50, W_g = 0.
    rows = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 1), (0, 1, 0, 10, 0, 1, 1),
            (5, 2, 0, 10, 20, 1, 0), (10, 3, 0, 10, 20, 0), (10, 3, 1, 0, 0, 0)]
    return write_run(tmp_path, rows, M=M, L=10)


def test_pair_bound_fails_with_witness(tmp_path):
    # M = 10, L = 10 -> U = max(10, 20) = 20, 2U = 40 < 50
    v = fc.check_backlogged_pair(_two_backlogged(tmp_path, M=10))
    assert not v.ok
    w = v.witness
    assert (w["client_f"], w["client_g"]) == (0, 1)
    assert w["W_f"] == 50 and w["W_g"] == 0 and w["bound"] == 40
    assert w["interval_s"] == [0.0, 5.0]  # the difference first reaches 50 at t=5


def test_pair_bound_passes(tmp_path):
    # M = 13 -> U = 26, 2U = 52 >= 50
    assert fc.check_backlogged_pair(_two_backlogged(tmp_path, M=13)).ok


def test_dispatch_at_end_of_backlog_not_counted(tmp_path):
    # g's last request is dispatched at t=10, ending its backlog; the 10 prompt tokens are charged
    # at t=10, outside [0, 10). Over [0, 10): W_f = 40 (20 outputs), W_g = 0 -> difference 40.
    rows = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 1), (5, 1, 0, 0, 20, 1, 1),
            (10, 2, 1, 10, 0, 0, 1), (10, 2, 0, 0, 20, 0, 1)]
    v = fc.check_backlogged_pair(write_run(tmp_path, rows, M=10, L=10))
    assert v.details["worst"]["difference"] == 40


def test_not_backlogged_is_unconstrained(tmp_path):
    rows = [(0, 0, 0, 0, 0, 1), (1, 1, 0, 1000, 500, 0, 1), (0, 0, 1, 0, 0, 0), (2, 2, 1, 5, 0, 1)]
    assert fc.check_backlogged_pair(write_run(tmp_path, rows, M=1, L=1)).ok


def test_vs_any_catches_unbacklogged_winner(tmp_path):
    # f (0) waits on [0, 10) and receives nothing; g (1) never waits but gets 100 outputs.
    # W_g - W_f = 200 > 4U = 4*max(1*1, 2*10) = 80.
    rows = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (5, 1, 1, 0, 100, 0, 1),
            (10, 2, 0, 0, 0, 0)]
    v = fc.check_backlogged_vs_any(write_run(tmp_path, rows, M=10, L=1))
    assert not v.ok and v.witness["client_f"] == 0 and v.witness["client_g"] == 1
    assert v.witness["W_g"] - v.witness["W_f"] == 200
    rows_ok = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (5, 1, 1, 0, 30, 0, 1), (10, 2, 0, 0, 0, 0)]
    assert fc.check_backlogged_vs_any(write_run(tmp_path / "b", rows_ok, M=10, L=1)).ok


def test_counter_gap_and_lift(tmp_path):
    # client 0 has service 100 and keeps waiting; client 1 arrives at t=1 with counter 0.
    # With the lift, 1 is raised to 100 (gap 0); without it, the gap is 100 > U = 20.
    rows = [(0, 0, 0, 100, 0, 1, 1), (1, 1, 1, 0, 0, 1), (2, 2, 1, 0, 0, 1), (2, 2, 0, 100, 0, 1, 1)]
    run = write_run(tmp_path, rows, M=10, L=1)
    assert fc.check_counter_gap(run).ok
    v = fc.check_counter_gap(run, lift="none")
    assert not v.ok and v.witness["gap"] == 100


def test_counter_gap_paper_vs_artifact_lift(tmp_path):
    # 0 is served (100) and leaves the queue at seq 1; 1 arrives to an empty queue at seq 2 and
    # is lifted to c_0 = 100 under the paper's rule, not under the artifact's; 0 arrives again.
    rows = [(0, 0, 0, 0, 0, 1), (0, 1, 0, 100, 0, 0, 1), (1, 2, 1, 0, 0, 1),
            (2, 3, 0, 100, 0, 1, 1)]
    run = write_run(tmp_path, rows, M=10, L=1)
    assert fc.check_counter_gap(run).ok
    assert not fc.check_counter_gap(run, lift="artifact").ok


def test_work_conservation_idle_and_underfilled(tmp_path):
    reqs = [{"request_id": 0, "client": 0, "instance": 0, "prefill_instance": 0, "arrival_s": 0.0,
             "dispatch_s": 5.0, "prompt_tokens": 4, "output_tokens": 2}]
    idle_rows = [(0, 0, 0, 0, 0, 1), (5, 1, 0, 4, 0, 0, 1)]
    v = fc.check_work_conservation(write_run(tmp_path / "a", idle_rows, requests=reqs, M=100))
    assert not v.ok and v.witness["kind"] == "idle"
    tl = [{"time_s": 1.0, "instance": 0, "batch_requests": 1, "prefill_tokens": 0, "decode_tokens": 1,
           "kv_blocks_used": 10, "kv_blocks_total": 100, "waiting": 1, "running": 1, "iteration_s": 0.1}]
    busy_rows = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (5, 1, 0, 4, 0, 0, 1)]
    v = fc.check_work_conservation(write_run(tmp_path / "b", busy_rows, requests=reqs, timeline=tl))
    assert not v.ok and v.witness["kind"] == "under-filled"
    full = [dict(tl[0], kv_blocks_used=98)]  # 2 free blocks < 4-token prompt: blocked by memory
    assert fc.check_work_conservation(write_run(tmp_path / "c", busy_rows, requests=reqs, timeline=full)).ok


def test_dlpm_bound_uses_uncached_service(tmp_path):
    # f gets 100 prompt tokens of which 90 cached (uncached service 10) while both wait;
    # M = L = 1 -> U = 2. DLPM: 10 > 2(U + 0) = 4 fails, 10 <= 2(U + 3) = 10 holds.
    rows = [(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 1), (1, 1, 0, 100, 0, 1, 1, 90), (2, 2, 0, 100, 0, 0),
            (2, 2, 1, 0, 0, 0)]
    run = write_run(tmp_path, rows, M=1, L=1)  # U = 2
    assert not fc.check_dlpm_bound(run, quantum=0).ok  # 10 > 4
    assert fc.check_dlpm_bound(run, quantum=3).ok  # 10 <= 2(2+3)
    assert not fc.check_backlogged_pair(run).ok  # full prompt service 100 > 4


# ------------------------------------------------------------------------ brute-force oracle
def _brute_pair(rows, n_clients):
    """Max |W_f − W_g| over all intervals [p1, p2) on which both wait, straight from the rows."""
    times = sorted({r[0] for r in rows})

    def last(c, t, strict):
        best = None
        for r in rows:  # rows are in seq order
            if r[2] == c and (r[0] < t if strict else r[0] <= t):
                best = r
        return best

    def in_at(c, p):
        r = last(c, p[0], strict=(p[1] == 0))
        return r[3] if r else 0

    def out_at(c, p):
        r = last(c, p[0], strict=False)
        return r[4] if r else 0

    def waiting_after(c, t):
        r = last(c, t, strict=False)
        return r[5] if r else 0

    def backlogged(c, p1, p2):
        if waiting_after(c, p1[0]) <= 0:
            return False
        inner = [t for t in times if p1[0] < t < p2[0]] + ([p2[0]] if p2[1] == 1 and p2[0] > p1[0] else [])
        return all(waiting_after(c, t) > 0 for t in inner)

    pts = [(t, e) for t in times for e in (0, 1)]
    best = 0.0
    for f, g in itertools.combinations(range(n_clients), 2):
        for p1, p2 in itertools.combinations(pts, 2):
            if p2 <= p1 or not (backlogged(f, p1, p2) and backlogged(g, p1, p2)):
                continue
            W = [in_at(c, p2) - in_at(c, p1) + 2 * (out_at(c, p2) - out_at(c, p1)) for c in (f, g)]
            best = max(best, abs(W[0] - W[1]))
    return best


@st.composite
def service_logs(draw):
    n_clients = draw(st.integers(2, 3))
    n_steps = draw(st.integers(1, 7))
    inp = [0] * n_clients
    out = [0] * n_clients
    rows = [(0, 0, c, 0, 0, draw(st.integers(0, 1))) for c in range(n_clients)]
    t = 0
    for seq in range(1, n_steps + 1):
        t += draw(st.sampled_from([0, 1, 2]))
        for c in range(n_clients):
            if draw(st.booleans()):
                inp[c] += draw(st.sampled_from([0, 0, 3]))
                out[c] += draw(st.integers(0, 4))
                rows.append((t, seq, c, inp[c], out[c], draw(st.integers(0, 1))))
    return rows, n_clients


@settings(max_examples=150)
@given(service_logs())
def test_linear_scan_equals_brute_force(tmp_path_factory, log):
    rows, n_clients = log
    path = write_run(tmp_path_factory.mktemp("r"), rows, M=1000, L=1)
    v = fc.check_backlogged_pair(load_run(path))
    got = v.details["worst"]["difference"] if "worst" in v.details else 0.0
    assert np.isclose(got, _brute_pair(rows, n_clients))
