"""`RunResult`: the tables and summary of one run, written to and read back from a run directory.

Owns the on-disk format (docs/run-format.md) and the summary statistics. Files are written
atomically (temp file + rename), so an interrupted save never leaves a half-written table.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError
from llmsched.sim.state import DONE, REJECTED, RequestTable

FILES = ("requests.parquet", "service.parquet", "timeline.parquet", "summary.json")


@dataclass
class RunResult:
    requests: pd.DataFrame
    service: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in (("requests", self.requests), ("service", self.service),
                         ("timeline", self.timeline)):
            _atomic(out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        _atomic(out / "summary.json",
                lambda p: Path(p).write_text(json.dumps(_jsonable(self.summary), indent=2) + "\n"))
        return out


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return x


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run directory back (raises InputError naming a missing file)."""
    d = Path(run_dir)
    for f in FILES:
        if not (d / f).is_file():
            raise InputError(str(d), f, "missing from the run directory",
                             "pass a directory written by `llmsched simulate --out`")
    return RunResult(
        requests=pd.read_parquet(d / "requests.parquet"),
        service=pd.read_parquet(d / "service.parquet"),
        timeline=pd.read_parquet(d / "timeline.parquet"),
        summary=json.loads((d / "summary.json").read_text()),
    )


def requests_frame(reqs: RequestTable) -> pd.DataFrame:
    r = reqs
    served = r.state == DONE
    out = r.output.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt_mean = np.where(out > 1, (r.finish_s - r.first_token_s) / (out - 1), np.nan)
    ttft = r.first_token_s - r.arrival_s
    tbt_max = np.where(served & (r.output > 1), r.tbt_max_s, np.nan)
    return pd.DataFrame({
        "request_id": np.arange(r.n, dtype=np.int64),
        "client": r.client,
        "instance": r.instance,
        "prefill_instance": r.prefill_instance,
        "arrival_s": r.arrival_s,
        "dispatch_s": r.dispatch_s,
        "first_token_s": r.first_token_s,
        "finish_s": r.finish_s,
        "ttft_s": ttft,
        "e2e_s": r.finish_s - r.arrival_s,
        "tbt_mean_s": tbt_mean,
        "tbt_max_s": tbt_max,
        "tbt_slo_misses": r.tbt_misses,
        "queueing_delay_s": r.dispatch_s - r.arrival_s,
        "preemptions": r.preemptions,
        "migrations": r.migrations,
        "prompt_tokens": r.prompt,
        "output_tokens": r.output,
        "generated_tokens": r.generated,
        "cached_prompt_tokens": r.cached_tokens,
        "priority": r.priority,
        "ttft_slo_s": r.ttft_slo_s,
        "tbt_slo_s": r.tbt_slo_s,
        "slo_met": served & (ttft <= r.ttft_slo_s) & (r.tbt_misses == 0),
        "rejected": r.state == REJECTED,
    })


def _pcts(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(x.mean())}


def summarize(requests: pd.DataFrame, cache_hit_tokens: int, prompt_tokens_admitted: int) -> dict[str, Any]:
    done = requests[np.isfinite(requests["finish_s"])]
    n_done = len(done)
    start = float(requests["arrival_s"].min()) if len(requests) else 0.0
    end = float(done["finish_s"].max()) if n_done else start
    span = max(end - start, 1e-12)
    prompt = int(done["prompt_tokens"].sum())
    output = int(done["output_tokens"].sum())
    return {
        "num_requests": len(requests),
        "num_finished": n_done,
        "num_rejected": int(requests["rejected"].sum()),
        "makespan_s": end - start,
        "requests_per_s": n_done / span,
        "tokens_per_s": (prompt + output) / span,
        "output_tokens_per_s": output / span,
        "goodput_requests_per_s": int(done["slo_met"].sum()) / span,
        "slo_attainment": float(done["slo_met"].mean()) if n_done else math.nan,
        "ttft_s": _pcts(done["ttft_s"].to_numpy()),
        "tbt_s": _pcts(done["tbt_mean_s"].to_numpy()),
        "tbt_max_s": _pcts(done["tbt_max_s"].to_numpy()),
        "e2e_s": _pcts(done["e2e_s"].to_numpy()),
        "queueing_delay_s": _pcts(done["queueing_delay_s"].to_numpy()),
        "cache_hit_rate": cache_hit_tokens / prompt_tokens_admitted if prompt_tokens_admitted else 0.0,
        "preemptions": int(requests["preemptions"].sum()),
        "migrations": int(requests["migrations"].sum()),
    }
