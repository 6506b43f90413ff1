"""Stability checker: is a run's backlog bounded, or does it grow — and at the fluid slope?

Owns `backlog_slope` (a pure function: regression slope of a backlog series with a batch-means
confidence interval), the backlog reconstruction (requests in system from `requests.parquet`;
outstanding tokens exactly from `timeline.parquet`, or approximately from the request table) and the `stability` checker (`llmsched check stability RUN_DIR`). It reads run
files only; it never runs a simulation. Theory: docs/theory/throughput.md, "Stability checker".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from llmsched.proofs_check.registry import checker
from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.errors import InputError
from llmsched.sim.results import read_parquet

__all__ = ["METRICS", "SlopeEstimate", "backlog_series", "backlog_slope", "check_stability", "stability_verdict",
           "work_backlog"]

#: Default relative threshold ε: slopes below ε·(arrival rate) count as "not growing". A fluid
#: slope λ − μ < ελ means an offered load λ/μ < 1/(1 − ε), i.e. within ≈ε of capacity, where no
#: finite run can tell stable from unstable anyway. 1% is our choice (documented in the docs).
DEFAULT_REL_THRESHOLD = 0.01
DEFAULT_BATCHES = 10
DEFAULT_CONFIDENCE = 0.95
DEFAULT_GRID_POINTS = 4000


@dataclass(frozen=True)
class SlopeEstimate:
    """Backlog growth slope over a window, in backlog units per second.

    slope: OLS slope over the whole window (sampled on a uniform grid); lo/hi: confidence interval
    slope ± t_{m−1}·se, where se = sd(batch slopes)/√m over m contiguous batches (batch means).
    """

    slope: float
    lo: float
    hi: float
    stderr: float
    n_batches: int
    confidence: float
    window_start_s: float
    window_end_s: float
    n_points: int
    backlog_start: float
    backlog_end: float

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


def _ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    den = float(xc @ xc)
    return float(xc @ (y - y.mean()) / den) if den > 0 else 0.0


def _step_values(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Right-continuous step function through (times, values), evaluated on `grid`."""
    idx = np.searchsorted(times, grid, side="right") - 1
    return values[np.clip(idx, 0, len(values) - 1)]


def backlog_slope(times, backlog, *, window: tuple[float, float] | None = None,
                  batches: int = DEFAULT_BATCHES, confidence: float = DEFAULT_CONFIDENCE,
                  grid_points: int = DEFAULT_GRID_POINTS) -> SlopeEstimate:
    """Slope of a backlog series with a confidence interval that accounts for autocorrelation.

    `times` (sorted) and `backlog` describe a right-continuous step function (the backlog right
    after each time). The window defaults to the second half of [times[0], times[-1]]. The series
    is sampled on `grid_points` uniform points; the point estimate is their OLS slope. The interval
    uses batch means: the window is cut into m = `batches` contiguous pieces, an OLS slope is fitted
    in each, and se = sd/√m with a Student t_{m−1} quantile. Why this is honest: a backlog's noise is
    either random-walk-like (overload: independent arrival/departure increments), where the mean of
    m piece slopes has the same variance as the whole-window slope, so the interval is calibrated;
    or stationary (a stable queue), where piece slopes are noisier than the whole-window slope, so
    the interval is wider — conservative in the direction of *not* declaring instability.
    """
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(backlog, dtype=np.float64)
    if t.ndim != 1 or t.shape != y.shape or t.size < 2:
        raise ValueError("times and backlog must be 1-D arrays of the same length >= 2")
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be sorted")
    m = int(batches)
    if m < 2:
        raise ValueError("batches must be >= 2")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    t0, t1 = window if window is not None else ((t[0] + t[-1]) / 2.0, t[-1])
    if not t1 > t0:
        raise ValueError(f"empty window [{t0}, {t1}]")
    n = max(int(grid_points), 4 * m)
    n -= n % m
    grid = np.linspace(t0, t1, n)
    vals = _step_values(t, y, grid)
    slope = _ols_slope(grid, vals)
    pieces = np.array([_ols_slope(gx, gy) for gx, gy in zip(np.split(grid, m), np.split(vals, m))])
    se = float(pieces.std(ddof=1) / math.sqrt(m))
    q = float(sps.t.ppf(0.5 + confidence / 2.0, m - 1))
    return SlopeEstimate(slope, slope - q * se, slope + q * se, se, m, confidence, float(t0), float(t1),
                         n, float(vals[0]), float(vals[-1]))


# -- backlog from a run's request table ------------------------------------------------------------

_NEEDED = {
    "requests": ("arrival_s", "finish_s"),
    "tokens-approx": ("arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens"),
    "tokens": ("arrival_s", "finish_s", "first_token_s", "prompt_tokens", "output_tokens", "instance"),
}
_TIMELINE_NEEDED = ("time_s", "instance", "prefill_tokens", "decode_tokens", "iteration_s")
METRICS = ("requests", "tokens", "tokens-approx")


def backlog_series(requests: pd.DataFrame, metric: str = "requests", grid: np.ndarray | None = None,
                   first_token_in_prefill: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Backlog over time from a request table.

    metric="requests": N(t) = arrivals ≤ t − completions ≤ t (never-finished requests stay).
    metric="tokens-approx": outstanding work W(t) = Σ over requests in system of p + d not yet
    computed, where d = o − 1 decode rounds (the prefill round emits the first token). The request
    table only has first-token and finish times, so we take the whole prompt as done at
    `first_token_s` and the d decode tokens as done at a constant rate between `first_token_s` and
    `finish_s`. Biased when a request's decode speed varies (e.g. decodes starved by a
    prefill-first policy under overload); `work_backlog` (metric "tokens") is exact.
    Returns (times, values) of a right-continuous step function, or its samples on `grid`.
    """
    if metric not in ("requests", "tokens-approx"):
        raise ValueError(f"metric must be 'requests' or 'tokens-approx', got {metric!r}")
    missing = [c for c in _NEEDED[metric] if c not in requests.columns]
    if missing:
        raise InputError("requests.parquet", ",".join(missing), "missing column(s)",
                         "use a run directory written by `llmsched simulate --out` (docs/run-format.md)")
    arr = requests["arrival_s"].to_numpy(np.float64)
    fin = requests["finish_s"].to_numpy(np.float64)
    if metric == "requests":
        ev_t = np.concatenate([arr, fin[np.isfinite(fin)]])
        ev_v = np.concatenate([np.ones(arr.size), -np.ones(int(np.isfinite(fin).sum()))])
        order = np.argsort(ev_t, kind="stable")
        times, values = ev_t[order], np.cumsum(ev_v[order])
        times, keep = np.unique(times[::-1], return_index=True)  # last value at each tied time
        values = values[::-1][keep]
        if grid is None:
            return times, values
        return np.asarray(grid, float), np.where(np.asarray(grid) < times[0], 0.0, _step_values(times, values, np.asarray(grid, float)))
    ft = requests["first_token_s"].to_numpy(np.float64)
    p = requests["prompt_tokens"].to_numpy(np.float64)
    d = requests["output_tokens"].to_numpy(np.float64) - (1.0 if first_token_in_prefill else 0.0)
    d = np.maximum(d, 0.0)
    # steps: +p+d at arrival, -p at first token, and -d at finish when there is no ramp to do it
    has_ft, has_fin = np.isfinite(ft), np.isfinite(fin)
    ramp = has_ft & has_fin & (fin > ft) & (d > 0)
    instant = has_ft & has_fin & ~ramp  # finished with no decode time: drop d at finish
    st_t = np.concatenate([arr, ft[has_ft], fin[instant]])
    st_v = np.concatenate([p + d, -p[has_ft], -d[instant]])
    r = -d[ramp] / (fin[ramp] - ft[ramp])
    rt_t = np.concatenate([ft[ramp], fin[ramp]])
    rt_v = np.concatenate([r, -r])
    if grid is None:
        grid = np.unique(np.concatenate([st_t, rt_t]))
    g = np.asarray(grid, np.float64)
    o = np.argsort(st_t, kind="stable")
    st_t, st_cum = st_t[o], np.cumsum(st_v[o])
    k = np.searchsorted(st_t, g, side="right")
    steps = np.where(k > 0, st_cum[np.maximum(k - 1, 0)], 0.0)
    o = np.argsort(rt_t, kind="stable")
    rt_t, rt_v = rt_t[o], rt_v[o]
    c_rate, c_rate_t = np.cumsum(rt_v), np.cumsum(rt_v * rt_t)
    k = np.searchsorted(rt_t, g, side="right")
    ramps = np.where(k > 0, g * c_rate[np.maximum(k - 1, 0)] - c_rate_t[np.maximum(k - 1, 0)], 0.0)
    return g, np.maximum(steps + ramps, 0.0)


def _ramp_integral(starts: np.ndarray, ends: np.ndarray, rates: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Σ_j rate_j · clip(t − start_j, 0, end_j − start_j) at every grid time (vectorised)."""
    ev_t = np.concatenate([starts, ends])
    ev_r = np.concatenate([rates, -rates])
    o = np.argsort(ev_t, kind="stable")
    ev_t, ev_r = ev_t[o], ev_r[o]
    c_r, c_rt = np.cumsum(ev_r), np.cumsum(ev_r * ev_t)
    k = np.searchsorted(ev_t, grid, side="right")
    i = np.maximum(k - 1, 0)
    return np.where(k > 0, grid * c_r[i] - c_rt[i], 0.0)


def work_backlog(requests: pd.DataFrame, timeline: pd.DataFrame, grid: np.ndarray,
                 first_token_in_prefill: bool = True) -> np.ndarray:
    """Outstanding tokens of work on a grid, exactly, from the request table and the timeline.

    W(t) = arrived work − processed work. A request brings p − cached + d tokens at arrival (cached
    prompt tokens from `cached_prompt_tokens` when present; d = o − 1). The engine writes a timeline
    row at every change point and wherever the iteration's token counts change (a prompt's last,
    partial chunk included), and records on each row its run: `run_iterations` identical iterations
    of `prefill_tokens + decode_tokens` tokens, the last ending at `run_end_s`. Processed work is
    therefore exact at every run boundary; inside a run it is spread linearly over
    [time_s, run_end_s], which is exact at every iteration end when the run's iterations take equal
    time. Recomputation after preemption counts as processed work, so under preemptions W is
    underestimated (the requests metric is exact).

    Run directories written before `run_iterations` existed fall back to the old reconstruction
    (a row's first iteration repeated until the next row or completion event): approximate, and
    biased low when the last prefill chunk is partial.
    """
    missing = [c for c in _TIMELINE_NEEDED if c not in timeline.columns]
    if missing:
        raise InputError("timeline.parquet", ",".join(missing), "missing column(s)",
                         "use a run directory written by `llmsched simulate --out` (docs/run-format.md)")
    g = np.asarray(grid, np.float64)
    p = requests["prompt_tokens"].to_numpy(np.float64)
    if "cached_prompt_tokens" in requests.columns:
        p = p - np.nan_to_num(requests["cached_prompt_tokens"].to_numpy(np.float64))
    d = np.maximum(requests["output_tokens"].to_numpy(np.float64) - (1.0 if first_token_in_prefill else 0.0), 0.0)
    arr = requests["arrival_s"].to_numpy(np.float64)
    o = np.argsort(arr, kind="stable")
    arr_sorted, w_cum = arr[o], np.cumsum((p + d)[o])
    k = np.searchsorted(arr_sorted, g, side="right")
    arrived = np.where(k > 0, w_cum[np.maximum(k - 1, 0)], 0.0)
    if {"run_iterations", "run_end_s"} <= set(timeline.columns):
        processed = _processed_from_runs(timeline, g)
    else:
        processed = _processed_legacy(requests, timeline, g)
    return arrived - processed


def _processed_from_runs(timeline: pd.DataFrame, g: np.ndarray) -> np.ndarray:
    """Σ over runs of n·(P + K) tokens, ramped over [time_s, run_end_s] (a step if it is one instant)."""
    t0 = timeline["time_s"].to_numpy(np.float64)
    t1 = timeline["run_end_s"].to_numpy(np.float64)
    n = timeline["run_iterations"].to_numpy(np.float64)
    work = n * (timeline["prefill_tokens"] + timeline["decode_tokens"]).to_numpy(np.float64)
    ok = work > 0
    t0, t1, work = t0[ok], t1[ok], work[ok]
    span = t1 - t0
    ramp = span > 0
    processed = np.zeros_like(g)
    if ramp.any():
        processed += _ramp_integral(t0[ramp], t1[ramp], work[ramp] / span[ramp], g)
    if (~ramp).any():  # zero-length run (only with zero-duration iterations): all at once
        ends = np.sort(t1[~ramp])
        cum = np.cumsum(work[~ramp][np.argsort(t1[~ramp], kind="stable")])
        j = np.searchsorted(ends, g, side="right")
        processed += np.where(j > 0, cum[np.maximum(j - 1, 0)], 0.0)
    # the ramp of a run ends exactly at its last iteration's end: round away float noise of the
    # rate × time product so that an exact backlog reads exact
    return np.round(processed, 6)


def _processed_legacy(requests: pd.DataFrame, timeline: pd.DataFrame, g: np.ndarray) -> np.ndarray:
    fin = requests["finish_s"].to_numpy(np.float64)
    ft = requests["first_token_s"].to_numpy(np.float64)
    inst = requests["instance"].to_numpy()
    pinst = requests["prefill_instance"].to_numpy() if "prefill_instance" in requests.columns else inst
    starts, ends, rates = [], [], []
    tl = timeline.sort_values(["instance", "time_s"], kind="stable")
    for i, rows in tl.groupby("instance", sort=False):
        t = rows["time_s"].to_numpy(np.float64)
        it = rows["iteration_s"].to_numpy(np.float64)
        tok = (rows["prefill_tokens"] + rows["decode_tokens"]).to_numpy(np.float64)
        events = np.sort(np.concatenate([fin[(inst == i) & np.isfinite(fin)], ft[(pinst == i) & np.isfinite(ft)]]))
        nxt = np.append(t[1:], np.inf)
        j = np.searchsorted(events, t + 0.5 * it, side="right")
        ev_next = np.where(j < len(events), events[np.minimum(j, len(events) - 1)], np.inf)
        end = np.minimum(nxt, ev_next)
        ok = (tok > 0) & (it > 0) & np.isfinite(end)
        starts.append(t[ok])
        ends.append(end[ok])
        rates.append(tok[ok] / it[ok])
    if starts:
        return _ramp_integral(np.concatenate(starts), np.concatenate(ends), np.concatenate(rates), g)
    return np.zeros_like(g)


# -- verdict ------------------------------------------------------------------------------------------


def stability_verdict(est: SlopeEstimate, arrival_rate: float, unit: str, *,
                      rel_threshold: float = DEFAULT_REL_THRESHOLD, fluid_slope: float | None = None,
                      expect: str | None = None) -> Verdict:
    """Turn a slope estimate into a Verdict.

    Stable iff the CI reaches 0 (lo ≤ 0) or lies entirely below the threshold ε·(arrival rate).
    Unstable otherwise, reported as "unstable with slope s [lo, hi]". ok: by default, "the run is
    stable"; with expect="unstable", "the run is unstable"; with a `fluid_slope`, "the run agrees
    with the fluid model": stable when the fluid slope ≤ threshold, else unstable with the fluid
    slope inside the CI.
    """
    threshold = rel_threshold * arrival_rate
    stable = est.lo <= 0.0 or est.hi < threshold
    ci = f"[{est.lo:.4g}, {est.hi:.4g}]"
    state = "stable" if stable else f"unstable with slope {est.slope:.4g} {ci} {unit}"
    details = {"estimate": asdict(est), "unit": unit, "threshold": threshold, "rel_threshold": rel_threshold,
               "arrival_rate": arrival_rate, "stable": stable}
    if fluid_slope is not None:
        fluid_unstable = fluid_slope > threshold
        agrees = (not fluid_unstable and stable) or (fluid_unstable and not stable and est.contains(fluid_slope))
        details.update(fluid_slope=fluid_slope, fluid_in_ci=est.contains(fluid_slope))
        ok = agrees
        summary = (f"{state}; fluid slope {fluid_slope:.4g} {unit} "
                   f"{'agrees' if agrees else 'DISAGREES'} (slope {est.slope:.4g} {ci})")
    elif expect is not None:
        if expect not in ("stable", "unstable"):
            raise InputError("stability checker", "expect", f"unknown value {expect!r}", "use stable or unstable")
        ok = stable == (expect == "stable")
        summary = f"{state} (expected {expect}; slope {est.slope:.4g} {ci} {unit})"
    else:
        ok = stable
        summary = state if not stable else f"stable (slope {est.slope:.4g} {ci} {unit})"
    witness = None
    if not ok:
        witness = {"slope": est.slope, "ci": [est.lo, est.hi], "unit": unit,
                   "window_s": [est.window_start_s, est.window_end_s],
                   "backlog_at_window": [est.backlog_start, est.backlog_end], "threshold": threshold}
        if fluid_slope is not None:
            witness["fluid_slope"] = fluid_slope
    return Verdict("stability", ok, summary, witness, details)


def _opt(options: dict, key: str, cast, default):
    if key not in options:
        return default
    try:
        return cast(options.pop(key))
    except (TypeError, ValueError):
        raise InputError("stability checker", key, "has the wrong type", f"pass {key}=<{cast.__name__}>") from None


@checker("stability", target="run",
         help="backlog growth slope with a CI: stable, or unstable with slope s (optionally vs a fluid slope)")
def check_stability(path: Path, **options) -> Verdict:
    """Stability of a run: regression slope of the backlog over the second half of the arrival period.

    Options: metric=requests|tokens|tokens-approx, batches (10), confidence (0.95), rel_threshold (0.01),
    fluid_slope (same unit as the metric, per second), expect=stable|unstable, grid_points (4000),
    window_start_s / window_end_s (override the window).
    """
    opts = dict(options)
    metric = _opt(opts, "metric", str, "requests")
    batches = _opt(opts, "batches", int, DEFAULT_BATCHES)
    confidence = _opt(opts, "confidence", float, DEFAULT_CONFIDENCE)
    rel = _opt(opts, "rel_threshold", float, DEFAULT_REL_THRESHOLD)
    fluid = _opt(opts, "fluid_slope", float, None)
    expect = _opt(opts, "expect", str, None)
    grid_points = _opt(opts, "grid_points", int, DEFAULT_GRID_POINTS)
    w0 = _opt(opts, "window_start_s", float, None)
    w1 = _opt(opts, "window_end_s", float, None)
    if opts:
        raise InputError("stability checker", ",".join(sorted(opts)), "unknown option(s)",
                         "use metric, batches, confidence, rel_threshold, fluid_slope, expect, grid_points, "
                         "window_start_s, window_end_s")
    if metric not in METRICS:
        raise InputError("stability checker", "metric", f"unknown metric {metric!r}",
                         "use requests, tokens (needs timeline.parquet) or tokens-approx")
    f = Path(path) / "requests.parquet"
    if not f.is_file():
        raise InputError(str(path), "requests.parquet", "missing from the run directory",
                         "pass a directory written by `llmsched simulate --out`")
    req = read_parquet(f)
    if len(req) < 2:
        raise InputError(str(f), "rows", "needs at least 2 requests to estimate a slope")
    arr = req["arrival_s"].to_numpy(np.float64)
    a0, a1 = float(np.min(arr)), float(np.max(arr))
    t0 = (a0 + a1) / 2.0 if w0 is None else w0
    t1 = a1 if w1 is None else w1
    if not t1 > t0:
        raise InputError(str(f), "arrival_s", "arrivals span no time; cannot estimate a slope",
                         "use a run with arrivals spread over time, or pass window_start_s/window_end_s")
    grid = np.linspace(t0, t1, max(grid_points, 4 * batches))
    if metric == "tokens":
        tl_file = Path(path) / "timeline.parquet"
        if not tl_file.is_file():
            raise InputError(str(path), "timeline.parquet", "missing (metric=tokens needs it)",
                             "use metric=tokens-approx or a full run directory")
        missing = [c for c in _NEEDED["tokens"] if c not in req.columns]
        if missing:
            raise InputError(str(f), ",".join(missing), "missing column(s)", "see docs/run-format.md")
        values = work_backlog(req, read_parquet(tl_file), grid)
    else:
        _, values = backlog_series(req, metric, grid)
    est = backlog_slope(grid, values, window=(t0, t1), batches=batches, confidence=confidence,
                        grid_points=grid_points)
    in_win = (arr >= t0) & (arr <= t1)
    if metric == "requests":
        rate = float(in_win.sum()) / (t1 - t0)
        unit = "requests/s"
    else:
        work = req["prompt_tokens"].to_numpy(float) + req["output_tokens"].to_numpy(float) - 1.0
        rate = float(work[in_win].sum()) / (t1 - t0)
        unit = "tokens/s"
    return stability_verdict(est, rate, unit, rel_threshold=rel, fluid_slope=fluid, expect=expect)
