"""ServeGen generator: validated windows, client selection, rate scaling, window-level counts and lengths."""

import numpy as np
import pytest

from llmsched.sim.errors import InputError
from llmsched.sim.workload import servegen


@pytest.mark.parametrize("model, rows, clients", [("m-large", 326592, 162), ("m-mid", 219744, 109),
                                                   ("m-small", 86688, 43), ("mm-image", 5040, 35),
                                                   ("deepseek-r1", 10512, 73)])
def test_windows_match_readme(model, rows, clients):
    win = servegen.read_windows(model)
    assert len(win) == rows and win["client_id"].nunique() == clients


def test_length_summary_rows_match_readme():
    expected = {"m-large": 7896, "m-mid": 4356, "m-small": 2250, "mm-image": 1120, "deepseek-r1": 552}
    for model, rows in expected.items():
        assert len(servegen.read_length_summaries(model)) == rows


def test_expected_counts_follow_window_rates():
    # One client-window: k = floor(rW) + Bernoulli(frac), so E[k] = r W exactly and 0 <= k - floor(rW) <= 1.
    win = servegen.read_windows("mm-image")
    top = servegen.select_clients("mm-image", clients=None, top_k=1, start_s=0, duration_s=600)
    c = top[0]
    r = float(win[(win.client_id == c) & (win.window_start_s == 0)].rate_rps.iloc[0])
    counts = [servegen.generate("mm-image", np.random.default_rng(s), clients=[c], duration_s=600).n
              for s in range(200)]
    assert set(counts) <= {int(np.floor(r * 600)), int(np.floor(r * 600)) + 1}
    # mean of 200 Bernoulli-rounded counts: sd <= 0.5/sqrt(200) = 0.035; allow 5 sd
    assert np.mean(counts) == pytest.approx(r * 600, abs=0.18)


def test_arrivals_stay_in_their_windows_and_keep_burstiness():
    w = servegen.generate("m-large", np.random.default_rng(1), clients=[0], duration_s=3600, rate_scale=1.0)
    win = servegen.read_windows("m-large")
    sel = win[(win.client_id == 0) & (win.window_start_s < 3600)]
    per_window = np.bincount((w.arrival_s // 600).astype(int), minlength=6)
    expected = (sel.sort_values("window_start_s").rate_rps.to_numpy() * 600)
    assert np.all(np.abs(per_window - expected) <= 1.0)
    # client 0's first window is a Weibull fit with iat_cv 8.6 (very bursty): the generated gaps
    # must be far burstier than Poisson (CV 1); a Poisson-like generator fails this.
    gaps = np.diff(w.arrival_s[w.arrival_s < 600])
    assert gaps.std() / gaps.mean() > 2.0


def test_top_k_and_explicit_clients():
    w = servegen.generate("deepseek-r1", np.random.default_rng(0), top_k=3)
    assert w.n_clients == 3
    counts = np.bincount(w.client, minlength=3)
    assert counts[0] >= counts[2]  # client 0 is the busiest by expected load
    w2 = servegen.generate("deepseek-r1", np.random.default_rng(0), clients=[5, 2])
    assert w2.client_names == ("servegen-deepseek-r1:client2", "servegen-deepseek-r1:client5")
    with pytest.raises(InputError, match="clients"):
        servegen.generate("deepseek-r1", np.random.default_rng(0), clients=[999])


def test_target_rate_and_rate_scale():
    w = servegen.generate("m-mid", np.random.default_rng(0), top_k=None, duration_s=1200, target_rate_rps=20.0)
    # ~24,000 requests: sd of the total is below sqrt(#windows)/2 ~ 5; allow 1%
    assert w.n / 1200 == pytest.approx(20.0, rel=0.01)
    a = servegen.generate("m-small", np.random.default_rng(0), top_k=5, rate_scale=0.01)
    b = servegen.generate("m-small", np.random.default_rng(0), top_k=5, rate_scale=0.02)
    assert b.n == pytest.approx(2 * a.n, rel=0.1)


def _independent_mean(knots, n=400001):
    """Mean of the log-linear quantile function by the midpoint rule (independent of knots_mean)."""
    u = (np.arange(n) + 0.5) / n
    return float(np.exp(np.interp(u, servegen._KNOT_P, np.log(knots))).mean())


def test_quantile_knots_match_the_mean_when_feasible():
    # client 0 of deepseek-r1, window 0, input_tokens summary (client_lengths.csv.gz)
    knots = servegen.quantile_knots(263.864, 143, 657, 900, 1056)
    assert 1 <= knots[0] <= 143
    assert _independent_mean(knots) == pytest.approx(263.864, rel=1e-4)
    assert servegen.knots_mean(knots) == pytest.approx(263.864, rel=1e-9)
    # infeasible (mean below what Q(0) = 1 allows) -> Q(0) clipped at 1 and the mean is higher
    low = servegen.quantile_knots(50.0, 275, 380, 4826, 5073)
    assert low[0] == 1.0 and _independent_mean(low) > 50.0
    # sampled values follow the knots: sample mean within 5 sd of the exact mean
    x = servegen._sample_knots(np.random.default_rng(0), knots, 200000)
    assert abs(x.mean() - 263.864) < 5 * x.std() / np.sqrt(len(x))


def test_length_sources():
    # deepseek-r1 ships PDFs: sampled values must lie in the PDF's support
    w = servegen.generate("deepseek-r1", np.random.default_rng(0), clients=[0], start_s=0, duration_s=3600)
    if w.n:
        window = 0
        pdf = servegen._pdf("deepseek-r1", 0, window, "output_tokens")
        assert pdf is not None
        assert np.isin(w.output_tokens, np.maximum(np.rint(pdf[0]), 1)).all()
    # mm-image prompt = text + images: at least the smallest text value
    mm = servegen.generate("mm-image", np.random.default_rng(0), top_k=3)
    assert mm.prompt_tokens.min() >= 1 and mm.prompt_tokens.mean() > 100
    # language models without lengths for a client borrow another client's, and say so
    ml = servegen.generate("m-large", np.random.default_rng(0), clients=[73], rate_scale=1.0)
    assert ml.meta["length_fallback_requests"] == ml.n > 0


def test_empty_selection_is_an_input_error():
    with pytest.raises(InputError, match="no active client window"):
        servegen.generate("deepseek-r1", np.random.default_rng(0), clients=[0], start_s=0, duration_s=600)
