"""Tidy tables on disk: every experiment table is written as Parquet and CSV side by side.

Also owns `flatten`, which turns nested configs/summaries into dotted scalar columns
(`cluster.instances.0.batching`, `ttft_s.p50`). Writes are atomic (`llmsched.sim.atomic`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.sim import atomic


def flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested dicts/lists -> {"a.b.0.c": scalar}; empty containers become JSON strings."""
    out = {} if out is None else out
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = "{}"
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        if not obj and prefix:
            out[prefix] = "[]"
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out)
    else:
        out[prefix] = obj
    return out


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (e.g. None, 3 and "x") become strings so Parquet accepts them."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype != object:
            continue
        kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1 or (kinds and not kinds <= {str, bool, int, float}):
            df[col] = [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
                       for v in df[col]]
    return df


def write_table(df: pd.DataFrame, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `stem.parquet` and `stem.csv` under `out_dir` (atomically); return both paths."""
    out = Path(out_dir)
    safe = _arrow_safe(df.reset_index(drop=True))
    pq = atomic.write_with(out / f"{stem}.parquet", lambda tmp: safe.to_parquet(tmp, index=False))
    csv = atomic.write_with(out / f"{stem}.csv", lambda tmp: safe.to_csv(tmp, index=False))
    return [pq, csv]

