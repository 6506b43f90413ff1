"""Shared plumbing of the routing reproductions: run many (workload, cluster) points in parallel
with joblib and reduce each run to one tidy row. Owns no scheduling logic and no paper numbers."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from llmsched.sim.config import ClusterSpec, RunConfig
from llmsched.sim.run import simulate


def jobs() -> int:
    """Worker processes: LLMSCHED_JOBS, else 2 (the reference machine has 2 cores)."""
    return max(int(os.environ.get("LLMSCHED_JOBS", "2")), 1)


def run_rows(points: list[dict], row: Callable[[dict, Any], dict]) -> list[dict]:
    """Simulate every point ({"workload", "cluster", "seed", optional "cost_models" (as
    `simulate`'s), ...labels}) and map it to a row."""
    return run_rows_with_cost(points, row, None)


def run_rows_with_cost(points: list[dict], row: Callable[[dict, Any], dict], cost_models=None) -> list[dict]:
    """`run_rows` with `cost_models` passed to `simulate` where a point names none (None: the
    catalogue cost of each spec)."""
    def one(p: dict) -> dict:
        cluster: ClusterSpec = p["cluster"]
        res = simulate(p["workload"], cluster, seed=p["seed"], cost_models=p.get("cost_models", cost_models),
                       config=RunConfig(cluster=cluster, seed=p["seed"]).to_dict(), record_service=p.get("service", False))
        labels = {k: v for k, v in p.items() if k not in ("workload", "cluster", "service", "cost_models")}
        return {**labels, **row(p, res)}

    n = jobs()
    if n == 1 or len(points) == 1:
        return [one(p) for p in points]
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=min(n, len(points)))(delayed(one)(p) for p in points))


def latency_row(res) -> dict:
    """Summary numbers every routing reproduction reports."""
    s = res.summary
    r = res.requests
    done = r[r["finish_s"].notna()]
    prefill = (done["first_token_s"] - done["arrival_s"]).to_numpy()
    e2e = done["e2e_s"].to_numpy()

    def pct(x: np.ndarray, q: float) -> float:
        return float(np.percentile(x, q)) if len(x) else float("nan")

    return {
        "finished": int(s["num_finished"]), "rejected": int(s["num_rejected"]),
        "cache_hit_rate": float(s["cache_hit_rate"]),
        "ttft_p50_s": pct(prefill, 50), "ttft_p99_s": pct(prefill, 99), "ttft_mean_s": float(prefill.mean()) if len(prefill) else float("nan"),
        "e2e_p50_s": pct(e2e, 50), "e2e_p99_s": pct(e2e, 99), "e2e_mean_s": float(e2e.mean()) if len(e2e) else float("nan"),
        "tokens_per_s": float(s["tokens_per_s"]), "preemptions": int(s["preemptions"]),
        "migrations": int(s["migrations"]), "makespan_s": float(s["makespan_s"]),
    }
