"""Users' own traces: the generic CSV / JSONL request format, read (validated) and written.

Owns `read_file` / `write_file`. Columns: required `arrival_s, client_id, input_tokens,
output_tokens`; optional `hash_ids` (JSON list in CSV, list in JSONL), `priority`, `ttft_slo_s`,
`tbt_slo_s`, `weight` (per client). Format reference: docs/workloads.md.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError
from llmsched.sim.workload.core import DEFAULT_HASH_BLOCK_TOKENS, Workload
from llmsched.sim.workload.validate import (
    json_lines,
    numeric,
    reject_unknown_columns,
    require_columns,
    require_file,
    require_rows,
    sorted_times,
)

REQUIRED = ("arrival_s", "client_id", "input_tokens", "output_tokens")
OPTIONAL = ("hash_ids", "priority", "ttft_slo_s", "tbt_slo_s", "weight")
SUFFIXES = (".csv", ".jsonl", ".ndjson")
_FIX = "see docs/workloads.md, 'Your own trace'"


def is_trace_path(source: str) -> bool:
    """A `--workload` value names a file if it exists or ends in a known suffix."""
    return Path(source).suffix.lower() in SUFFIXES or Path(source).is_file()


def _load_table(path: Path) -> tuple[pd.DataFrame, int, list | None]:
    """(table, header lines, hash id lists or None)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            df = pd.read_csv(path, dtype={"client_id": str, "hash_ids": str}, keep_default_na=False,
                             na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(str(path), "", f"not a readable CSV ({str(exc).splitlines()[0]})", _FIX) from None
        except pd.errors.EmptyDataError:
            raise InputError(str(path), "", "the file is empty", f"write a header row ({_FIX})") from None
        hashes: list[list[int]] | None = None
        if "hash_ids" in df.columns:
            hashes = []
            for pos, text in enumerate(df["hash_ids"].tolist()):
                if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
                    hashes.append([])
                    continue
                try:
                    hashes.append(json.loads(text))
                except json.JSONDecodeError:
                    raise InputError(str(path), "hash_ids", f"row {pos + 1} (line {pos + 2}): not a JSON list "
                                     f"({text!r})", 'write e.g. "[12, 40, 7]" (quoted) or leave it empty') from None
        return df, 1, hashes
    rows = [rec for _, rec in json_lines(path)]
    if not rows:
        raise InputError(str(path), "", "the file has no requests", _FIX)
    df = pd.DataFrame(rows)
    hashes = None
    if "hash_ids" in df.columns:
        hashes = [h if isinstance(h, list) else ([] if h is None or (isinstance(h, float) and math.isnan(h)) else h)
                  for h in df["hash_ids"].tolist()]
    if "client_id" in df.columns:
        df["client_id"] = [None if v is None else str(v) for v in df["client_id"]]
    return df, 0, hashes


def _clients(df: pd.DataFrame, path: Path, header: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer ids >= 0 are used as client indices; any other labels are numbered in sorted order."""
    raw = df["client_id"]
    if raw.isna().any():
        pos = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise InputError(str(path), "client_id", f"row {pos + 1} (line {pos + 1 + header}): empty", "give every row a client id")
    labels = raw.astype(str).str.strip().to_numpy()
    as_int = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if len(labels) and np.all(np.isfinite(as_int)) and np.all(as_int == np.floor(as_int)):
        if (as_int < 0).any():
            pos = int(np.flatnonzero(as_int < 0)[0])
            raise InputError(str(path), "client_id", f"row {pos + 1} (line {pos + 1 + header}): negative id",
                             "use ids >= 0 or text labels")
        ids = as_int.astype(np.int64)
        return ids, tuple(f"client{c}" for c in range(int(ids.max()) + 1))
    names, ids = np.unique(labels, return_inverse=True)
    return ids.astype(np.int64), tuple(str(x) for x in names)


def _client_weights(df: pd.DataFrame, client: np.ndarray, names: tuple[str, ...], path: Path,
                    header: int) -> np.ndarray:
    """Per-client weights from the optional `weight` column (1 where absent): > 0, one per client."""
    weights = np.ones(len(names))
    if "weight" in df.columns:
        wv = numeric(df.fillna({"weight": 1.0}), "weight", path, header_lines=header)
        if (wv <= 0).any():
            pos = int(np.flatnonzero(wv <= 0)[0])
            raise InputError(str(path), "weight", f"row {pos + 1} (line {pos + 1 + header}): must be > 0", "use positive weights")
        for c in np.unique(client):
            vals = np.unique(wv[client == c])
            if len(vals) > 1:
                pos = int(np.flatnonzero((client == c) & (wv != vals[0]))[0])
                raise InputError(str(path), "weight", f"row {pos + 1} (line {pos + 1 + header}): client "
                                 f"{names[c]!r} has different weights ({vals[0]:g} and {wv[pos]:g})",
                                 "give each client one weight")
            weights[c] = vals[0]
    return weights


def read_file(path: str | Path, hash_block_tokens: int = DEFAULT_HASH_BLOCK_TOKENS) -> Workload:
    """Read and validate a generic trace; `hash_ids` blocks cover `hash_block_tokens` tokens each."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(str(path), "", f"unknown trace file type {path.suffix!r}",
                         f"use a .csv or .jsonl file ({_FIX})")
    require_file(path, "trace file")
    if hash_block_tokens < 1:
        raise InputError(str(path), "hash_block_tokens", "must be >= 1")
    df, header, hashes = _load_table(path)
    require_columns(df, REQUIRED, path, f"required columns: {', '.join(REQUIRED)} ({_FIX})")
    reject_unknown_columns(df.columns, REQUIRED + OPTIONAL, path)
    require_rows(len(df), path)
    t = numeric(df, "arrival_s", path, header_lines=header)
    sorted_times(t, "arrival_s", path, header_lines=header)
    client, names = _clients(df, path, header)
    prompt = numeric(df, "input_tokens", path, integer=True, minimum=1, header_lines=header)
    output = numeric(df, "output_tokens", path, integer=True, minimum=1, header_lines=header)
    n = len(t)
    kw: dict = {}
    if "priority" in df.columns:
        kw["priority"] = numeric(df.fillna({"priority": 0}), "priority", path, integer=True, minimum=None,
                                 header_lines=header)
    for col in ("ttft_slo_s", "tbt_slo_s"):
        if col in df.columns:
            v = numeric(df.fillna({col: math.inf}), col, path, allow_inf=True, header_lines=header)
            if (v <= 0).any():
                pos = int(np.flatnonzero(v <= 0)[0])
                raise InputError(str(path), col, f"row {pos + 1} (line {pos + 1 + header}): must be > 0 s",
                                 "leave empty or write inf for no SLO")
            kw[col] = v
    weights = _client_weights(df, client, names, path, header)
    offsets = np.zeros(n + 1, np.int64)
    values = np.zeros(0, np.int64)
    if hashes is not None:
        lens = np.zeros(n, np.int64)
        flat: list[int] = []
        for pos, h in enumerate(hashes):
            where = f"row {pos + 1} (line {pos + 1 + header})"
            if not isinstance(h, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in h):
                raise InputError(str(path), "hash_ids", f"{where}: not a list of integers", "write e.g. [12, 40, 7]")
            if len(h) > -(-int(prompt[pos]) // hash_block_tokens):
                raise InputError(str(path), "hash_ids", f"{where}: {len(h)} blocks for {prompt[pos]} input tokens "
                                 f"(blocks of {hash_block_tokens})",
                                 "give at most ceil(input_tokens / hash_block_tokens) ids, or set hash_block_tokens")
            if any(x < -(2**63) or x >= 2**63 for x in h):
                raise InputError(str(path), "hash_ids", f"{where}: id outside the 64-bit range")
            lens[pos] = len(h)
            flat.extend(h)
        offsets[1:] = np.cumsum(lens)
        values = np.asarray(flat, np.int64)
    return Workload(arrival_s=t, client=client, prompt_tokens=prompt, output_tokens=output,
                    hash_offsets=offsets, hash_values=values, client_weight=weights, client_names=names,
                    hash_block_tokens=hash_block_tokens, name=path.stem,
                    meta={"source_file": str(path)}, **kw)


def _fmt(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else "inf"


def write_file(w: Workload, path: str | Path) -> Path:
    """Write `w` in the generic format (CSV or JSONL by suffix); `read_file` gives it back.

    Floats are written with `repr` (shortest exact form), so arrival times round-trip bit for bit.
    Client names and the weights of clients without requests are not stored.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(str(path), "", f"unknown trace file type {path.suffix!r}", "use .csv or .jsonl")
    has_h = w.has_prefixes
    if suffix == ".csv":
        with open(path, "w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow([*REQUIRED, *(["hash_ids"] if has_h else []), "priority", "ttft_slo_s", "tbt_slo_s", "weight"])
            for i in range(w.n):
                row = [_fmt(w.arrival_s[i]), int(w.client[i]), int(w.prompt_tokens[i]), int(w.output_tokens[i])]
                if has_h:
                    row.append(json.dumps(w.hashes(i).tolist()))
                row += [int(w.priority[i]), _fmt(w.ttft_slo_s[i]), _fmt(w.tbt_slo_s[i]),
                        _fmt(w.client_weight[w.client[i]])]
                wr.writerow(row)
        return path
    with open(path, "w") as fh:
        for i in range(w.n):
            rec: dict[str, object] = {"arrival_s": float(w.arrival_s[i]), "client_id": int(w.client[i]),
                   "input_tokens": int(w.prompt_tokens[i]), "output_tokens": int(w.output_tokens[i])}
            if has_h:
                rec["hash_ids"] = w.hashes(i).tolist()
            rec["priority"] = int(w.priority[i])
            for col in ("ttft_slo_s", "tbt_slo_s"):
                v = float(getattr(w, col)[i])
                rec[col] = v if math.isfinite(v) else None
            rec["weight"] = float(w.client_weight[w.client[i]])
            fh.write(json.dumps(rec) + "\n")
    return path
