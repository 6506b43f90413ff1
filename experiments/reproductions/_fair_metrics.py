"""The VTC paper's fairness metrics over per-request results, vectorised, plus Jain's index.

Definitions follow the artifact's plotting code (`fair_bench/plot/visualize.py`,
`plot_revision.py`; facts only, reimplemented): a request's service cost(in, out) = in + 2·out is
spread uniformly over [first token, finish]; windows of T = 60 s; for the "difference" metrics the
ticks are x_i = (600 − 30)/20 · i, i = 1..19, over the window [x_i, x_i + 60] (30 s warm-up).
Owns only arithmetic on frames with columns client, arrival_s, first_token_s, finish_s,
prompt_tokens, output_tokens (+ aborted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.theory.fairness import jain_index  # noqa: F401 - re-exported for the reproductions

WINDOW_S = 60.0  # plot_revision.py: window = 60
HORIZON_S = 600.0  # T = 600
WARMUP_S = 30.0  # warmup = 30
N_TICKS = 20  # num_x = 20, tick 0 dropped


def cost(prompt: np.ndarray, output: np.ndarray, w_p: float = 1.0, w_q: float = 2.0) -> np.ndarray:
    """VTC's linear service (w_p = 1, w_q = 2)."""
    return w_p * np.asarray(prompt, float) + w_q * np.asarray(output, float)


def diff_ticks(horizon_s: float = HORIZON_S, warmup_s: float = WARMUP_S, n: int = N_TICKS) -> np.ndarray:
    return np.array([(horizon_s - warmup_s) / n * i for i in range(1, n)])


def _served(df: pd.DataFrame) -> pd.DataFrame:
    ok = np.isfinite(df["finish_s"]) & np.isfinite(df["first_token_s"])
    if "aborted" in df:
        ok &= ~df["aborted"].astype(bool)
    return df[ok & (df["finish_s"] - df["first_token_s"] >= 1e-5)]


def service_in_windows(df: pd.DataFrame, lo: np.ndarray, hi: np.ndarray, clients: list[int]) -> np.ndarray:
    """(clients × windows) service delivered inside [lo_k, hi_k] (not divided by the length)."""
    d = _served(df)
    s, e = d["first_token_s"].to_numpy(), d["finish_s"].to_numpy()
    c = cost(d["prompt_tokens"], d["output_tokens"])
    overlap = np.clip(np.minimum(hi[None, :], e[:, None]) - np.maximum(lo[None, :], s[:, None]), 0, None)
    part = c[:, None] * overlap / (e - s)[:, None]
    cl = d["client"].to_numpy()
    return np.stack([part[cl == k].sum(axis=0) for k in clients]) if len(clients) else np.zeros((0, len(lo)))


def request_rate_in_windows(df: pd.DataFrame, lo: np.ndarray, hi: np.ndarray, clients: list[int]) -> np.ndarray:
    """(clients × windows) cost of requests *arriving* in [lo_k, hi_k], per second."""
    a = df["arrival_s"].to_numpy()
    c = cost(df["prompt_tokens"], df["output_tokens"])
    inside = (a[:, None] >= lo[None, :]) & (a[:, None] <= hi[None, :])
    cl = df["client"].to_numpy()
    return np.stack([(c[cl == k, None] * inside[cl == k]).sum(axis=0) for k in clients]) / (hi - lo)


def service_difference(df: pd.DataFrame, clients: list[int] | None = None,
                       horizon_s: float = HORIZON_S) -> np.ndarray:
    """Per tick: Σ_j min(max_k s_k − s_j, |r_j − s_j|), s = service rate, r = request rate."""
    clients = sorted(df["client"].unique().tolist()) if clients is None else clients
    x = diff_ticks(horizon_s)
    lo, hi = x, x + WINDOW_S  # [x − T/2 + warmup, x + T/2 + warmup]
    s = service_in_windows(df, lo, hi, clients) / WINDOW_S
    r = request_rate_in_windows(df, lo, hi, clients)
    return np.minimum(s.max(axis=0)[None, :] - s, np.abs(r - s)).sum(axis=0)


def diff_stats(df: pd.DataFrame, total_time_s: float, clients: list[int] | None = None,
               horizon_s: float = HORIZON_S) -> dict[str, float]:
    """Table 2's Max Diff, Avg Diff, Diff Var and throughput (in + out tokens / total time).
    Rejected (aborted) requests are dropped first, as plot_revision.py does."""
    if "aborted" in df:
        df = df[~df["aborted"].astype(bool)]
    d = service_difference(df, clients, horizon_s)
    served = _served(df)
    tput = float((served["prompt_tokens"] + served["output_tokens"]).sum() / total_time_s)
    return {"max_diff": float(d.max()), "avg_diff": float(d.mean()), "diff_var": float(d.var()),
            "throughput_tok_s": tput}


def service_rate_series(df: pd.DataFrame, centres: np.ndarray, clients: list[int]) -> np.ndarray:
    """(clients × centres) service rate in the window [x − 30, x + 30] (the figures' y axis)."""
    return service_in_windows(df, centres - WINDOW_S / 2, centres + WINDOW_S / 2, clients) / WINDOW_S


def response_time_series(df: pd.DataFrame, centres: np.ndarray, clients: list[int]) -> np.ndarray:
    """(clients × centres) mean first-token latency of requests whose first token is in the window."""
    d = _served(df)
    ft = d["first_token_s"].to_numpy()
    lat = (d["first_token_s"] - d["arrival_s"]).to_numpy()
    out = np.full((len(clients), len(centres)), np.nan)
    for i, k in enumerate(clients):
        m = d["client"].to_numpy() == k
        inside = (ft[m, None] >= centres - WINDOW_S / 2) & (ft[m, None] <= centres + WINDOW_S / 2)
        cnt = inside.sum(axis=0)
        tot = (lat[m, None] * inside).sum(axis=0)
        out[i] = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return out


def accumulated_service_difference(df: pd.DataFrame, ticks: np.ndarray, clients: list[int]) -> np.ndarray:
    """max_j W_j(0, t) − min_j W_j(0, t) (Fig. 3a's "absolute difference in service")."""
    w = service_in_windows(df, np.zeros_like(ticks), ticks, clients)
    return w.max(axis=0) - w.min(axis=0)

