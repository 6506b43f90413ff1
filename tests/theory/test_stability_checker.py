"""The stability checker (proofs_check.stability) on synthetic backlog series and synthetic run dirs.

Negative controls both ways: stable series must not be called unstable, growing series must not be
called stable, and the CI must cover the true slope at (about) its nominal rate.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from llmsched.proofs_check.stability import (
    backlog_series,
    backlog_slope,
    check_stability,
    work_backlog,
)


def mm1_backlog(lam: float, mu: float, horizon_s: float, seed: int):
    """Queue length of an M/M/1 queue started empty (uniformised birth–death chain, vectorised).

    Events at rate λ+μ; each is an arrival w.p. λ/(λ+μ), else a (possibly fictitious) departure.
    The ±1 walk X reflected at 0 is N_n = X_n − min(0, min_{k≤n} X_k) (Skorokhod reflection)."""
    rng = np.random.default_rng(seed)
    n = rng.poisson((lam + mu) * horizon_s)
    times = np.sort(rng.uniform(0, horizon_s, n))
    steps = np.where(rng.random(n) < lam / (lam + mu), 1.0, -1.0)
    x = np.cumsum(steps)
    return times, x - np.minimum(0.0, np.minimum.accumulate(x))


def _coverage_floor(n: int, level: float, alpha: float = 1e-3) -> int:
    """Fewest covering intervals we accept: the α-quantile of Binomial(n, level)."""
    return int(sps.binom.ppf(alpha, n, level))


def test_stable_mm1_is_called_stable():
    t, n = mm1_backlog(8.0, 10.0, 4000.0, seed=1)
    est = backlog_slope(t, n)
    assert est.lo <= 0.0 <= est.hi


def test_overloaded_mm1_slope_in_ci():
    t, n = mm1_backlog(12.0, 10.0, 4000.0, seed=2)
    est = backlog_slope(t, n)
    assert est.lo > 0
    assert est.contains(2.0)  # fluid slope λ − μ


def test_ci_coverage_on_overloaded_queues():
    covered = sum(backlog_slope(*mm1_backlog(12.0, 10.0, 2000.0, seed=100 + s)).contains(2.0) for s in range(40))
    assert covered >= _coverage_floor(40, 0.95)


def test_stable_queues_rarely_flagged():
    """False-alarm control: a two-sided 95% CI excludes 0 from above w.p. ≤ 2.5% if calibrated
    (less: the batch-means CI is conservative for stationary noise)."""
    flagged = sum(backlog_slope(*mm1_backlog(8.0, 10.0, 2000.0, seed=200 + s)).lo > 0 for s in range(40))
    assert flagged <= int(sps.binom.isf(1e-3, 40, 0.025))


def test_linear_drift_plus_white_noise():
    rng = np.random.default_rng(7)
    t = np.linspace(0, 1000, 20_001)
    y = 0.37 * t + rng.normal(0, 5.0, t.size)
    est = backlog_slope(t, y)
    assert est.contains(0.37) and est.lo > 0
    # negative control: the same noise without drift is not called growing
    est0 = backlog_slope(t, y - 0.37 * t)
    assert est0.lo <= 0 <= est0.hi


def test_window_and_input_validation():
    t, n = mm1_backlog(8.0, 10.0, 100.0, seed=3)
    est = backlog_slope(t, n, window=(10.0, 90.0), batches=8)
    assert (est.window_start_s, est.window_end_s, est.n_batches) == (10.0, 90.0, 8)
    with pytest.raises(ValueError):
        backlog_slope(t[::-1], n)
    with pytest.raises(ValueError):
        backlog_slope(t, n, batches=1)


# -- synthetic run directories ----------------------------------------------------------------------


def fcfs_run(lam: float, work_rate_tokens_s: float, n: int, seed: int, prompt=200, output=51):
    """A FCFS single server that computes p + (o − 1) tokens per request at a fixed token rate.

    Requests: first_token = start + p/rate; finish = start + (p + o − 1)/rate (a Python loop).
    Timeline, written as the run format prescribes (a row per change point that starts work, no row
    while idle): a prefill row (p tokens in one iteration of p/rate) and, if o > 1, a decode row
    (1 token per iteration of 1/rate) at the first token."""
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(1 / lam, n))
    p = rng.integers(prompt // 2, prompt * 3 // 2 + 1, n)
    o = rng.integers(1, 2 * output, n)
    ft = np.empty(n)
    fin = np.empty(n)
    rows = []
    free = 0.0
    for i in range(n):
        start = max(arr[i], free)
        ft[i] = start + p[i] / work_rate_tokens_s
        fin[i] = start + (p[i] + o[i] - 1) / work_rate_tokens_s
        rows.append((start, 0, 1, p[i], 0, p[i] / work_rate_tokens_s))
        if o[i] > 1:
            rows.append((ft[i], 0, 1, 0, 1, 1 / work_rate_tokens_s))
        free = fin[i]
    req = pd.DataFrame({"request_id": np.arange(n), "instance": np.zeros(n, int), "arrival_s": arr,
                        "first_token_s": ft, "finish_s": fin, "prompt_tokens": p, "output_tokens": o})
    tl = pd.DataFrame(rows, columns=["time_s", "instance", "batch_requests", "prefill_tokens", "decode_tokens",
                                     "iteration_s"])
    return req, tl


def _save(run, path):
    req, tl = run
    path.mkdir(parents=True, exist_ok=True)
    req.to_parquet(path / "requests.parquet", index=False)
    tl.to_parquet(path / "timeline.parquet", index=False)
    return path


def test_checker_stable_run(tmp_path):
    # mean work ≈ 200 + 50 = 250 tokens; rate 2500 tok/s ⇒ μ ≈ 10 req/s; λ = 7
    run = _save(fcfs_run(7.0, 2500.0, 30_000, seed=11), tmp_path / "stable")
    v = check_stability(run)
    assert v.ok and v.details["stable"]
    assert check_stability(run, metric="tokens").ok
    assert check_stability(run, metric="tokens-approx").ok


def test_checker_unstable_run_with_fluid_slope(tmp_path):
    df, tl = fcfs_run(12.0, 2500.0, 30_000, seed=12)
    run = _save((df, tl), tmp_path / "unstable")
    v = check_stability(run)
    assert not v.ok and v.witness is not None and "unstable with slope" in v.summary
    # fluid slope: λ − μ with μ = rate / E[p + o − 1] (the sample means of this run's lengths)
    work = (df.prompt_tokens + df.output_tokens - 1).mean()
    lam_hat = (len(df) - 1) / (df.arrival_s.iloc[-1] - df.arrival_s.iloc[0])
    fluid = lam_hat - 2500.0 / work
    assert check_stability(run, fluid_slope=fluid).ok
    # negative control: a wrong fluid slope (half) is rejected
    assert not check_stability(run, fluid_slope=fluid / 2).ok
    # tokens: slope λ·E[work] − rate
    for metric in ("tokens", "tokens-approx"):
        vt = check_stability(run, metric=metric, fluid_slope=lam_hat * work - 2500.0)
        assert vt.ok, vt.summary
    assert check_stability(run, expect="unstable").ok


def test_tokens_backlog_reconstruction_by_hand():
    # one request: arrives 0, p = 10, o = 5 (4 decode tokens), first token at 2, finish at 6
    df = pd.DataFrame({"arrival_s": [0.0], "first_token_s": [2.0], "finish_s": [6.0], "prompt_tokens": [10],
                       "output_tokens": [5], "instance": [0]})
    _, w = backlog_series(df, "tokens-approx", grid=np.array([0.0, 1.0, 2.0, 4.0, 6.0, 7.0]))
    np.testing.assert_allclose(w, [14, 14, 4, 2, 0, 0])
    _, nreq = backlog_series(df, "requests", grid=np.array([-1.0, 0.0, 5.9, 6.0]))
    np.testing.assert_allclose(nreq, [0, 1, 1, 0])


def test_exact_work_backlog_with_uneven_decode_speed():
    """p = 10, o = 5: prefill 10 tokens in one 2 s iteration (done at 2); one slow decode iteration of
    2 s (2 → 4), then three of 0.5 s (4 → 5.5). By hand: W = 14 at 0, 9 at 1 (half the prefill
    iteration), 4 at 2, 3.5 at 3, 3 at 4, 1 at 5, 0 at 5.5 and after. The request-table
    approximation spreads the 4 decode tokens evenly over [2, 5.5] and misses this (negative control)."""
    df = pd.DataFrame({"arrival_s": [0.0], "first_token_s": [2.0], "finish_s": [5.5], "prompt_tokens": [10],
                       "output_tokens": [5], "instance": [0]})
    tl = pd.DataFrame({"time_s": [0.0, 2.0, 4.0], "instance": [0, 0, 0], "prefill_tokens": [10, 0, 0],
                       "decode_tokens": [0, 1, 1], "iteration_s": [2.0, 2.0, 0.5]})
    grid = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.5, 9.0])
    np.testing.assert_allclose(work_backlog(df, tl, grid), [14, 9, 4, 3.5, 3, 1, 0, 0], atol=1e-12)
    _, approx = backlog_series(df, "tokens-approx", grid=grid)
    assert abs(approx[4] - 3.0) > 0.5


def test_exact_work_backlog_ends_segments_at_completions_before_idle():
    """Idle gaps have no timeline row; the decode segment must stop at the finish, not run on."""
    req, tl = fcfs_run(2.0, 2500.0, 300, seed=21)
    grid = np.linspace(0, req.finish_s.max() + 1, 20_000)
    w = work_backlog(req, tl, grid)
    assert w.min() >= -1e-6
    assert abs(w[-1]) < 1e-6
    # between a finish and the next arrival the backlog is exactly 0
    gaps = [(f, a) for f, a in zip(req.finish_s[:-1], req.arrival_s[1:]) if a > f + 1e-3]
    assert gaps
    f, a = gaps[0]
    assert abs(work_backlog(req, tl, np.array([(f + a) / 2]))[0]) < 1e-9


def test_cli_exit_codes(tmp_path):
    from llmsched.experiments.cli import main

    stable = _save(fcfs_run(7.0, 2500.0, 20_000, seed=13), tmp_path / "s")
    unstable = _save(fcfs_run(12.0, 2500.0, 20_000, seed=14), tmp_path / "u")
    assert main(["check", "stability", str(stable)]) == 0
    assert main(["check", "stability", str(unstable)]) == 1
    assert main(["check", "stability", str(unstable), "-o", "metric=bogus"]) == 2
    assert main(["check", "stability", str(tmp_path)]) == 2  # no requests.parquet
