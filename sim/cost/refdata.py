"""Readers for the reference tables copied into data/reference/ (see its README for provenance).

Owns file locations and parsing into plain numpy arrays (SI units: seconds, bytes, tokens).
Cached, read-only; must not import cost models.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from functools import cache

import numpy as np

from llmsched.sim.paths import DATA_DIR as BUNDLED_DATA_DIR

REF_DIR = BUNDLED_DATA_DIR / "reference"
FITS_PATH = REF_DIR / "fits.json"

VIDUR_MLP = {  # (catalogue model, catalogue gpu) -> Vidur compute profile (A100 = DGX A100-80GB SXM)
    ("llama-2-7b", "a100-80gb"): "vidur/upstream/data/profiling/compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv.gz",
    ("llama-2-7b", "h100-80gb"): "vidur/upstream/data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv.gz",
    ("llama-3.1-8b", "a100-80gb"): "vidur/upstream/data/profiling/compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv.gz",
    ("codellama-34b", "a100-80gb"):
        "vidur/upstream/data/profiling/compute/a100/codellama/CodeLlama-34b-Instruct-hf/mlp.csv.gz",
    ("llama-2-70b", "a100-80gb"): "vidur/upstream/data/profiling/compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv.gz",
}
# Per-layer operators Vidur times in mlp.csv (all but `emb`, which runs once per model).
VIDUR_LAYER_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
                   "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")

HELIX_GPU = {"a100": "a100-40gb", "v100": "v100-16gb", "l4": "l4", "l4x2": "l4x2", "t4": "t4",
             "t4x2": "t4x2", "t4x4": "t4x4"}
HELIX_MODEL = {"LLaMA-2-70B": "llama-2-70b", "LLaMA-1-30B": "llama-1-30b"}


def _open_text(rel: str):
    p = REF_DIR / rel
    if not p.exists() and (REF_DIR / (rel + ".gz")).exists():  # large CSVs are stored gzipped
        p = REF_DIR / (rel + ".gz")
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p), encoding="utf-8")
    return open(p, encoding="utf-8")


@cache
def read_csv(rel: str) -> tuple[dict[str, str], ...]:
    with _open_text(rel) as fh:
        return tuple(csv.DictReader(fh))


def col(rows, name: str, dtype=float) -> np.ndarray:
    return np.array([dtype(r[name]) for r in rows])


@cache
def vidur_mlp(model: str, gpu: str, tp: int) -> tuple[np.ndarray, np.ndarray]:
    """(num_tokens, per-layer seconds summed over VIDUR_LAYER_OPS medians) at this TP, sorted, unique."""
    rows = [r for r in read_csv(VIDUR_MLP[(model, gpu)]) if int(r["num_tensor_parallel_workers"]) == tp]
    rows.sort(key=lambda r: int(r["num_tokens"]))
    n = col(rows, "num_tokens", int)
    t = sum(col(rows, f"time_stats.{op}.median") for op in VIDUR_LAYER_OPS) * 1e-3
    # a few token counts were profiled twice (e.g. 4096): keep one point, the mean of the repeats
    un, inv = np.unique(n, return_inverse=True)
    tm = np.bincount(inv, weights=t) / np.bincount(inv)
    return un, tm


def vidur_mlp_tps(model: str, gpu: str) -> list[int]:
    return sorted({int(r["num_tensor_parallel_workers"]) for r in read_csv(VIDUR_MLP[(model, gpu)])})


@cache
def vidur_collective(node_sku: str, collective: str, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, median seconds) of an intra-node collective with `workers` ranks, sorted by size.

    all_reduce: devices_per_node == workers (one node). send_recv: devices_per_node == 2 (intra-node).
    Empty arrays when the profile has no such rows.
    """
    rel = f"vidur/upstream/data/profiling/network/{node_sku}/{collective}.csv"
    if not (REF_DIR / rel).exists() and not (REF_DIR / (rel + ".gz")).exists():
        return np.zeros(0), np.zeros(0)
    dpn = workers if collective == "all_reduce" else 2
    rows = [r for r in read_csv(rel) if int(r["num_workers"]) == workers and int(r["devices_per_node"]) == dpn]
    rows.sort(key=lambda r: int(r["size"]))
    size = col(rows, "size")
    t = col(rows, f"time_stats.{collective}.median") * 1e-3
    if len(size):  # repeated sizes: keep the first (np.interp needs increasing xp)
        keep = np.concatenate([[True], np.diff(size) > 0])
        size, t = size[keep], t[keep]
    return size, t


@cache
def helix_bs2time(model: str, gpu_config: str, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Helix per-layer profile: (batch tokens, seconds per layer), phase 'prompt' or 'decode'."""
    rows = [r for r in read_csv("helix/derived/bs2time_all.csv")
            if r["model"] == model and r["gpu_config"] == gpu_config and r["phase"] == phase]
    x = col(rows, "batch_tokens")
    y = col(rows, "layer_time_ms") * 1e-3
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def helix_tables() -> list[tuple[str, str]]:
    rows = read_csv("helix/derived/bs2time_all.csv")
    return sorted({(r["model"], r["gpu_config"]) for r in rows})


SARATHI_DIR = "sarathi_serve_osdi/upstream/osdi-experiments"


@cache
def sarathi_batches(which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Figure 2 of Sarathi-Serve (Yi-34B, TP2, A100-80GB PCIe pairs): (prefill tokens, decode tokens, s)."""
    rows = read_csv(f"{SARATHI_DIR}/figure-2/{which}.csv")
    return (col(rows, "batch_num_prefill_tokens", int), col(rows, "batch_num_decode_tokens", int),
            col(rows, "batch_execution_time"))


@cache
def slai_batches() -> tuple[np.ndarray, np.ndarray]:
    """SLAI Fig 5(a): (chunk tokens, mean batch seconds); Mistral-7B on one RTX 6000 Ada."""
    rows = read_csv("slai/upstream/scripts/plot1_results.csv")
    return col(rows, "chunk", int), col(rows, "batch_ms") * 1e-3


@cache
def vtc_profile() -> tuple[dict[str, float], ...]:
    """VTC cost profile rows (llama-7b dummy weights on A10G): input_len, output_len, batch_size,
    prefill_time_per_req_s, decode_time_per_req_s."""
    return tuple({k: float(v) for k, v in r.items()} for r in read_csv("vtc/derived/cost_profile_long.csv"))


@cache
def vidur_cpu_overheads(model_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Vidur per-iteration CPU overhead (schedule + sampler + prepare inputs + process outputs, medians),
    (batch_size, seconds)."""
    rows = [r for r in read_csv("vidur/upstream_old/data/profiling/a100/cpu_overheads.csv")
            if r["model_name"] == model_name]
    parts = ("schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs")
    t = sum((col(rows, f"{p}_median") for p in parts), start=np.zeros(len(rows))) * 1e-3
    return col(rows, "batch_size"), t


@cache
def vidur_attention_old() -> tuple[dict[str, str], ...]:
    """Vidur's early A100 attention profile (Llama-2-70B geometry, TP2, FlashAttention)."""
    return read_csv("vidur/upstream_old/data/profiling/a100/attention.csv.gz")


def load_fits() -> dict:
    if not FITS_PATH.exists():
        return {}
    return json.loads(FITS_PATH.read_text())
