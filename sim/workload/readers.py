"""Readers for the bundled traces in `data/traces/`: Azure 2023, Mooncake FAST'25, LMSYS/VTC arena,
and the ShareGPT / arXiv length files. Each validates its input and is cached in memory.

Owns file parsing into `Workload`s (times relative to the first request, in seconds). Rescaling,
cutting and the name -> file mapping live in `llmsched.sim.workload.catalog`; ServeGen in `servegen.py`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError
from llmsched.sim.paths import DATA_DIR as BUNDLED_DATA_DIR
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.hashing import mix63, name_salt
from llmsched.sim.workload.validate import (
    json_lines,
    numeric,
    require_columns,
    require_file,
    sorted_times,
)

DATA_DIR = BUNDLED_DATA_DIR
TRACES_DIR = DATA_DIR / "traces"

# Mooncake FAST'25 traces: hash_ids name 512-token prompt blocks (kvcache-ai/Mooncake,
# FAST25-release/README.md; verified: len(hash_ids) == ceil(input_length / 512) on every row).
MOONCAKE_BLOCK_TOKENS = 512

TRACE_FILES = {
    "azure-code-2023": "azure-code-2023/AzureLLMInferenceTrace_code.csv",
    "azure-conv-2023": "azure-conv-2023/AzureLLMInferenceTrace_conv.csv",
    "mooncake-conversation": "mooncake/conversation_trace.jsonl",
    "mooncake-synthetic": "mooncake/synthetic_trace.jsonl",
    "lmsys-arena-vtc": "lmsys-arena-vtc/vtc_arena_trace.csv",
    "sharegpt": "sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
    "arxiv-summarization": "arxiv-summarization/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
}


def trace_path(name: str) -> Path:
    return TRACES_DIR / TRACE_FILES[name]


def _read_csv(path: Path, what: str, **kw) -> pd.DataFrame:
    require_file(path, what)
    try:
        return pd.read_csv(path, **kw)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(str(path), "", f"not a readable CSV ({str(exc).splitlines()[0]})",
                         "check the file is a comma-separated table with a header row") from None


# -- Azure LLM inference trace 2023 ----------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def read_azure(path: str | Path, name: str = "azure") -> Workload:
    """Azure 2023 (code or conv): `TIMESTAMP, ContextTokens, GeneratedTokens`, one row per request.

    TIMESTAMP is wall-clock with 7 fractional digits (`2023-11-16 18:15:46.6805900`, no zone);
    arrival_s = seconds since the first row. Single client. (Azure/AzurePublicDataset,
    AzureLLMInferenceDataset2023.md; Patel et al., Splitwise, ISCA 2024.)
    """
    path = Path(path)
    df = _read_csv(path, "Azure trace", dtype={"TIMESTAMP": str})
    require_columns(df, ["TIMESTAMP", "ContextTokens", "GeneratedTokens"], path)
    ts = pd.to_datetime(df["TIMESTAMP"], format="%Y-%m-%d %H:%M:%S.%f", errors="coerce")
    if ts.isna().any():
        pos = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise InputError(str(path), "TIMESTAMP", f"row {pos + 1} (line {pos + 2}): not a timestamp "
                         f"({df['TIMESTAMP'].iloc[pos]!r})", "use 'YYYY-MM-DD HH:MM:SS.fffffff'")
    ns = ts.to_numpy().astype("datetime64[ns]").astype(np.int64)
    t = (ns - ns[0]) / 1e9 if len(ns) else np.zeros(0)
    sorted_times(t, "TIMESTAMP", path)
    prompt = numeric(df, "ContextTokens", path, integer=True, minimum=1)
    output = numeric(df, "GeneratedTokens", path, integer=True, minimum=1)
    return Workload(arrival_s=t, client=np.zeros(len(t), np.int64), prompt_tokens=prompt,
                    output_tokens=output, client_names=(name,), name=name,
                    meta={"source_file": str(path)})


# -- Mooncake FAST'25 ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def read_mooncake(path: str | Path, name: str = "mooncake") -> Workload:
    """Mooncake JSONL: `timestamp` (ms from trace start), `input_length`, `output_length`, `hash_ids`.

    hash_ids become prefix blocks of 512 tokens; the last block of a prompt may be partial
    (len(hash_ids) = ceil(input_length / 512)). Raw ids are small integers shared by both Mooncake
    files for unrelated content, so they are scrambled with a per-trace salt (`mix63`), which keeps
    equal ids equal within a trace and makes the two traces' ids disjoint (up to 2^-63 chance).
    (kvcache-ai/Mooncake FAST25-release/README.md; Qin et al., FAST 2025.)
    """
    path = Path(path)
    require_file(path, "Mooncake trace")
    t_ms, inp, out, lens, ids = [], [], [], [], []
    cols = ("timestamp", "input_length", "output_length", "hash_ids")
    for line_no, rec in json_lines(path):
        for c in cols:
            if c not in rec:
                raise InputError(str(path), c, f"line {line_no}: missing key",
                                 f"every line needs the keys {', '.join(cols)}")
        h = rec["hash_ids"]
        if not isinstance(h, list):
            raise InputError(str(path), "hash_ids", f"line {line_no}: not a list", "write a JSON list of integers")
        t_ms.append(rec["timestamp"])
        inp.append(rec["input_length"])
        out.append(rec["output_length"])
        lens.append(len(h))
        ids.extend(h)
    df = pd.DataFrame({"timestamp": t_ms, "input_length": inp, "output_length": out})
    t = numeric(df, "timestamp", path, minimum=0, header_lines=0) / 1000.0
    t = t - t[0] if len(t) else t
    sorted_times(t, "timestamp", path, header_lines=0)
    prompt = numeric(df, "input_length", path, integer=True, minimum=1, header_lines=0)
    output = numeric(df, "output_length", path, integer=True, minimum=1, header_lines=0)
    lens_a = np.asarray(lens, np.int64)
    too_many = lens_a > -(-prompt // MOONCAKE_BLOCK_TOKENS)
    if too_many.any():
        pos = int(np.flatnonzero(too_many)[0])
        raise InputError(str(path), "hash_ids", f"line {pos + 1}: {lens_a[pos]} blocks for {prompt[pos]} "
                         f"tokens (more than ceil(input_length/{MOONCAKE_BLOCK_TOKENS}))",
                         "give one hash id per 512-token block of the prompt")
    raw = np.asarray(ids, dtype=np.float64)
    if len(raw) and (np.any(raw < 0) or np.any(raw != np.floor(raw)) or raw.max() >= 2**53):
        raise InputError(str(path), "hash_ids", "ids must be non-negative integers below 2^53")
    values = mix63(raw.astype(np.int64), name_salt(f"mooncake:{name}"))
    offsets = np.concatenate([[0], np.cumsum(lens_a)]).astype(np.int64)
    return Workload(arrival_s=t, client=np.zeros(len(t), np.int64), prompt_tokens=prompt,
                    output_tokens=output, hash_offsets=offsets, hash_values=values,
                    client_names=(name,), hash_block_tokens=MOONCAKE_BLOCK_TOKENS, name=name,
                    meta={"source_file": str(path)})


# -- LMSYS Chatbot Arena trace from the VTC artifact ---------------------------------------------
@functools.lru_cache(maxsize=4)
def read_lmsys_vtc(path: str | Path, name: str = "lmsys-arena-vtc") -> Workload:
    """VTC arena trace: `req_id, arrival_s, client_id, adapter_name, input_tokens, output_tokens`.

    27 clients (one per Arena model name), arrivals rescaled upstream onto [0, 600] s.
    (Ying1123/VTC-artifact fair_bench/real_trace.pkl, converted; Sheng et al., OSDI 2024.)
    """
    path = Path(path)
    df = _read_csv(path, "LMSYS/VTC trace")
    cols = ["arrival_s", "client_id", "adapter_name", "input_tokens", "output_tokens"]
    require_columns(df, cols, path)
    t = numeric(df, "arrival_s", path)
    sorted_times(t, "arrival_s", path)
    client = numeric(df, "client_id", path, integer=True)
    n_clients = int(client.max()) + 1 if len(client) else 0
    names = [f"client{c}" for c in range(n_clients)]
    for c, a in zip(client, df["adapter_name"].astype(str)):
        names[c] = a
    return Workload(arrival_s=t - (t[0] if len(t) else 0.0), client=client,
                    prompt_tokens=numeric(df, "input_tokens", path, integer=True, minimum=1),
                    output_tokens=numeric(df, "output_tokens", path, integer=True, minimum=1),
                    client_names=tuple(names), name=name, meta={"source_file": str(path)})


# -- length-only files (ShareGPT, arXiv summarization) -------------------------------------------
@functools.lru_cache(maxsize=8)
def read_length_pairs(path: str | Path) -> np.ndarray:
    """(m, 2) int64 array of (prompt, output) tokens from `num_prefill_tokens, num_decode_tokens`.

    (microsoft/sarathi-serve and microsoft/vidur data/processed_traces/*_stats_llama2_tokenizer*.csv.)
    """
    path = Path(path)
    df = _read_csv(path, "length file")
    require_columns(df, ["num_prefill_tokens", "num_decode_tokens"], path)
    pairs = np.stack([numeric(df, "num_prefill_tokens", path, integer=True, minimum=1),
                      numeric(df, "num_decode_tokens", path, integer=True, minimum=1)], axis=1)
    pairs.setflags(write=False)
    return pairs


def trace_pairs(name: str) -> np.ndarray:
    """(prompt, output) pairs of any bundled request trace or length file, for empirical sampling."""
    if name in ("sharegpt", "arxiv-summarization"):
        return read_length_pairs(trace_path(name))
    w = read_bundled(name)
    return np.stack([w.prompt_tokens, w.output_tokens], axis=1)


def read_bundled(name: str) -> Workload:
    """The bundled request trace `name` as shipped (no rescaling or cutting)."""
    if name in ("azure-code-2023", "azure-conv-2023"):
        return read_azure(trace_path(name), name)
    if name in ("mooncake-conversation", "mooncake-synthetic"):
        return read_mooncake(trace_path(name), name)
    if name == "lmsys-arena-vtc":
        return read_lmsys_vtc(trace_path(name), name)
    raise InputError("bundled traces", "source", f"{name!r} is not a bundled request trace",
                     f"use one of: {', '.join(n for n in TRACE_FILES if n not in ('sharegpt', 'arxiv-summarization'))}")
