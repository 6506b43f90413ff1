"""Every reference measurement the roofline is calibrated against, as batch shapes + measured seconds,
and the roofline's prediction for them.

Owns the mapping from each reference table (data/reference/, see its README) to batch shapes and to
the roofline component that the table measures, including the assumptions where a table does not
state a shape detail (each one named in `ASSUMPTIONS`). Used by experiments/calibration.py and the
tests; must not fit anything itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

import numpy as np

from llmsched.sim.cost import refdata
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.cost.roofline import RooflineCost, RooflineParams
from llmsched.sim.hardware import GPU, effective_tp, get_gpu, get_model

# Shape details the tables do not state; our choices (also in docs/cost-models.md).
HELIX_PROMPT_LEN = 750  # Helix prompt batches: prompts of AVG_INPUT_LEN = 750 tokens (helix/derived/constants.csv)
HELIX_DECODE_CONTEXT = 1000  # Helix decode batches: 1000 cached tokens per sequence (decode_max_context = tokens x 1000)
SARATHI_DECODE_CONTEXT = 1024  # Sarathi Fig 2 decode batches: context per sequence not recorded; 1024 assumed
VIDUR_MLP_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
VIDUR_ATTN_DECODE = ((1, 2, 4, 8, 16, 32, 64, 128), (128, 512, 1024, 2048, 4032))
VIDUR_ATTN_PREFILL = ((64, 128, 256, 512, 1024, 2048, 4096), (0, 512, 1024, 2048))

ASSUMPTIONS = {
    "helix": f"per-layer times; prompt batches = prompts of {HELIX_PROMPT_LEN} tokens; decode sequences hold "
             f"{HELIX_DECODE_CONTEXT} cached tokens; multi-GPU nodes run TP over PCIe (ring model); "
             "A100 = A100-40GB; values under 5 ms are rounded to whole ms upstream",
    "vidur-mlp": "per-layer sum of Vidur's linear/norm/activation operator medians (no attention, no all-reduce), "
                 "compared with the roofline linear term + layer overhead; A100 = DGX A100-80GB",
    "vidur-attention": "Vidur's early A100 attention profile (Llama-2-70B geometry, TP2): attn_prefill or attn_decode "
                       "+ input/output reshape medians; decode rows give every sequence the same kv_cache_size",
    "sarathi": f"whole iterations of Sarathi-Serve (Yi-34B, TP2, A100-80GB PCIe with pairwise NVLink: 1935 GB/s, "
               f"all-reduce from Vidur's a100_pairwise_nvlink profile); decode context {SARATHI_DECODE_CONTEXT} assumed; "
               "Fig 9 = sum of the chunk iterations of one prompt",
    "slai": "mean iteration time while prefilling 2048-token prompts in chunks of the token budget, one request at a time",
    "llumnix": "Llumnix Fig 10 'recompute' downtime = one prefill of the whole sequence (LLaMA-7B on one A10, "
               "LLaMA-30B on four A10 over PCIe, TP4), with vLLM's per-iteration overhead",
    "vtc": "S-LoRA engine on A10G with llama-7b geometry: prefill of batch_size prompts at once / batch_size; "
           "decode = sum of (output_len - 1) decode steps of the batch / batch_size (output_len = 1 rows excluded: "
           "no decode step runs, the recorded ~1 ms is bookkeeping)",
}


@dataclass(frozen=True, eq=False)
class RefPoint:
    """One measurement: `measured_s` against `scale` * (sum over `shapes`) of the roofline `kind` part."""

    source: str  # helix | vidur-mlp | vidur-attention | sarathi | slai | vtc
    engine: str  # whose per-iteration overhead applies ("" for per-layer / per-operator data)
    gpu: str
    model: str
    tp: int
    kind: str  # layer | linear | attention | iteration
    label: str
    measured_s: float
    shapes: BatchShape
    scale: float = 1.0


def _shapes(rows: list[tuple[int, int, int, int, int, int]]) -> BatchShape:
    a = np.array(rows, dtype=np.int64).reshape(-1, 6)
    return BatchShape(*(a[:, i].copy() for i in range(6)))


def prefill_row(c: int, past: int = 0, n: int = 1) -> tuple[int, int, int, int, int, int]:
    """n prompts, each a chunk of c tokens after `past` cached tokens."""
    return (n * c, n * (c * past + c * (c + 1) // 2), n * (past + c), 0, 0, n)


def decode_row(b: int, ctx_each: int) -> tuple[int, int, int, int, int, int]:
    return (0, 0, 0, b, b * ctx_each, b)


def _helix_points() -> list[RefPoint]:
    out = []
    for hmodel, hgpu in refdata.helix_tables():
        model, gpu = refdata.HELIX_MODEL[hmodel], refdata.HELIX_GPU[hgpu]
        tp = get_gpu(gpu).num_gpus
        for phase in ("prompt", "decode"):
            xs, ys = refdata.helix_bs2time(hmodel, hgpu, phase)
            for x, y in zip(xs, ys):
                n = int(x)
                if n <= 0 or y <= 0:
                    continue
                if phase == "prompt":
                    full, rest = divmod(n, HELIX_PROMPT_LEN)
                    rows = [prefill_row(HELIX_PROMPT_LEN, 0, full)] if full else []
                    if rest:
                        rows.append(prefill_row(rest))
                    # one batch: sum the fields into one iteration
                    shape = _shapes([tuple(np.sum(np.array(rows), axis=0))])
                else:
                    shape = _shapes([decode_row(n, HELIX_DECODE_CONTEXT)])
                out.append(RefPoint("helix", "", gpu, model, tp, "layer", f"{hgpu} {phase} {n}", float(y), shape))
    return out


def _vidur_mlp_points() -> list[RefPoint]:
    out = []
    for (model, gpu) in refdata.VIDUR_MLP:
        for tp in refdata.vidur_mlp_tps(model, gpu):
            n, t = refdata.vidur_mlp(model, gpu, tp)
            for tokens in VIDUR_MLP_TOKENS:
                hit = np.nonzero(n == tokens)[0]
                if len(hit):
                    out.append(RefPoint("vidur-mlp", "", gpu, model, tp, "linear", f"{model} tp{tp} T={tokens}",
                                        float(t[hit[0]]), _shapes([(tokens, 0, 0, 0, 0, 1)])))
    return out


def _vidur_attention_points() -> list[RefPoint]:
    rows = refdata.vidur_attention_old()
    index = {}
    for r in rows:
        key = (r["is_prefill"] == "True", int(r["batch_size"]), int(r["prefill_chunk_size"]), int(r["kv_cache_size"]))
        index[key] = r
    out = []

    def ms(r, op):
        v = r.get(f"time_stats.attn_{op}.median", "")
        return float(v) if v not in ("", None) else 0.0

    for b in VIDUR_ATTN_DECODE[0]:
        for k in VIDUR_ATTN_DECODE[1]:
            row = index.get((False, b, 0, k))
            if row:
                t = (ms(row, "decode") + ms(row, "input_reshape") + ms(row, "output_reshape")) * 1e-3
                out.append(RefPoint("vidur-attention", "", "a100-80gb", "llama-2-70b", 2, "attention",
                                    f"decode b={b} kv={k}", t, _shapes([decode_row(b, k)])))
    for c in VIDUR_ATTN_PREFILL[0]:
        for k in VIDUR_ATTN_PREFILL[1]:
            row = index.get((True, 1, c, k))
            if row:
                t = (ms(row, "prefill") + ms(row, "input_reshape") + ms(row, "output_reshape")) * 1e-3
                out.append(RefPoint("vidur-attention", "", "a100-80gb", "llama-2-70b", 2, "attention",
                                    f"prefill c={c} kv={k}", t, _shapes([prefill_row(c, k)])))
    return out


def _sarathi_points() -> list[RefPoint]:
    out = []
    pp, _, ps = refdata.sarathi_batches("prefill")
    for n, t in zip(pp, ps):
        out.append(RefPoint("sarathi", "sarathi", "a100-80gb", "yi-34b", 2, "iteration", f"fig2 prefill {n}",
                            float(t), _shapes([prefill_row(int(n))])))
    _, dd, ds = refdata.sarathi_batches("decode")
    for b, t in zip(dd, ds):
        out.append(RefPoint("sarathi", "sarathi", "a100-80gb", "yi-34b", 2, "iteration", f"fig2 decode {b}",
                            float(t), _shapes([decode_row(int(b), SARATHI_DECODE_CONTEXT)])))
    for r in refdata.read_csv(f"{refdata.SARATHI_DIR}/table-2/results.csv"):
        p, d = int(r["batch_num_prefill_tokens"]), int(r["batch_num_decode_tokens"])
        row = np.array(prefill_row(p) if p else (0,) * 6) + np.array(decode_row(d, SARATHI_DECODE_CONTEXT) if d else (0,) * 6)
        out.append(RefPoint("sarathi", "sarathi", "a100-80gb", "yi-34b", 2, "iteration", f"table2 p={p} d={d}",
                            float(r["batch_execution_time"]) * 1e-3, _shapes([tuple(row)])))
    for r in refdata.read_csv(f"{refdata.SARATHI_DIR}/figure-9/chunking-overhead.csv"):
        length, chunk = int(r["prefill_length"]), int(r["chunk_size"])
        rows = [prefill_row(min(chunk, length - s), s) for s in range(0, length, chunk)]
        out.append(RefPoint("sarathi", "sarathi", "a100-80gb", "yi-34b", 2, "iteration",
                            f"fig9 prompt {length} chunk {chunk}", float(r["prefill_execution_time"]) * 1e-3,
                            _shapes(rows)))
    return out


def _slai_points() -> list[RefPoint]:
    out = []
    xs, ys = refdata.slai_batches()
    for c, t in zip(xs, ys):
        rows = [prefill_row(min(int(c), 2048 - s), s) for s in range(0, 2048, int(c))]
        out.append(RefPoint("slai", "slai", "rtx-6000-ada", "mistral-7b", 1, "iteration", f"budget {c}",
                            float(t), _shapes(rows), 1.0 / len(rows)))
    return out


def _vtc_points() -> list[RefPoint]:
    out = []
    seen_prefill = set()
    for r in refdata.vtc_profile():
        L, out_len, B = int(r["input_len"]), int(r["output_len"]), int(r["batch_size"])
        if (L, B) not in seen_prefill:
            seen_prefill.add((L, B))
            out.append(RefPoint("vtc", "vtc", "a10g", "llama-2-7b", 1, "iteration", f"prefill {B}x{L}",
                                r["prefill_time_per_req_s"], _shapes([prefill_row(L, 0, B)]), 1.0 / B))
        if out_len > 1:
            rows = [decode_row(B, L + j) for j in range(1, out_len)]
            out.append(RefPoint("vtc", "vtc", "a10g", "llama-2-7b", 1, "iteration", f"decode {B}x{L}+{out_len}",
                                r["decode_time_per_req_s"], _shapes(rows), 1.0 / B))
    return out


def _llumnix_points() -> list[RefPoint]:
    out = []
    for r in refdata.read_csv("llumnix/derived/figure10_series.csv"):
        if r["series"] != "recompute":
            continue
        model, tp = ("llama-2-7b", 1) if r["model"] == "LLaMA-7B" else ("llama-1-30b", 4)
        n = int(r["sequence_length"])
        out.append(RefPoint("llumnix", "", "a10", model, tp, "iteration", f"{r['model']} recompute {n}",
                            float(r["value_ms"]) * 1e-3, _shapes([prefill_row(n)])))
    return out


@cache
def reference_points() -> tuple[RefPoint, ...]:
    """All calibration points, in a fixed order."""
    return tuple(_helix_points() + _vidur_mlp_points() + _vidur_attention_points() + _sarathi_points()
                 + _slai_points() + _vtc_points() + _llumnix_points())


def point_gpu(p: RefPoint) -> GPU:
    """The GPU as measured: Sarathi ran on A100-80GB PCIe cards joined by pairwise NVLink (Azure NC96ads
    A100 v4, per the upstream README); PCIe card bandwidth 1,935 GB/s (NVIDIA A100 datasheet, A100 80GB PCIe)."""
    g = get_gpu(p.gpu)
    if p.source == "sarathi":
        return dataclasses.replace(g, hbm_bandwidth_Bps=1935e9, node_sku="a100_pairwise_nvlink")
    return g


def predict(points, params_for) -> np.ndarray:
    """Roofline predictions (seconds) for `points`; `params_for(point)` gives its RooflineParams."""
    out = np.zeros(len(points))
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p.source, p.engine, p.gpu, p.model, p.tp, p.kind), []).append(i)
    for idx in groups.values():
        p0 = points[idx[0]]
        params: RooflineParams = params_for(p0)
        m, g = get_model(p0.model), point_gpu(p0)
        cost = RooflineCost(m, g, effective_tp(m, get_gpu(p0.gpu), p0.tp), params)
        shapes = [points[i].shapes for i in idx]
        lens = np.array([len(s) for s in shapes])
        cat = BatchShape(*(np.concatenate([getattr(s, f.name) for s in shapes])
                           for f in dataclasses.fields(BatchShape)))
        comp = cost.components(cat)
        if p0.kind == "layer":
            v = comp["layer"]
        elif p0.kind == "linear":
            v = comp["linear"] + np.where(cat.total_tokens > 0, params.layer_overhead_s, 0.0)
        elif p0.kind == "attention":
            v = comp["prefill_attn"] + comp["decode_attn"]
        else:
            v = comp["total"]
        sums = np.add.reduceat(v, np.concatenate([[0], np.cumsum(lens)[:-1]]))
        out[idx] = sums * np.array([points[i].scale for i in idx])
    return out
