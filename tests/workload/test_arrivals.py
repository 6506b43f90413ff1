"""Arrival processes: statistical properties with tolerances derived in the comments, determinism,
and negative controls showing each statistical check rejects a process with the wrong property."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln

from llmsched.sim.errors import InputError
from llmsched.sim.workload import arrivals as A


def gamma_cv_sd(cv: float, n: int) -> float:
    """Asymptotic sd of the sample CV of n Gamma gaps (delta method on (mean, mean of squares)).

    Gamma(k, 1) raw moments m_r = Gamma(k + r) / Gamma(k). CV^2 = m2/m1^2 - 1, so
    d CV / d m1 = -m2 / (m1^3 CV) and d CV / d m2 = 1 / (2 m1^2 CV); Var(X) = m2 - m1^2,
    Var(X^2) = m4 - m2^2, Cov(X, X^2) = m3 - m1 m2.
    """
    k = 1.0 / cv**2
    m = [math.exp(gammaln(k + r) - gammaln(k)) for r in range(5)]
    g1 = -m[2] / (m[1] ** 3 * cv)
    g2 = 1.0 / (2 * m[1] ** 2 * cv)
    var = g1 * g1 * (m[2] - m[1] ** 2) + g2 * g2 * (m[4] - m[2] ** 2) + 2 * g1 * g2 * (m[3] - m[1] * m[2])
    return math.sqrt(var / n)


def cv_of_gaps(t):
    g = np.diff(np.concatenate([[0.0], t]))
    return g.std(ddof=1) / g.mean()


def test_poisson_count_and_gaps():
    rate, T = 10.0, 2000.0
    counts = np.array([len(A.poisson(np.random.default_rng(s), rate, duration_s=T)) for s in range(30)])
    # N ~ Poisson(rate T = 20,000): sd 141. The mean of 30 counts has sd 141/sqrt(30) = 25.8; allow 5 sd.
    assert abs(counts.mean() - rate * T) < 5 * math.sqrt(rate * T / 30)
    # index of dispersion var/mean = 1 for Poisson; its sample value over 30 counts has
    # sd ~ sqrt(2/29) = 0.26 -> allow [1 - 4*0.26, 1 + 4*0.26]
    iod = counts.var(ddof=1) / counts.mean()
    assert 1 - 1.05 < iod < 1 + 1.05
    t = A.poisson(np.random.default_rng(1), rate, n=50000)
    assert len(t) == 50000 and np.all(np.diff(t) >= 0)
    assert abs(cv_of_gaps(t) - 1.0) < 5 * gamma_cv_sd(1.0, 50000)
    # gaps are exponential: KS test at alpha = 1e-4
    assert stats.kstest(np.diff(t), "expon", args=(0, 1 / rate)).pvalue > 1e-4


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 4.0])
def test_gamma_cv_within_band(cv):
    n = 200000
    t = A.gamma(np.random.default_rng(7), 5.0, cv, n=n)
    band = 5 * gamma_cv_sd(cv, n)
    assert abs(cv_of_gaps(t) - cv) < band
    assert abs(n / t[-1] - 5.0) < 5 * 5.0 * cv / math.sqrt(n)  # rate estimate: sd = rate * cv / sqrt(n)


def test_gamma_cv_band_rejects_a_wrong_cv():
    # negative control: the band for cv = 2 must exclude a process with cv = 1.6
    n = 200000
    t = A.gamma(np.random.default_rng(7), 5.0, 1.6, n=n)
    assert abs(cv_of_gaps(t) - 2.0) > 5 * gamma_cv_sd(2.0, n)


def test_gamma_duration_mode_counts():
    # renewal counts: N(T) ~ approx Normal(rate T, cv^2 rate T); 40 runs -> sd of the mean = cv sqrt(rate T / 40)
    rate, cv, T = 4.0, 2.0, 500.0
    counts = [len(A.gamma(np.random.default_rng(s), rate, cv, duration_s=T)) for s in range(40)]
    assert abs(np.mean(counts) - rate * T) < 5 * cv * math.sqrt(rate * T / 40)
    assert all(np.all(A.gamma(np.random.default_rng(s), rate, cv, duration_s=T) < T) for s in range(3))


def test_uniform_is_deterministic_after_a_random_phase():
    rate = 2.5
    t = A.uniform(np.random.default_rng(3), rate, duration_s=100.0)
    assert np.allclose(np.diff(t), 1 / rate, rtol=0, atol=1e-9)
    phase = t[0] - 1 / rate  # VTC: tic = rand()/rate, then tic += 1/rate before each request
    assert 0 <= phase < 1 / rate
    assert len(t) in (int(rate * 100) - 1, int(rate * 100))  # points phase + k/rate < 100
    # phases over seeds are U(0, 1/rate): KS at alpha = 1e-4
    phases = [A.uniform(np.random.default_rng(s), rate, n=1)[0] - 1 / rate for s in range(300)]
    assert stats.kstest(phases, "uniform", args=(0, 1 / rate)).pvalue > 1e-4


def test_onoff_only_in_on_periods():
    on, off, rate, T = 60.0, 60.0, 3.0, 6000.0
    t = A.onoff(np.random.default_rng(0), rate, on, off, duration_s=T)
    assert np.all(np.mod(t, on + off) < on)
    # Poisson base: N ~ Poisson(rate * T * on/(on+off) = 9000), sd 95; allow 5 sd
    assert abs(len(t) - 9000) < 5 * math.sqrt(9000)
    # VTC form: uniform base with on = off = 60 drops exactly the points with odd int(t // 60)
    u = A.onoff(np.random.default_rng(0), 0.5, 60, 60, duration_s=600, base="uniform")
    assert np.all((u // 60).astype(int) % 2 == 0)
    n_mode = A.onoff(np.random.default_rng(1), rate, on, off, n=500)
    assert len(n_mode) == 500 and np.all(np.mod(n_mode, on + off) < on)


def _ramp_chi2(t, r0, r1, T, bins=10):
    edges = np.linspace(0, T, bins + 1)
    lam = r0 * edges + (r1 - r0) * edges**2 / (2 * T)
    expected = np.diff(lam)
    observed = np.histogram(t, edges)[0]
    return float(np.sum((observed - expected) ** 2 / expected))


def test_ramp_counts_follow_the_integrated_rate():
    r0, r1, T = 0.2, 20.0, 1000.0
    t = A.ramp(np.random.default_rng(0), r0, r1, T, duration_s=T)
    # per-bin counts are independent Poisson(Lambda(b) - Lambda(a)): Pearson chi2 with 10 df
    limit = stats.chi2.ppf(1 - 1e-4, 10)
    assert _ramp_chi2(t, r0, r1, T) < limit
    # negative control: a homogeneous Poisson process with the same mean rate fails the same test
    flat = A.poisson(np.random.default_rng(0), 0.5 * (r0 + r1), duration_s=T)
    assert _ramp_chi2(flat, r0, r1, T) > limit
    # count mode continues at the end rate after the ramp and agrees with inversion of Lambda
    tn = A.ramp(np.random.default_rng(1), r0, r1, T, n=20000)
    assert len(tn) == 20000 and np.all(np.diff(tn) >= 0)
    assert _ramp_chi2(tn[tn < T], r0, r1, T) < limit


def test_ramp_from_zero_and_falling():
    t = A.ramp(np.random.default_rng(2), 0.0, 10.0, 100.0, duration_s=100.0)
    assert np.all(t >= 0) and _ramp_chi2(t, 0.0, 10.0, 100.0) < stats.chi2.ppf(1 - 1e-4, 10)
    f = A.ramp(np.random.default_rng(2), 10.0, 1.0, 100.0, duration_s=100.0)
    assert (f < 50).sum() > (f >= 50).sum()


@pytest.mark.parametrize("spec", [A.ArrivalSpec("poisson", 2.0), A.ArrivalSpec("gamma", 2.0, cv=3.0),
                                  A.ArrivalSpec("uniform", 2.0), A.ArrivalSpec("onoff", 2.0),
                                  A.ArrivalSpec("ramp", 2.0)])
def test_determinism(spec):
    a = spec.sample(np.random.default_rng(11), duration_s=300.0)
    b = spec.sample(np.random.default_rng(11), duration_s=300.0)
    c = spec.sample(np.random.default_rng(12), duration_s=300.0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a < 300.0) and np.all(np.diff(a) >= 0)


def test_start_offset_and_mean_rate():
    s = A.ArrivalSpec("poisson", 1.0, start_s=100.0)
    t = s.sample(np.random.default_rng(0), duration_s=200.0)
    assert t.min() >= 100.0 and t.max() < 200.0
    assert A.ArrivalSpec("onoff", 2.0, on_s=30, off_s=90).mean_rate_rps() == pytest.approx(0.5)


@pytest.mark.parametrize("call", [
    lambda r: A.poisson(r, 0.0, duration_s=1.0),
    lambda r: A.poisson(r, 1.0),
    lambda r: A.gamma(r, 1.0, -1.0, n=3),
    lambda r: A.uniform(r, 1.0, duration_s=-5.0),
    lambda r: A.onoff(r, 1.0, 0.0, 1.0, n=3),
    lambda r: A.ramp(r, 1.0, 1.0, 0.0, n=3),
    lambda r: A.ArrivalSpec("zipf").sample(r, n=3),
])
def test_bad_parameters(call):
    with pytest.raises(InputError):
        call(np.random.default_rng(0))
