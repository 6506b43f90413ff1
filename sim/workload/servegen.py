"""ServeGen per-client generator: 600 s client windows -> arrivals, 6 h length summaries/PDFs -> lengths.

Owns reading `data/traces/servegen-<model>/` (client_windows.csv.gz, client_lengths.csv.gz,
client_length_pdfs.json.gz) and drawing a per-client `Workload` from them. Data: alibaba/ServeGen
(Xiang et al., arXiv:2505.09999, 2025). Our sampling choices are documented in docs/workloads.md.
"""

from __future__ import annotations

import ast
import functools
import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.readers import TRACES_DIR
from llmsched.sim.workload.validate import numeric, require_columns, require_file

MODELS = ("m-large", "m-mid", "m-small", "mm-image", "deepseek-r1")
# ServeGen windows: arrival descriptors per 600 s, length PDFs per 6 h (alibaba/ServeGen data/,
# `window_start_s` steps in the staged files; see data/README.md).
ARRIVAL_WINDOW_S = 600.0
LENGTH_WINDOW_S = 21600.0
# Quantile knots of the staged length summaries (client_lengths.csv.gz columns p50/p90/p99/max).
_KNOT_P = np.array([0.0, 0.5, 0.9, 0.99, 1.0])


def model_dir(model: str) -> Path:
    if model not in MODELS:
        raise InputError("servegen", "model", f"unknown ServeGen model {model!r}", f"use one of: {', '.join(MODELS)}")
    return TRACES_DIR / f"servegen-{model}"


@functools.lru_cache(maxsize=8)
def read_windows(model: str) -> pd.DataFrame:
    """All (client, 600 s window) rows, validated: rate >= 0; active windows need a Gamma/Weibull fit."""
    path = model_dir(model) / "client_windows.csv.gz"
    require_file(path, "ServeGen client_windows")
    df = pd.read_csv(path, dtype={"iat_dist": str})
    cols = ["client_id", "window_start_s", "rate_rps", "iat_cv", "iat_dist", "iat_shape", "iat_scale"]
    require_columns(df, cols, path)
    out = pd.DataFrame({
        "client_id": numeric(df, "client_id", path, integer=True),
        "window_start_s": numeric(df, "window_start_s", path),
        "rate_rps": numeric(df, "rate_rps", path),
        "iat_shape": numeric(df, "iat_shape", path),
        "iat_scale": numeric(df, "iat_scale", path),
        "iat_dist": df["iat_dist"].fillna("").astype(str).to_numpy(),
    })
    active = out["rate_rps"].to_numpy() > 0
    dist_ok = np.isin(out["iat_dist"].to_numpy(), ["Gamma", "Weibull"])
    par_ok = (out["iat_shape"].to_numpy() > 0) & (out["iat_scale"].to_numpy() > 0)
    bad = active & ~(dist_ok & par_ok)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputError(str(path), "iat_dist", f"row {pos + 1}: active window without a Gamma/Weibull fit "
                         "with positive shape and scale", "fix or drop the row")
    return out


@functools.lru_cache(maxsize=8)
def read_length_summaries(model: str) -> pd.DataFrame:
    """Per (client, 6 h window, field) summaries: mean, p50, p90, p99, max (derived from upstream PDFs)."""
    path = model_dir(model) / "client_lengths.csv.gz"
    require_file(path, "ServeGen client_lengths")
    df = pd.read_csv(path)
    cols = ["client_id", "window_start_s", "field", "mean", "p50", "p90", "p99", "max", "requests_in_window"]
    require_columns(df, cols, path)
    for c in cols:
        if c != "field":
            df[c] = numeric(df, c, path)
    return df


@functools.lru_cache(maxsize=4)
def _read_pdf_json(model: str) -> dict | None:
    path = model_dir(model) / "client_length_pdfs.json.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=4096)
def _pdf(model: str, client: int, window: int, field: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, probabilities) of one upstream PDF (a Python dict literal, parsed with literal_eval)."""
    data = _read_pdf_json(model)
    text = (data or {}).get(str(client), {}).get(str(window), {}).get(field)
    if not text:
        return None
    try:
        d = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InputError(str(model_dir(model) / "client_length_pdfs.json.gz"), f"{client}/{window}/{field}",
                         "not a {value: probability} literal") from None
    if not d:
        return None
    v = np.asarray(list(d.keys()), np.float64)
    p = np.asarray(list(d.values()), np.float64)
    if np.any(p < 0) or p.sum() <= 0:
        return None
    return v, p / p.sum()


def knots_mean(knots) -> float:
    """Mean of the quantile function that is log-linear between `knots` at probabilities _KNOT_P.

    On a segment of width w from a to b, Q(p) = a (b/a)^((p - p0)/w) has mean w (b - a) / ln(b / a).
    """
    total = 0.0
    for w, a, b in zip(np.diff(_KNOT_P).tolist(), knots[:-1], knots[1:]):
        total += w * (a if math.isclose(a, b, rel_tol=1e-12) else (b - a) / math.log(b / a))
    return total


def quantile_knots(mean: float, p50: float, p90: float, p99: float, vmax: float) -> np.ndarray:
    """Knot values at probabilities 0, .5, .9, .99, 1 of a log-linear quantile function (all >= 1).

    The summaries have no minimum, so Q(0) is chosen in [1, p50] by bisection to match `mean`
    where possible; otherwise it is the end of that range closest to matching. Log-linear (rather
    than linear) interpolation suits the heavy upper tails: with it the mean is matchable for
    about 70-76% of the language-model summaries, against about 50% for linear. Our choice.
    """
    upper = np.maximum.accumulate(np.maximum(np.array([p50, p90, p99, vmax], np.float64), 1.0)).tolist()

    def with_q0(q0: float) -> np.ndarray:
        return np.array([q0, *upper])

    lo, hi = 1.0, float(upper[0])
    if knots_mean([lo, *upper]) >= mean:
        return with_q0(lo)
    if knots_mean([hi, *upper]) <= mean:
        return with_q0(hi)
    for _ in range(60):  # the mean grows monotonically with Q(0)
        mid = 0.5 * (lo + hi)
        if knots_mean([mid, *upper]) < mean:
            lo = mid
        else:
            hi = mid
    return with_q0(0.5 * (lo + hi))


def _sample_knots(rng: np.random.Generator, knots: np.ndarray, n: int) -> np.ndarray:
    return np.exp(np.interp(rng.random(n), _KNOT_P, np.log(knots)))


def _sample_pdf(rng: np.random.Generator, pdf: tuple[np.ndarray, np.ndarray], n: int) -> np.ndarray:
    v, p = pdf
    return v[rng.choice(len(v), n, p=p)]


def _gaps(rng: np.random.Generator, dist: np.ndarray, shape: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """One gap per entry: Gamma(a=shape, scale) or Weibull(c=shape, scale) (scipy parameterisation)."""
    g = np.empty(len(dist))
    is_gamma = dist == "Gamma"
    g[is_gamma] = rng.gamma(shape[is_gamma], scale[is_gamma])
    g[~is_gamma] = rng.weibull(shape[~is_gamma]) * scale[~is_gamma]
    return g


def select_clients(model: str, *, clients: Sequence[int] | None, top_k: int | None, start_s: float,
                   duration_s: float) -> list[int]:
    """Explicit ids, or the top_k clients by expected requests in [start_s, start_s + duration_s)."""
    win = read_windows(model)
    ids = set(win["client_id"].tolist())
    if clients is not None:
        unknown = [c for c in clients if c not in ids]
        if unknown:
            raise InputError(f"servegen-{model}", "clients", f"unknown client id {unknown[0]}",
                             f"use ids between {min(ids)} and {max(ids)}")
        return sorted(set(int(c) for c in clients))
    sel = win[(win["window_start_s"] + ARRIVAL_WINDOW_S > start_s) & (win["window_start_s"] < start_s + duration_s)]
    load = sel.groupby("client_id")["rate_rps"].sum()
    load = load[load > 0].sort_values(ascending=False, kind="stable")
    ranked = sorted(load.index.tolist(), key=lambda c: (-load[c], c))
    return ranked if top_k is None else ranked[:top_k]


def generate(model: str, rng: np.random.Generator, *, clients: Sequence[int] | None = None,
             top_k: int | None = 10, start_s: float = 0.0, duration_s: float = 600.0,
             rate_scale: float = 1.0, target_rate_rps: float | None = None) -> Workload:
    """Requests of the selected clients over [start_s, start_s + duration_s), times shifted to start at 0.

    Arrivals, per active (client, 600 s window): k = floor(r W) + Bernoulli(frac(r W)) requests
    (r = rate_rps * rate_scale, W = 600 s; E[k] = r W), placed at the cumulative sums of k of k+1
    gaps drawn from the window's fitted Gamma/Weibull and rescaled to sum to W. (Upstream's
    `construct.py` draws ceil(r W) gaps rescaled to W and keeps those inside the window.)
    `target_rate_rps` overrides `rate_scale` so that the selection's expected mean rate is that value.
    Lengths: from the client's PDFs where shipped (mm-image: text + per-image tokens times the image
    count, likewise audio/video; deepseek-r1: input/output), else sampled from its 6 h summary by
    `quantile_knots` (log-linear between the summary quantiles). A client without lengths in a 6 h window uses its nearest window that has
    them; a client that shipped none borrows a request-weighted random client of the same 6 h
    window (those requests are counted in meta["length_fallback_requests"]).
    """
    if not (duration_s > 0 and math.isfinite(duration_s)) or start_s < 0:
        raise InputError(f"servegen-{model}", "start_s/duration_s", "need start_s >= 0 and duration_s > 0")
    if not rate_scale > 0:
        raise InputError(f"servegen-{model}", "rate_scale", f"must be > 0, got {rate_scale}")
    win = read_windows(model)
    chosen = select_clients(model, clients=clients, top_k=top_k, start_s=start_s, duration_s=duration_s)
    end_s = start_s + duration_s
    w = win[win["client_id"].isin(chosen) & (win["window_start_s"] + ARRIVAL_WINDOW_S > start_s)
            & (win["window_start_s"] < end_s) & (win["rate_rps"] > 0)]
    if len(w) == 0:
        raise InputError(f"servegen-{model}", "start_s/duration_s", "no active client window in the selection",
                         "choose another start_s, a longer duration_s or other clients")
    if target_rate_rps is not None:
        # expected count inside [start, end): full windows count r W, partial ones their overlap
        overlap = (np.minimum(w["window_start_s"] + ARRIVAL_WINDOW_S, end_s) - np.maximum(w["window_start_s"], start_s))
        expected = float((w["rate_rps"] * overlap).sum())
        rate_scale = target_rate_rps * duration_s / expected
    rates = w["rate_rps"].to_numpy() * rate_scale * ARRIVAL_WINDOW_S
    k = np.floor(rates).astype(np.int64) + (rng.random(len(rates)) < rates - np.floor(rates))
    keep = k > 0
    k, w = k[keep], w[keep]
    m = k + 1
    rep = np.repeat(np.arange(len(k)), m)
    g = _gaps(rng, w["iat_dist"].to_numpy()[rep], w["iat_shape"].to_numpy()[rep], w["iat_scale"].to_numpy()[rep])
    starts = np.concatenate([[0], np.cumsum(m)[:-1]])
    sums = np.add.reduceat(g, starts)
    g = g / sums[rep] * ARRIVAL_WINDOW_S
    csum = np.cumsum(g)
    within = csum - np.repeat(csum[starts] - g[starts], m)  # cumulative sum restarted per window
    last = np.cumsum(m) - 1
    is_arrival = np.ones(len(g), bool)
    is_arrival[last] = False
    t = (np.repeat(w["window_start_s"].to_numpy(), m) + within)[is_arrival]
    cid = np.repeat(w["client_id"].to_numpy(), m)[is_arrival]
    inside = (t >= start_s) & (t < end_s)
    t, cid = t[inside], cid[inside]
    order = np.argsort(t, kind="stable")
    t, cid = t[order], cid[order]
    prompt, output, images, image_tok, fallback = _lengths(model, rng, t, cid)
    ids = np.asarray(chosen, np.int64)
    by_id = np.argsort(ids)
    return Workload(
        arrival_s=t - start_s, client=by_id[np.searchsorted(ids[by_id], cid)],
        prompt_tokens=prompt, output_tokens=output, images=images, image_tokens=image_tok,
        client_names=tuple(f"servegen-{model}:client{c}" for c in chosen), name=f"servegen-{model}",
        meta={"servegen_clients": list(chosen), "rate_scale": rate_scale, "start_s": start_s,
              "length_fallback_requests": int(fallback)},
    )


def _groups(keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(key, row indices) for each distinct row of the (n, 2) array of (client, window) keys."""
    if len(keys) == 0:
        return []
    packed = (keys[:, 0].astype(np.int64) << 32) | keys[:, 1].astype(np.int64)  # windows < 2^32 s
    uniq, inv = np.unique(packed, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    rows = np.split(order, np.cumsum(np.bincount(inv))[:-1])
    return [(np.array([u >> 32, u & 0xFFFFFFFF]), r) for u, r in zip(uniq, rows)]


@functools.lru_cache(maxsize=8)
def _summary_index(model: str) -> tuple[dict, dict]:
    """{(client, window, field): (mean, p50, p90, p99, max)} and {client: sorted windows with lengths}."""
    summ = read_length_summaries(model)
    stats: dict[tuple[int, int, str], tuple[float, float, float, float, float]] = {}
    windows: dict[int, set[int]] = {}
    for r in summ.itertuples(index=False):
        stats[(int(r.client_id), int(r.window_start_s), r.field)] = (r.mean, r.p50, r.p90, r.p99, r.max)
        windows.setdefault(int(r.client_id), set()).add(int(r.window_start_s))
    return stats, {c: np.array(sorted(v)) for c, v in windows.items()}


@functools.lru_cache(maxsize=65536)
def _knots(model: str, client: int, window: int, field: str) -> np.ndarray | None:
    st = _summary_index(model)[0].get((client, window, field))
    return None if st is None else quantile_knots(*st)


def _lengths(model: str, rng: np.random.Generator, t: np.ndarray, cid: np.ndarray):
    """Per-request prompt, output, image count, image tokens (both 0 outside mm-image), and how many
    requests borrowed another client's lengths."""
    n = len(t)
    prompt, output = np.ones(n, np.int64), np.ones(n, np.int64)
    images, image_tok = np.zeros(n, np.int64), np.zeros(n, np.int64)
    src = np.stack([cid, (np.floor(t / LENGTH_WINDOW_S) * LENGTH_WINDOW_S).astype(np.int64)], axis=1)
    _, own = _summary_index(model)
    fallback = 0
    for (c, s), rows in _groups(src.copy()):
        wins = own.get(int(c))
        if wins is None:  # the client shipped no lengths at all: borrow another client's
            fallback += len(rows)
            src[rows] = _borrow(model, rng, int(s), len(rows))
        elif int(s) not in wins:  # use the client's nearest window that has lengths
            src[rows, 1] = wins[np.argmin(np.abs(wins - s))]
    for (c, s), rows in _groups(src):
        prompt[rows], output[rows], images[rows], image_tok[rows] = _draw(model, rng, int(c), int(s), len(rows))
    return prompt, output, images, image_tok, fallback


def _borrow(model: str, rng: np.random.Generator, window: int, n: int) -> np.ndarray:
    """(n, 2) request-weighted random (client, window) pairs with lengths in this 6 h window (else any)."""
    summ = read_length_summaries(model)
    first_field = summ["field"].iloc[0]
    s = summ[(summ["field"] == first_field) & (summ["window_start_s"] == window)]
    if len(s) == 0:
        s = summ[summ["field"] == first_field]
    wts = s["requests_in_window"].to_numpy(np.float64)
    wts = wts / wts.sum() if wts.sum() > 0 else np.full(len(s), 1.0 / len(s))
    pick = rng.choice(len(s), n, p=wts)
    return np.stack([s["client_id"].to_numpy(np.int64)[pick], s["window_start_s"].to_numpy(np.int64)[pick]], axis=1)


def _summary_draw(model: str, rng: np.random.Generator, client: int, window: int, field: str, n: int) -> np.ndarray:
    knots = _knots(model, client, window, field)
    if knots is None:
        return np.zeros(n)
    return _sample_knots(rng, knots, n)


def _field(model: str, rng: np.random.Generator, client: int, window: int, field: str, n: int) -> np.ndarray:
    pdf = _pdf(model, client, window, field)
    if pdf is not None:
        return _sample_pdf(rng, pdf, n)
    return _summary_draw(model, rng, client, window, field, n)


def _draw(model: str, rng: np.random.Generator, client: int, window: int, n: int):
    """(prompt, output, images, image tokens) of n requests; mm-image keeps its image count and the
    image share of the prompt (audio and video tokens stay text-like prompt tokens)."""
    images = np.zeros(n, np.int64)
    image_tok = np.zeros(n, np.int64)
    if model == "mm-image":
        prompt = _field(model, rng, client, window, "text_tokens", n)
        for kind in ("image", "audio", "video"):
            count = np.rint(_field(model, rng, client, window, f"{kind}_count", n)).astype(np.int64)
            total = int(count.sum())
            if total:
                per = _field(model, rng, client, window, f"{kind}_tokens", total)
                added = np.bincount(np.repeat(np.arange(n), count), weights=per, minlength=n)
                prompt = prompt + added
                if kind == "image":
                    image_tok = np.rint(added).astype(np.int64)
                    images = np.where(image_tok > 0, count, 0)
                    image_tok = np.where(images > 0, np.maximum(image_tok, images), 0)
    else:
        prompt = _field(model, rng, client, window, "input_tokens", n)
    output = _field(model, rng, client, window, "output_tokens", n)
    prompt = np.maximum(np.rint(prompt), 1).astype(np.int64)
    return (np.maximum(prompt, image_tok), np.maximum(np.rint(output), 1).astype(np.int64), images, image_tok)
