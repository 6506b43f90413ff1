"""Hand-built run directories for checker unit tests (no simulator needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SERVICE_COLS = ["time_s", "seq", "instance", "client", "input_tokens", "cached_input_tokens",
                "output_tokens", "service", "waiting", "running"]


def write_run(path: Path, rows: list[tuple], requests: list[dict] | None = None,
              timeline: list[dict] | None = None, M: int = 100, L: int = 10,
              instance: dict | None = None) -> Path:
    """rows: (time_s, seq, client, input, output, waiting[, running[, cached]]) on instance 0."""
    recs = []
    for r in rows:
        t, seq, c, inp, out, wait = r[:6]
        running = r[6] if len(r) > 6 else 0
        cached = r[7] if len(r) > 7 else 0
        recs.append({"time_s": float(t), "seq": seq, "instance": 0, "client": c,
                     "input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
                     "service": inp + 2 * out, "waiting": wait, "running": running})
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(recs, columns=SERVICE_COLS).to_parquet(path / "service.parquet")
    reqs = requests if requests is not None else [
        {"request_id": 0, "client": 0, "instance": 0, "prefill_instance": 0, "arrival_s": 0.0,
         "dispatch_s": 0.0, "prompt_tokens": L, "output_tokens": 1}]
    pd.DataFrame(reqs).to_parquet(path / "requests.parquet")
    pd.DataFrame(timeline or [], columns=["time_s", "instance", "batch_requests", "prefill_tokens",
                                          "decode_tokens", "kv_blocks_used", "kv_blocks_total",
                                          "waiting", "running", "iteration_s"]
                 ).to_parquet(path / "timeline.parquet")
    spec = {"count": 1, "block_size": 1, "kv_capacity_tokens": M, "token_budget": 64,
            "max_batch_requests": 8, "admission_interval": 1, **(instance or {})}
    cfg = {"input_weight": 1.0, "output_weight": 2.0, "cluster": {"instances": [spec]}}
    (path / "summary.json").write_text(json.dumps({"config": cfg}))
    return path
