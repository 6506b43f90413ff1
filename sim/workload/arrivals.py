"""Arrival processes: pure functions from a `numpy.random.Generator` to sorted arrival times (s).

Owns Poisson, Gamma(CV), VTC-style deterministic "uniform", on/off and linear-ramp processes and
the frozen `ArrivalSpec` that names one of them. Knows nothing about lengths, clients or prefixes.
Every function takes `duration_s` (keep arrivals in [0, duration_s)) and/or `n` (keep the first n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmsched.sim.errors import InputError

_CHUNK_MIN = 64


def _check_rate(rate_rps: float, name: str = "rate") -> None:
    if not (rate_rps > 0 and math.isfinite(rate_rps)):
        raise InputError("arrival process", name, f"must be a positive number of requests/s, got {rate_rps}")


def _check_window(duration_s: float | None, n: int | None) -> None:
    if duration_s is None and n is None:
        raise InputError("arrival process", "duration_s/n", "neither a duration nor a count given",
                         "pass duration_s (seconds) or n (requests)")
    if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
        raise InputError("arrival process", "duration_s", f"must be > 0 and finite, got {duration_s}")
    if n is not None and n < 0:
        raise InputError("arrival process", "n", f"must be >= 0, got {n}")


def _renewal(draw, mean_gap_s: float, duration_s: float | None,
             n: int | None) -> np.ndarray:
    """Cumulative sums of i.i.d. gaps `draw(k)` until `n` points or time `duration_s` is passed."""
    if n is not None:
        t = np.cumsum(draw(n))
        return t[t < duration_s] if duration_s is not None else t
    assert duration_s is not None  # _check_window: a count or a duration
    parts, total, last = [], 0, 0.0
    while True:
        # expected remaining count plus 5 sigma of slack, so one or two chunks usually suffice
        need = (duration_s - last) / mean_gap_s
        k = max(_CHUNK_MIN, int(need + 5 * math.sqrt(need + 1)) + 1)
        t = last + np.cumsum(draw(k))
        parts.append(t)
        total += k
        last = float(t[-1])
        if last >= duration_s:
            break
    t = np.concatenate(parts)
    return t[t < duration_s]


def poisson(rng: np.random.Generator, rate_rps: float, *, duration_s: float | None = None,
            n: int | None = None) -> np.ndarray:
    """Homogeneous Poisson process of rate `rate_rps` starting at 0 (exponential gaps)."""
    _check_rate(rate_rps)
    _check_window(duration_s, n)
    if n is None:
        assert duration_s is not None  # _check_window: a count or a duration
        # exact: N ~ Poisson(rate*T), then N uniform points sorted (order-statistics property)
        count = int(rng.poisson(rate_rps * duration_s))
        return np.sort(rng.uniform(0.0, duration_s, count))
    return _renewal(lambda k: rng.exponential(1.0 / rate_rps, k), 1.0 / rate_rps, duration_s, n)


def gamma(rng: np.random.Generator, rate_rps: float, cv: float, *, duration_s: float | None = None,
          n: int | None = None) -> np.ndarray:
    """Renewal process with Gamma gaps of mean 1/rate and coefficient of variation `cv`.

    Shape k = 1/cv^2, scale = cv^2/rate (as in VTC-artifact `fair_bench/trace.py`); cv = 1 is
    Poisson, cv > 1 bursty, cv < 1 smoother. The first gap is drawn like the others (an ordinary,
    not an equilibrium, renewal process).
    """
    _check_rate(rate_rps)
    _check_window(duration_s, n)
    if not (cv > 0 and math.isfinite(cv)):
        raise InputError("gamma arrivals", "cv", f"must be > 0, got {cv}")
    shape, scale = 1.0 / cv**2, cv**2 / rate_rps
    return _renewal(lambda k: rng.gamma(shape, scale, k), 1.0 / rate_rps, duration_s, n)


def uniform(rng: np.random.Generator, rate_rps: float, *, duration_s: float | None = None,
            n: int | None = None) -> np.ndarray:
    """Deterministic gaps 1/rate after a random phase: t_k = phase + k/rate, k = 1, 2, ...

    phase ~ U(0, 1/rate), as in VTC-artifact `fair_bench/trace.py::generate_requests_uniform`
    (`tic = rand()/rate`, then `tic += 1/rate` before each request). VTC emits int(rate*T) points,
    the last of which may overshoot T by < 1/rate; here points at or beyond `duration_s` are dropped.
    """
    _check_rate(rate_rps)
    _check_window(duration_s, n)
    phase = float(rng.random()) / rate_rps
    if n is not None:
        count = n
    else:
        assert duration_s is not None  # _check_window: a count or a duration
        count = math.ceil(duration_s * rate_rps) + 1
    t = phase + np.arange(1, count + 1, dtype=np.float64) / rate_rps
    return t[t < duration_s] if duration_s is not None else t


def onoff(rng: np.random.Generator, on_rate_rps: float, on_s: float, off_s: float, *,
          duration_s: float | None = None, n: int | None = None, base: str = "poisson",
          cv: float = 1.0) -> np.ndarray:
    """Alternating ON (length `on_s`) and OFF (`off_s`) periods, starting ON at t = 0.

    Arrivals of a base process at rate `on_rate_rps` (poisson | gamma | uniform) are kept only
    inside ON periods, which for a Poisson base is exactly an ON/OFF-modulated Poisson process.
    VTC-artifact's on/off clients are base "uniform" with on_s = off_s = 60 (they drop points with
    odd `int(t // 60)`). Long-run mean rate = on_rate * on_s / (on_s + off_s).
    """
    _check_rate(on_rate_rps, "on_rate")
    _check_window(duration_s, n)
    if not (on_s > 0 and off_s >= 0):
        raise InputError("onoff arrivals", "on_s/off_s", f"need on_s > 0 and off_s >= 0, got {on_s}, {off_s}")
    period = on_s + off_s
    if n is not None and duration_s is None:
        # enough ON time for n points with margin; loop in the (rare) case it was not enough
        horizon = max(period, (n / on_rate_rps + 10 * math.sqrt(n + 1) / on_rate_rps) * period / on_s)
        while True:
            t = onoff(rng, on_rate_rps, on_s, off_s, duration_s=horizon, base=base, cv=cv)
            if len(t) >= n:
                return t[:n]
            horizon *= 2
    assert duration_s is not None  # _check_window: a count or a duration
    raw = _base(rng, base, on_rate_rps, cv, duration_s)
    t = raw[np.mod(raw, period) < on_s]
    return t[:n] if n is not None else t


def _base(rng: np.random.Generator, base: str, rate: float, cv: float, duration_s: float) -> np.ndarray:
    if base == "poisson":
        return poisson(rng, rate, duration_s=duration_s)
    if base == "gamma":
        return gamma(rng, rate, cv, duration_s=duration_s)
    if base == "uniform":
        return uniform(rng, rate, duration_s=duration_s)
    raise InputError("arrival process", "base", f"unknown base process {base!r}",
                     "use poisson, gamma or uniform")


def ramp(rng: np.random.Generator, start_rate_rps: float, end_rate_rps: float, ramp_s: float, *,
         duration_s: float | None = None, n: int | None = None) -> np.ndarray:
    """Non-homogeneous Poisson process whose rate rises (or falls) linearly over [0, ramp_s].

    rate(t) = r0 + (r1 - r0) t / ramp_s for t <= ramp_s, then r1. Sampled by inversion: unit-rate
    Poisson points E_k are mapped through the inverse of Lambda(t) = r0 t + (r1 - r0) t^2 / (2 ramp_s).
    (VTC-artifact's "increase" suite ramps 0.2 -> 2 req/s deterministically; this is its Poisson
    counterpart.) With only `n`, points past ramp_s continue at rate r1.
    """
    if start_rate_rps < 0 or not math.isfinite(start_rate_rps):
        raise InputError("ramp arrivals", "start_rate", f"must be >= 0, got {start_rate_rps}")
    _check_rate(end_rate_rps, "end_rate")
    _check_window(duration_s, n)
    if not ramp_s > 0:
        raise InputError("ramp arrivals", "ramp_s", f"must be > 0 seconds, got {ramp_s}")
    r0, r1, T = start_rate_rps, end_rate_rps, ramp_s
    lam_T = 0.5 * (r0 + r1) * T
    if n is not None:
        e = np.cumsum(rng.exponential(1.0, n))
    else:
        assert duration_s is not None  # _check_window: a count or a duration
        horizon = duration_s
        lam_end = lam_T + r1 * (horizon - T) if horizon > T else r0 * horizon + (r1 - r0) * horizon**2 / (2 * T)
        count = int(rng.poisson(lam_end))
        e = np.sort(rng.uniform(0.0, lam_end, count))
    t = np.empty_like(e)
    inside = e <= lam_T
    a = (r1 - r0) / (2 * T)
    ei = e[inside]
    if abs(a) < 1e-15:
        t[inside] = ei / r0
    else:
        # root of a t^2 + r0 t - e = 0 in [0, T], written to avoid cancellation
        t[inside] = 2 * ei / (r0 + np.sqrt(r0 * r0 + 4 * a * ei))
    t[~inside] = T + (e[~inside] - lam_T) / r1
    return t[t < duration_s] if duration_s is not None else t


@dataclass(frozen=True)
class ArrivalSpec:
    """A named arrival process and its parameters (rate = ON rate for onoff, end rate for ramp)."""

    kind: str = "poisson"
    rate_rps: float = 1.0
    cv: float = 1.0
    on_s: float = 60.0
    off_s: float = 60.0
    base: str = "poisson"
    start_rate_rps: float = 0.2
    ramp_s: float | None = None
    start_s: float = 0.0

    def sample(self, rng: np.random.Generator, *, duration_s: float | None = None,
               n: int | None = None) -> np.ndarray:
        """Arrival times in [start_s, start_s + duration_s)."""
        d = None if duration_s is None else duration_s - self.start_s
        if d is not None and d <= 0:
            return np.zeros(0)
        if self.kind == "poisson":
            t = poisson(rng, self.rate_rps, duration_s=d, n=n)
        elif self.kind == "gamma":
            t = gamma(rng, self.rate_rps, self.cv, duration_s=d, n=n)
        elif self.kind == "uniform":
            t = uniform(rng, self.rate_rps, duration_s=d, n=n)
        elif self.kind == "onoff":
            t = onoff(rng, self.rate_rps, self.on_s, self.off_s, duration_s=d, n=n, base=self.base, cv=self.cv)
        elif self.kind == "ramp":
            ramp_s = self.ramp_s if self.ramp_s is not None else d
            if ramp_s is None:
                raise InputError("ramp arrivals", "ramp_s", "needs a ramp length or a duration")
            t = ramp(rng, self.start_rate_rps, self.rate_rps, ramp_s, duration_s=d, n=n)
        else:
            raise InputError("arrival process", "process", f"unknown process {self.kind!r}",
                             f"use one of: {', '.join(PROCESSES)}")
        return t + self.start_s

    def mean_rate_rps(self) -> float:
        """Long-run mean rate (over the ramp for `ramp`)."""
        if self.kind == "onoff":
            return self.rate_rps * self.on_s / (self.on_s + self.off_s)
        if self.kind == "ramp":
            return 0.5 * (self.start_rate_rps + self.rate_rps)
        return self.rate_rps


PROCESSES = ("poisson", "gamma", "uniform", "onoff", "ramp")
