"""Workloads of the VTC paper's experiments: the artifact's own per-request arrivals (replayed from
`data/reference/vtc/upstream/fair_bench/<scheduler>/all_results_<suite>.jsonl.gz`) and two constructed
negative-control workloads (Thm 4.8 flooding, the three-phase dist_shift).

Owns only workload construction; no simulation or plotting. Client i is the artifact's adapter
`dummy-lora-7b-rank-8-i` in order of first appearance ("Client i+1" in the paper).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from llmsched.sim.paths import DATA_DIR as BUNDLED_DATA_DIR
from llmsched.sim.workload.core import Workload

REFERENCE = Path("/work/shared/reference/vtc/upstream/fair_bench")


REPO_COPY = BUNDLED_DATA_DIR / "reference" / "vtc" / "upstream" / "fair_bench"


def reference_dir() -> Path:
    """Where the VTC artifact's results are: the repo's copy (data/reference/vtc/RESULTS.md),
    else the team's shared reference."""
    for cand in (REPO_COPY, REFERENCE):
        if cand.is_dir():
            return cand
    return REFERENCE


def _artifact_path(scheduler: str, suite: str) -> Path:
    rel = Path(scheduler) / f"all_results_{suite}.jsonl.gz"
    for base in (REPO_COPY, REFERENCE):
        if (base / rel).exists():
            return base / rel
    return REPO_COPY / rel


def load_artifact_run(scheduler: str, suite: str) -> dict:
    """The one JSON object of `<scheduler>/all_results_<suite>.jsonl.gz` (config + responses)."""
    with gzip.open(_artifact_path(scheduler, suite), "rt") as f:
        return json.loads(f.readline())


def artifact_workload(scheduler: str, suite: str, duration_s: float | None = None) -> Workload:
    """The artifact run's requests (arrival = `req_time`, lengths as sent; outputs are exact since
    the artifact uses ignore_eos) as a `Workload`, optionally cut at `duration_s`."""
    run = load_artifact_run(scheduler, suite)
    resp = run["result"]["responses"]
    names: list[str] = []
    for r in resp:
        if r["adapter_dir"] not in names:
            names.append(r["adapter_dir"])
    names.sort(key=lambda s: (len(s), s))
    idx = {n: i for i, n in enumerate(names)}
    t = np.array([r["req_time"] for r in resp], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    keep = order if duration_s is None else order[t[order] < duration_s]
    return Workload(
        arrival_s=t[keep] - min(0.0, t.min()),
        client=np.array([idx[resp[i]["adapter_dir"]] for i in keep]),
        prompt_tokens=np.array([max(1, resp[i]["prompt_len"]) for i in keep]),
        output_tokens=np.array([max(1, resp[i]["output_len"]) for i in keep]),
        client_weight=np.ones(len(names)), client_names=tuple(names), name=f"vtc-{suite}")


def artifact_results(scheduler: str, suite: str):
    """Per-request artifact results as a frame: client, arrival, first token, finish, lengths."""
    import pandas as pd

    w = artifact_workload(scheduler, suite)
    run = load_artifact_run(scheduler, suite)
    resp = sorted(run["result"]["responses"], key=lambda r: r["req_time"])
    idx = {n: i for i, n in enumerate(w.client_names)}
    df = pd.DataFrame({
        "client": [idx[r["adapter_dir"]] for r in resp],
        "arrival_s": [r["req_time"] for r in resp],
        "first_token_s": [r["req_time"] + r["first_token_latency"] for r in resp],
        "finish_s": [r["req_time"] + r["request_latency"] for r in resp],
        "prompt_tokens": [r["prompt_len"] for r in resp],
        "output_tokens": [r["output_len"] for r in resp],
        "aborted": [r["request_latency"] < 0 for r in resp],
    })
    return df, run["result"]


def flooding(M: int, n_each: int = 40, prompt: int = 1, output: int | None = None,
             gap_s: float = 1e-3) -> Workload:
    """Thm 4.8's construction: client 0 fills the KV (M tokens) with long-output requests at t=0,
    client 1 arrives just after; both keep `n_each` requests queued. Every request is
    prompt + output = M / 10 tokens, so ten of client 0's fill the batch before 1 arrives."""
    per = M // 10
    out = output if output is not None else per - prompt
    arr = np.concatenate([np.zeros(n_each), np.full(n_each, gap_s)])
    cl = np.concatenate([np.zeros(n_each, int), np.ones(n_each, int)])
    n = 2 * n_each
    return Workload(arrival_s=arr, client=cl, prompt_tokens=np.full(n, prompt),
                    output_tokens=np.full(n, out), name="thm4.8-flood")


def dist_shift(rng: np.random.Generator, time_scale: float = 1.0, prompt: int = 256,
               output: int = 256) -> Workload:
    """The VTC paper's three-phase dist_shift (Fig. 10; artifact `fair_bench/trace.py`, mode
    dist_shift): 0–300 s client 0 at 0.5 req/s ON/OFF every 60 s vs client 1 at 2 req/s;
    300–600 s 1 vs 1; 600–900 s 0.5 vs 1.5. Deterministic "uniform" arrivals; `time_scale`
    shrinks time and raises rates alike (same request counts)."""
    from llmsched.sim.workload import arrivals

    def seg(rate: float, t0: float, t1: float, on_off: bool = False) -> np.ndarray:
        if on_off:
            t = arrivals.onoff(rng, rate, 60.0, 60.0, duration_s=t1 - t0, base="uniform")
        else:
            t = arrivals.uniform(rng, rate, duration_s=t1 - t0)
        return (t + t0) * time_scale

    a0 = np.concatenate([seg(0.5, 0, 300, True), seg(1.0, 300, 600), seg(0.5, 600, 900)])
    a1 = np.concatenate([seg(2.0, 0, 300), seg(1.0, 300, 600), seg(1.5, 600, 900)])
    arr = np.concatenate([a0, a1])
    cl = np.concatenate([np.zeros(len(a0), int), np.ones(len(a1), int)])
    o = np.argsort(arr, kind="stable")
    n = len(arr)
    return Workload(arrival_s=arr[o], client=cl[o], prompt_tokens=np.full(n, prompt),
                    output_tokens=np.full(n, output), name="vtc-dist-shift")
