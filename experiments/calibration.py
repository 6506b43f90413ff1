"""Calibrate the roofline cost model against every reference measurement and write the report.

`python -m llmsched.experiments.calibration` fits the efficiency factors per GPU (scipy least squares on log
error), the per-iteration overheads per serving engine, writes data/reference/fits.json and
data/reference/fit_points.csv (every point: data, prediction, error), docs/cost-models.md and
docs/figures/cost_calibration.png. Reads only data/reference/; never edits the catalogue.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from llmsched.sim.cost import comm, refdata
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.cost.reference_points import ASSUMPTIONS, RefPoint, predict, reference_points
from llmsched.sim.cost.roofline import RooflineCost, RooflineParams
from llmsched.sim.cost.stacks import STACKS
from llmsched.sim.hardware import get_gpu

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIG_DIR = DOCS / "figures"
POINTS_CSV = refdata.REF_DIR / "fit_points.csv"

ENGINE_FIELDS = ("iteration_overhead_s", "request_overhead_s")
BOUNDS = {"eff_compute": (0.02, 1.0), "eff_memory": (0.02, 1.0), "eff_attention": (0.005, 1.0),
          "layer_overhead_s": (1e-7, 5e-3), "attention_overhead_s": (1e-7, 1e-3),
          "iteration_overhead_s": (1e-6, 0.2), "request_overhead_s": (1e-8, 2e-3), "eff_link": (0.02, 1.0)}
PRIOR_WEIGHT = 0.05  # weak pull (in log space) toward the unfitted defaults: keeps unidentified factors there
VLLM_ENGINE = "vllm"


def vllm_overhead_fit() -> dict:
    """Least-squares line overhead = a + b * batch through Vidur's Llama-2-7B (TP1) CPU overheads."""
    bs, t = refdata.vidur_cpu_overheads("meta-llama/Llama-2-7b-hf")
    b, a = np.polyfit(bs, t, 1)
    return {"iteration_overhead_s": float(a), "request_overhead_s": float(b),
            "data": {"batch_size": bs.tolist(), "overhead_s": t.tolist()},
            "source": "vidur/upstream_old/data/profiling/a100/cpu_overheads.csv, Llama-2-7b-hf rows: "
                      "schedule + sampler_e2e + prepare_inputs_e2e + process_model_outputs medians"}


# stack name -> the fitted engine whose overheads it is (fitted jointly with the GPU factors above)
ENGINE_STACKS = {"vllm": VLLM_ENGINE, "sarathi": "sarathi", "slai": "slai", "slora": "vtc"}


def _gpu_time(fits: dict, gpu: str, model: str, tp: int, shape, part: str = "total") -> np.ndarray:
    """The fitted roofline's time without any per-iteration overhead (iteration and request terms 0)."""
    p = dataclasses.replace(_fitted(fits, gpu), iteration_overhead_s=0.0, request_overhead_s=0.0)
    cost = RooflineCost.create(model, gpu, tp, p)
    c = cost.components(shape)
    if part == "no_attention":  # linear + all-reduce + layer overhead per layer, and the LM head
        return (c["linear"] + c["comm"] + p.layer_overhead_s) * float(cost.model.layers) + c["head"]
    return c["total"]


def _fitted(fits: dict, gpu: str) -> RooflineParams:
    fields = RooflineParams.__dataclass_fields__
    return RooflineParams(**{k: float(v) for k, v in fits["gpus"][gpu]["params"].items() if k in fields})


def _residual_stack(label_meas_gpu: list[tuple[str, float, float]], request_overhead_s: float, nreq: int) -> dict:
    """Least-squares constant iteration overhead = mean(measured - GPU time - request term), clipped at 0."""
    meas = np.array([m for _, m, _ in label_meas_gpu])
    gpu = np.array([g for _, _, g in label_meas_gpu])
    io = max(float(np.mean(meas - gpu - request_overhead_s * nreq)), 0.0)
    pred = gpu + io + request_overhead_s * nreq
    return {"iteration_overhead_s": io, "request_overhead_s": request_overhead_s,
            "points": [{"label": lab, "measured_s": float(m), "gpu_time_s": float(g), "predicted_s": float(q)}
                       for (lab, m, g), q in zip(label_meas_gpu, pred)],
            **ratio_stats(pred, meas)}


def stack_fits(fits: dict) -> dict:
    """Every named stack's overheads (see llmsched.sim.cost.stacks.STACKS for what each is calibrated on)."""
    out = {}
    for name, engine in ENGINE_STACKS.items():
        e = fits["engines"][engine]
        out[name] = {"iteration_overhead_s": e["iteration_overhead_s"], "request_overhead_s": e["request_overhead_s"],
                     "method": f"engine '{engine}' of this calibration", "data": STACKS[name][1]}
    vllm_ro = fits["engines"][VLLM_ENGINE]["request_overhead_s"]
    # vllm-llumnix: Llumnix Fig 10 per-step decode of one sequence of L tokens on A10 (LLaMA-7B TP1, LLaMA-30B TP4);
    # the per-request term is not identified by one-sequence batches and is kept at vLLM's.
    rows = []
    for r in refdata.read_csv("llumnix/derived/figure10_series.csv"):
        if r["series"] != "decode":
            continue
        model, tp = ("llama-2-7b", 1) if r["model"] == "LLaMA-7B" else ("llama-1-30b", 4)
        L = int(r["sequence_length"])
        g = float(_gpu_time(fits, "a10", model, tp, BatchShape.decode_only(1, L))[0])
        rows.append((f"{r['model']} decode, 1 sequence of {L}", float(r["value_ms"]) * 1e-3, g))
    out["vllm-llumnix"] = {**_residual_stack(rows, vllm_ro, 1), "data": STACKS["vllm-llumnix"][1],
                           "method": "mean of measured - fitted A10 roofline GPU time - vLLM request term"}
    # sglang: Preble's piecewise SGLang fit (Mistral-7B, A100) at decode batches inside each piece; attention is
    # modelled separately by Preble, so compared with our GPU time without attention.
    rows = []
    for r in refdata.read_csv("preble/derived/sglang_a100_linear_model.csv"):
        lo, hi = int(r["num_batched_tokens_from"]), int(r["num_batched_tokens_to"])
        for b in sorted({lo, (lo + hi) // 2, hi} if hi <= 512 else {lo, 512}):
            f = r["formula_ms"]
            ms = float(f) if "*x+" not in f else float(f.split("*x+")[0]) * b + float(f.split("*x+")[1])
            g = float(_gpu_time(fits, "a100-80gb", "mistral-7b", 1, BatchShape.decode_only(b, 0), "no_attention")[0])
            rows.append((f"Mistral-7B {b} decode tokens", ms * 1e-3, g))
    out["sglang"] = {**_residual_stack(rows, 0.0, 0), "data": STACKS["sglang"][1],
                     "method": "mean of Preble's SGLang time - fitted A100-80GB roofline GPU time (no attention), "
                               "clipped at 0; per-request term 0 (not identified)",
                     "mean_residual_s": float(np.mean([m - g for _, m, g in rows]))}
    return out


def ratio_stats(pred: np.ndarray, meas: np.ndarray) -> dict:
    r = pred / meas
    return {"n": len(r), "median_abs_rel_err": float(np.median(np.abs(r - 1.0))) if len(r) else 0.0,
            "max_ratio": float(np.max(np.maximum(r, 1.0 / r))) if len(r) else 1.0}


# Multi-GPU nodes share their chip's efficiencies with the single GPU (same silicon); each node
# fits its own link efficiency and per-layer overhead. Other GPUs are fitted alone.
FAMILIES = {"l4": ("l4", "l4x2"), "t4": ("t4", "t4x2", "t4x4")}
CHIP_FIELDS = ("eff_compute", "eff_memory", "eff_attention", "attention_overhead_s")
NODE_FIELDS = ("layer_overhead_s", "eff_link")


def _params(vec: dict, gpu: str, engine: str) -> RooflineParams:
    d = {k: vec[k] for k in CHIP_FIELDS}
    d.update({k: vec[f"{gpu}:{k}"] for k in NODE_FIELDS})
    d.update({k: vec.get(f"{engine}:{k}", vec[f"{VLLM_ENGINE}:{k}"]) for k in ENGINE_FIELDS})
    return RooflineParams(**d)


def fit_family(gpus: tuple[str, ...], points: list[RefPoint], vllm: dict) -> tuple[dict, dict]:
    """Fit one chip's factors over its GPUs/nodes (+ the overheads of the engines measured on them).
    Returns ({gpu: params}, {engine: overheads})."""
    default = RooflineParams()
    names = list(CHIP_FIELDS) + [f"{g}:{k}" for g in gpus for k in NODE_FIELDS]
    engines = sorted({p.engine for p in points if p.kind == "iteration" and p.engine})
    names += [f"{e}:{k}" for e in engines for k in ENGINE_FIELDS]
    field = [n.split(":")[-1] for n in names]
    x0 = np.array([math.log(getattr(default, f)) for f in field])
    lo = np.array([math.log(BOUNDS[f][0]) for f in field])
    hi = np.array([math.log(BOUNDS[f][1]) for f in field])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    meas = np.array([p.measured_s for p in points])
    counts: dict[tuple, int] = {}
    for p in points:
        counts[(p.gpu, p.source)] = counts.get((p.gpu, p.source), 0) + 1
    w = np.array([1.0 / math.sqrt(counts[(p.gpu, p.source)]) for p in points])
    fixed = {f"{VLLM_ENGINE}:{k}": vllm[k] for k in ENGINE_FIELDS}

    def unpack(x):
        vec = dict(fixed)
        vec.update({n: math.exp(v) for n, v in zip(names, x)})
        return vec

    def resid(x):
        vec = unpack(x)
        pred = predict(points, lambda p: _params(vec, p.gpu, p.engine or VLLM_ENGINE))
        return np.concatenate([w * np.log(pred / meas), PRIOR_WEIGHT * (x - x0)])

    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale=1.0, max_nfev=400)
    vec = unpack(sol.x)
    params = {g: {**{k: vec[k] for k in CHIP_FIELDS}, **{k: vec[f"{g}:{k}"] for k in NODE_FIELDS}} for g in gpus}
    eng = {e: {k: vec[f"{e}:{k}"] for k in ENGINE_FIELDS} for e in engines}
    return params, eng


def calibrate() -> dict:
    points = list(reference_points())
    vllm = vllm_overhead_fit()
    fits = {"generated_by": "python -m llmsched.experiments.calibration",
            "method": "per chip (a GPU and its multi-GPU nodes share eff_compute, eff_memory, eff_attention and "
                      "attention_overhead_s; each node has its own layer_overhead_s and eff_link): "
                      "scipy.optimize.least_squares on w_i*log(pred/measured), w_i = 1/sqrt(points of the same "
                      f"source and GPU), plus a {PRIOR_WEIGHT} log-space pull to the unfitted defaults",
            "assumptions": ASSUMPTIONS, "engines": {VLLM_ENGINE: {**vllm, "gpu": "any"}}, "gpus": {}}
    gpus = sorted({p.gpu for p in points})
    family_of = {g: fam for fam, members in FAMILIES.items() for g in members}
    families: dict[str, tuple[str, ...]] = {}
    for g in gpus:
        families.setdefault(family_of.get(g, g), ())
        families[family_of.get(g, g)] += (g,)
    for members in families.values():
        pts = [p for p in points if p.gpu in members]
        params, eng = fit_family(members, pts, vllm)
        for e, v in eng.items():
            fits["engines"][e] = {**v, "gpu": ", ".join(members), "source": e}
        for g in members:
            fits["gpus"][g] = {"params": {**params[g], **{k: vllm[k] for k in ENGINE_FIELDS}},
                               "sources": sorted({p.source for p in pts if p.gpu == g}),
                               "n_points": sum(p.gpu == g for p in pts), "fitted_with": list(members)}
    pred = predict(points, lambda p: params_for_point(fits, p))
    meas = np.array([p.measured_s for p in points])
    for g in gpus:
        sel = np.array([p.gpu == g for p in points])
        fits["gpus"][g].update(ratio_stats(pred[sel], meas[sel]))
    fits["overall"] = ratio_stats(pred, meas)
    fits["held_out_2fold"] = cross_validate(points, vllm)
    fits["by_source"] = {s: ratio_stats(pred[sel], meas[sel]) for s in sorted({p.source for p in points})
                         for sel in [np.array([p.source == s for p in points])]}
    fits["stacks"] = stack_fits(fits)
    return fits


def cross_validate(points: list[RefPoint], vllm: dict) -> dict:
    """Two-fold check of over-fitting: points alternate between folds within each (GPU, source) table;
    each fold is predicted by factors fitted on the other. Returns held-out error stats."""
    family_of = {g: fam for fam, members in FAMILIES.items() for g in members}
    seen: dict[tuple, int] = {}
    fold = []
    for p in points:
        k = (p.gpu, p.source)
        fold.append(seen.get(k, 0) % 2)
        seen[k] = seen.get(k, 0) + 1
    fold = np.array(fold)
    pred = np.zeros(len(points))
    for fam in sorted({family_of.get(p.gpu, p.gpu) for p in points}):
        in_fam = np.array([family_of.get(p.gpu, p.gpu) == fam for p in points])
        members = tuple(sorted({p.gpu for p, f in zip(points, in_fam) if f}))
        for k in (0, 1):
            train = [p for p, f, fd in zip(points, in_fam, fold) if f and fd != k]
            test_idx = np.nonzero(in_fam & (fold == k))[0]
            params, eng = fit_family(members, train, vllm)
            vec = {f"{VLLM_ENGINE}:{x}": vllm[x] for x in ENGINE_FIELDS}
            for e, v in eng.items():
                vec.update({f"{e}:{x}": y for x, y in v.items()})
            for g, prm in params.items():
                vec.update({x: prm[x] for x in CHIP_FIELDS})
                vec.update({f"{g}:{x}": prm[x] for x in NODE_FIELDS})
            test = [points[i] for i in test_idx]
            pred[test_idx] = predict(test, lambda p, vec=vec: _params(vec, p.gpu, p.engine or VLLM_ENGINE))
    meas = np.array([p.measured_s for p in points])
    return ratio_stats(pred, meas)


def params_for_point(fits: dict, p: RefPoint) -> RooflineParams:
    """The fitted GPU factors with the overheads of the engine that measured `p`."""
    d = dict(fits["gpus"][p.gpu]["params"])
    eng = fits["engines"].get(p.engine or VLLM_ENGINE, fits["engines"][VLLM_ENGINE])
    d.update({k: eng[k] for k in ENGINE_FIELDS})
    fields = {f.name for f in dataclasses.fields(RooflineParams)}
    return RooflineParams(**{k: float(v) for k, v in d.items() if k in fields})


def write_points(points, pred) -> None:
    with open(POINTS_CSV, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["source", "gpu", "model", "tp", "kind", "label", "measured_s", "predicted_s", "rel_err"])
        for p, y in zip(points, pred):
            wr.writerow([p.source, p.gpu, p.model, p.tp, p.kind, p.label, repr(p.measured_s), repr(float(y)),
                         f"{y / p.measured_s - 1:.4f}"])


def figure(points, pred) -> Path:
    from llmsched.experiments import style
    fig, ax = style.figure("column", height_in=3.0)
    meas = np.array([p.measured_s for p in points]) * 1e3
    for s in sorted({p.source for p in points}):
        sel = np.array([p.source == s for p in points])
        ax.loglog(meas[sel], pred[sel] * 1e3, ".", label=s, alpha=0.6, markersize=2.5)
    lo_, hi_ = meas.min() / 2, meas.max() * 2
    ax.loglog([lo_, hi_], [lo_, hi_], "k-", lw=0.6)
    ax.loglog([lo_, hi_], [2 * lo_, 2 * hi_], "k:", lw=0.5)
    ax.loglog([lo_, hi_], [lo_ / 2, hi_ / 2], "k:", lw=0.5)
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("fitted roofline (ms)")
    ax.legend(loc="upper left", frameon=False)
    paths = style.save(fig, FIG_DIR, "cost_calibration")
    return paths[0]


def comm_rows() -> list[tuple]:
    """Ring model over the catalogue link vs Vidur's measured all-reduce (for the report)."""
    rows = []
    for g in ("a100-80gb", "h100-80gb"):
        for tp in (2, 4, 8):
            meas = comm.all_reduce(g, tp, measured=True)
            ring = comm.all_reduce(g, tp, measured=False)
            for size in (2048 * 8, 1 << 20, 1 << 24, 1 << 26):
                m, r = float(meas(np.array([size]))[0]), float(ring(np.array([size]))[0])
                rows.append((g, get_gpu(g).node_sku, tp, size, m, r))
    return rows


MODELS_TEXT = """## The cost models

An instance's `cost` string picks one (`llmsched.sim.cost.build(spec, model, gpu, tp)`, cached). All are
pure element-wise functions of the integer `BatchShape` fields (only +, -, *, /, max, ceil,
np.interp), so evaluating one iteration or a thousand gives bit-identical times; an iteration with
no tokens takes 0 s.

| spec | time of one iteration |
|---|---|
| `roofline` (default) | the physics model below with the factors fitted for the GPU (`data/reference/fits.json`) |
| `roofline:unfitted` | the same with the unfitted default factors (`RooflineParams()`) |
| `linear:a,b,c,d` | `a + b*prefill_tokens + c*decode_tokens + d*context_tokens` (s, s/token); `context_tokens = decode_context_tokens + prefill_context_tokens`, every KV token the iteration's attention reads |
| `staircase` / `staircase:c,a,b0` | `c + a*ceil((prefill_tokens + decode_tokens)/b0)`; bare `staircase` = Li–Dai–Peng's CodeLlama-34B on A100 (c = 11.28 ms, a = 35.47 ms, b0 = 128; arXiv 2504.07347) |
| `profiled:<table>` | interpolation of a measured table; `llmsched.sim.cost.profiled_tables()` lists them; a table answers only for the (model, GPU, TP) it was measured on; `profiled:vidur`, `profiled:helix`, ... pick the family's table for the instance's model and GPU |
| `<roofline or profiled:vidur-* spec>+stack:<name>` | the same with the per-iteration overhead of serving stack `<name>` (`vllm`, `vllm-llumnix`, `sarathi`, `slai`, `slora`, `sglang`; section "Per-stack iteration overhead") instead of the default `vllm` |
| `...+extra:<seconds>` | adds a user-chosen fixed time to every non-empty iteration (sensitivity studies; no calibrated source), e.g. `roofline+stack:slora+extra:0.005` |

**Roofline.** Per layer and tensor-parallel rank (`sim/cost/roofline.py`, counts in
`sim/hardware/derived.py`): linear GEMMs `max(2*W*T/tp / (peak*eff_compute), (W_bytes/tp +
activation bytes*T) / (bw*eff_memory))`; prefill attention `max(4*head_dim*heads/tp*pairs /
(peak*eff_attention), (KV of the cached past + KV/Q/O of the chunk) / (bw*eff_memory))`; decode
attention likewise over `decode_context_tokens`; each attention kernel adds `attention_overhead_s`;
two all-reduces of `T*hidden*2` bytes (measured Vidur profile, else a ring over the link); plus
`layer_overhead_s`. The iteration is `layers * layer + LM head + iteration_overhead_s +
request_overhead_s*num_requests`.

**Profiled tables.** `vidur-<model>-<gpu>`: Vidur's measured per-layer linear/norm/activation
operators (interpolated in tokens, per TP) + the fitted roofline's attention, all-reduce, LM head
and overheads. `helix-<model>-<gpu>`: `layers * (prompt(prefill_tokens) + decode(decode_tokens))`
from Helix's per-layer `bs2time` (the table gives the time for all layers of the model, whereas
Helix itself places only some layers per node; the upstream `(0, 0)` first row is not a measurement
and is dropped). `sarathi-yi-34b-a100-80gb`: Sarathi-Serve's prefill and decode batch times; a mixed
batch pays `P + D - D(1)` (the one-sequence decode time, i.e. weights + fixed overhead, counted once;
Table 2's hybrid batch: 217.6 ms measured, 215.0 ms by this rule). `slai-mistral-7b-rtx-6000-ada`:
batch time over total tokens. Below the
first measured point a curve is flat; beyond the last it grows at the last point's average rate.

**Decode attention at the running context (every table).** No table was measured at the context a
simulated decode holds: Helix models each decoding sequence at <= 1000 cached tokens
(`decode_max_context = tokens x 1000`, Helix `simulator/model_manager/<model>/<gpu>/*.py` L34-L36),
Sarathi-Serve's Fig 2 does not record it (1024 assumed, as in the calibration), and SLAI's Fig 5(a)
has no decodes at all. Each of the three tables therefore adds `DecodeKV` (`sim/cost/profiled.py`):
`s_per_token * max(decode_context_tokens - ref * decode_tokens, 0)` with `ref` = 1000 / 1024 / 0
tokens per sequence and `s_per_token = layers * KV bytes per token per layer per rank / (HBM bandwidth
* eff_memory)`, the fitted roofline's decode memory term for that GPU. `eff_memory` is fitted on the
reference points of that GPU (for the RTX 6000 Ada: SLAI's prefill chunks, which read the KV of the
cached past; for the A100: Vidur's decode-attention profile among others), i.e. on data independent
of any end-to-end claim. Below `ref` the table's own time stands, so a table is never cheaper than
what was measured. The `vidur-*` tables and the roofline charge decode KV reads by construction.

**Memory-bandwidth floor.** `llmsched.sim.cost.floor.memory_floor_s` is the time to stream each rank's
share of the layer weights and of every decoding sequence's KV once at the catalogue's peak HBM
bandwidth. `tests/cost/test_decode_floor.py` checks every registered table and the roofline (every
fitted GPU, and unfitted) and `staircase` at its own setup stay at or above it on a grid of decode
batches 1-480 x 0-32768 cached tokens each (decode-only and mixed with a 512-token chunk; within the
instance's KV capacity where the whole model fits), with two negative controls: the SLAI table
without `DecodeKV` (128 decodes at 2,700 tokens: ~24 ms priced, 47 ms floor) and a Helix curve that
interpolates from the `(0, 0)` row (one sequence at half the weight-read time) are both caught.
`linear:a,b,c,d` is exempt: its coefficients are the user's.
"""

NOT_USED_TEXT = """## Reference data not used for calibration

- `vidur/derived/synth_attention_llama2_7b_a100.csv.gz`: generated by a two-term model, not measured.
- Llumnix Fig 10 `migration_decode` and `blocking`/`stage1` (KV copy, not compute). Its `decode`
  series calibrates only the `vllm-llumnix` stack overhead (below), not the GPU factors.
- Llumnix/VTC/Helix end-to-end serving results (latency percentiles, throughput): they validate the
  simulator as a whole (docs/fidelity.md) and are held out of every fit here.
- Li–Dai–Peng's staircase constants: a fitted model, not a measurement (available as `staircase`).
"""


def report(fits: dict, points, pred, fig_path: Path) -> str:
    meas = np.array([p.measured_s for p in points])
    o = fits["overall"]
    L = ["# Cost models and their calibration", "",
         "Generated by `python -m llmsched.experiments.calibration` (do not edit by hand). The roofline model "
         "(`sim/cost/roofline.py`) is fitted per GPU to every latency measurement in `data/reference/` "
         "(copied from `../shared/reference`, provenance in `data/reference/README.md`).", "",
         "## Result", "",
         f"Over all {o['n']} reference points: **median absolute relative error {o['median_abs_rel_err']:.1%}**, "
         f"worst point off by **{o['max_ratio']:.2f}x** (target: median <= 15%, no point beyond 2x).", "",
         "Over-fitting check (two folds, alternate points of every table, each fold predicted by factors "
         f"fitted on the other): median {fits['held_out_2fold']['median_abs_rel_err']:.1%}, worst "
         f"{fits['held_out_2fold']['max_ratio']:.2f}x.", "",
         "| source | points | median abs error | worst ratio |", "|---|---:|---:|---:|"]
    for s, st in fits["by_source"].items():
        L.append(f"| {s} | {st['n']} | {st['median_abs_rel_err']:.1%} | {st['max_ratio']:.2f}x |")
    L += ["", f"![predicted vs measured](figures/{fig_path.name})", "", MODELS_TEXT,
          "## Fitted factors per GPU", "",
          "Efficiencies are fractions of the catalogue peak (docs/hardware.md). A GPU and its multi-GPU nodes "
          "(L4 with l4x2; T4 with t4x2 and t4x4) share the chip's efficiencies; each node fits its own "
          "`eff_link`, the fraction of the PCIe link bandwidth its ring all-reduce reaches (Helix's Google Cloud "
          "VMs reach 4-7 GB/s, consistent with GPU-to-GPU traffic staged through host memory). `eff_link` = 1 where nothing constrains it. "
          "The per-iteration overheads "
          "in `llmsched.sim.cost.build('roofline', ...)` are the vLLM ones below for every GPU; engine-specific "
          "overheads were fitted only to explain that engine's measurements.", "",
          "| GPU | sources | points | eff_compute | eff_memory | eff_attention | eff_link | layer_overhead (us) | "
          "attention_overhead (us) | median abs error | worst ratio |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g, f in fits["gpus"].items():
        p = f["params"]
        L.append(f"| {g} | {', '.join(f['sources'])} | {f['n_points']} | {p['eff_compute']:.3f} | {p['eff_memory']:.3f} | "
                 f"{p['eff_attention']:.3f} | {p['eff_link']:.3f} | {p['layer_overhead_s'] * 1e6:.1f} | {p['attention_overhead_s'] * 1e6:.1f} | "
                 f"{f['median_abs_rel_err']:.1%} | {f['max_ratio']:.2f}x |")
    L += ["", "Per-iteration overhead per serving engine (`iteration + request * num_requests`):", "",
          "| engine | fitted on | iteration_overhead (ms) | request_overhead (us) |", "|---|---|---:|---:|"]
    for e, v in fits["engines"].items():
        L.append(f"| {e} | {v['gpu']} | {v['iteration_overhead_s'] * 1e3:.3f} | {v['request_overhead_s'] * 1e6:.2f} |")
    L += ["", "vLLM's overhead is a straight line through Vidur's measured CPU overheads of Llama-2-7B "
          "(scheduler + sampler + input preparation + output processing, batch 8-128); not fitted to latencies.", "",
          "## Per-stack iteration overhead", "",
          "A serving stack's CPU-side time per iteration, `iteration_overhead + request_overhead * num_requests`, "
          "selected as `roofline+stack:<name>` (also `profiled:vidur-*+stack:<name>`; other tables already contain "
          "the overhead of the stack they were measured on, and reject the modifier). Plain `roofline` uses `vllm`. "
          "Names and sources: `llmsched.sim.cost.stacks.STACKS`; values: `data/reference/fits.json` \"stacks\".", "",
          "| stack | iteration_overhead (ms) | request_overhead (us) | calibrated on | residual (median abs, worst) |",
          "|---|---:|---:|---|---|"]
    for name, v in fits["stacks"].items():
        res = (f"{v['median_abs_rel_err']:.1%}, {v['max_ratio']:.2f}x over {v['n']} points" if "n" in v
               else "see the engine fit above")
        L.append(f"| `{name}` | {v['iteration_overhead_s'] * 1e3:.3f} | {v['request_overhead_s'] * 1e6:.2f} | "
                 f"{STACKS[name][0]}: {v['data']} | {res} |")
    lv = fits["stacks"]["vllm-llumnix"]
    sg = fits["stacks"]["sglang"]
    L += ["", "Residual fits. `vllm-llumnix`: " + "; ".join(
        f"{q['label']}: {q['measured_s'] * 1e3:.1f} ms measured, {q['gpu_time_s'] * 1e3:.1f} ms GPU time"
        for q in lv["points"]) + ". The measured step is flat in context (42.9-46.8 ms for LLaMA-7B) while the "
        "roofline's KV reads grow by ~9 ms from 256 to 8,192 tokens, so the constant leaves +-6 ms residuals; the "
        "batch beside the migrating sequence is not recorded (we assume it ran alone).",
        "", f"`sglang`: Preble's SGLang fit is below our fitted A100-80GB GPU time at every batch "
        f"(mean residual {sg['mean_residual_s'] * 1e3:+.2f} ms), so no positive overhead is identified and the term is "
        "0: SGLang (CUDA graphs, overlapped scheduling) adds nothing measurable here beyond the roofline, whose "
        f"A100 GPU time is itself above Preble's fit at every point (median {sg['median_abs_rel_err']:.0%}). "
        "Upper bound: 8.96 ms - 7.1 ms of weight reads at peak bandwidth = 1.9 ms.",
        "", "Not modelled: S-LoRA's per-adapter cost (LoRA compute, adapter swapping). The VTC artifact ran S-LoRA "
        "with LoRA compute off, so `slora` is the engine without adapters; S-LoRA's own adapter sweeps "
        "(S-LoRA/S-LoRA `benchmarks/paper/synthetic/`) are not staged here.", "",
          "## What each reference set is and how it is mapped", ""]
    for k, v in ASSUMPTIONS.items():
        L.append(f"- **{k}**: {v}.")
    L += ["", "## Communication", "",
          "Tensor-parallel all-reduce uses Vidur's measured NCCL profiles where the node type was profiled "
          "(`a100_dgx` for A100, `h100_dgx` for H100, `a100_pairwise_nvlink` for the Sarathi points), "
          "interpolated in message size and extended past 64 MB at the rate of the largest message; other GPUs use "
          "a ring all-reduce over the catalogue link: 2(tp-1) latencies + 2(tp-1)/tp x bytes / bandwidth. Pipeline "
          "send/recv: `llmsched.sim.cost.comm.send_recv` (Vidur `send_recv.csv`, else latency + bytes / link bandwidth). "
          "How far the ring model is from the measurement where both exist:", "",
          "| GPU | node profile | tp | bytes | measured (us) | ring model (us) |", "|---|---|---:|---:|---:|---:|"]
    for g, sku, tp, size, m, r in comm_rows():
        L.append(f"| {g} | {sku} | {tp} | {size} | {m * 1e6:.1f} | {r * 1e6:.1f} |")
    bad = [(p, y) for p, y in zip(points, pred) if max(y / p.measured_s, p.measured_s / y) > 2.0]
    L += ["", NOT_USED_TEXT, "Speed and latency against the Vidur simulator itself: docs/vidur-side-by-side.md.", "",
          "## Misses", ""]
    L += [f"{len(bad)} points are off by more than 2x." if bad else "No point is off by more than 2x."]
    far = [(p, y) for p, y in zip(points, pred) if max(y / p.measured_s, p.measured_s / y) > 1.5]
    L += [f"{len(far)} points are off by more than 1.5x; by source, with the reason:", ""]
    for src in sorted({p.source for p, _ in far}):
        mine = [(p, y) for p, y in far if p.source == src]
        L.append(f"- **{src}** ({len(mine)} points: "
                 + ", ".join(f"{p.gpu} {p.label} {y / p.measured_s:.2f}x" for p, y in mine[:12])
                 + (", ..." if len(mine) > 12 else "") + f"). {MISS_EXPLANATIONS.get(src, '')}")
    L += ["",
          "## Every reference point", "",
          "Also in `data/reference/fit_points.csv` (full precision).", "",
          "| source | GPU | model | tp | point | measured (ms) | predicted (ms) | error |",
          "|---|---|---|---:|---|---:|---:|---:|"]
    for p, y in zip(points, pred):
        L.append(f"| {p.source} | {p.gpu} | {p.model} | {p.tp} | {p.label} | {p.measured_s * 1e3:.4g} | "
                 f"{y * 1e3:.4g} | {y / p.measured_s - 1:+.1%} |")
    del meas
    return "\n".join(L) + "\n"


# Why the physics model cannot follow some points (read off fit_points.csv after fitting; the
# report lists every point beyond 1.5x under these headings).
MISS_EXPLANATIONS = {
    "helix": "Helix's profiles are single timings rounded to 0.1-1 ms and not monotonic in places: the "
             "V100 LLaMA-2-70B decode curve jumps from 2.7 ms (30 sequences) to 4.3-7.0 ms (35-85) and falls "
             "back to 4.5 ms at 90, which no smooth roofline follows; batches of 120-300 sequences on A100/T4 "
             "step up in whole-ms increments. Helix does not record the context length of its decode batches; "
             "we assume 1000 tokens, which overstates the KV reads of LLaMA-1-30B (no GQA, 52 KV heads) at "
             "400-500 sequences on a 16 GB V100 (such a batch could not even hold 1000 tokens each).",
    "sarathi": "Sarathi-Serve's 256-token prefill (121 ms) is slower than its 512-token prefill (106 ms): a "
               "measurement outlier. Its small decode batches (47-49 ms for 1-4 sequences, weights alone "
               "are ~18 ms) are dominated by the engine's per-iteration overhead, fitted as the 'sarathi' engine.",
    "vidur-attention": "Causal prefill chunks with no cached context (kv=0) take ~1.5-1.8x the modelled time: "
                       "the pair count c(c+1)/2 assumes the masked upper triangle is free, while the kernel "
                       "pays for whole diagonal tiles at lower occupancy; with cached context the rectangular "
                       "part dominates and the same eff_attention fits.",
    "vtc": "S-LoRA's prefill of many tiny prompts (49 x 8 tokens) costs more per token than the roofline: "
           "per-request padding/launch work that one per-request overhead cannot capture for all batch sizes.",
    "vidur-mlp": "Single-token GEMMs at TP 4-8 take 20-40 us regardless of size (launch-bound); the per-layer "
                 "overhead is one number per GPU.",
    "slai": "",
}


def main() -> int:
    fits = calibrate()
    points = list(reference_points())
    pred = predict(points, lambda p: params_for_point(fits, p))
    refdata.FITS_PATH.write_text(json.dumps(fits, indent=1, sort_keys=True) + "\n")
    write_points(points, pred)
    fig_path = figure(points, pred)
    text = report(fits, points, pred, fig_path)
    (DOCS / "cost-models.md").write_text(text)
    o = fits["overall"]
    print(f"{o['n']} points: median |err| {o['median_abs_rel_err']:.1%}, worst {o['max_ratio']:.2f}x")
    h = fits["held_out_2fold"]
    print(f"held out (2-fold): median |err| {h['median_abs_rel_err']:.1%}, worst {h['max_ratio']:.2f}x")
    for s, st in fits["by_source"].items():
        print(f"  {s}: n={st['n']} median {st['median_abs_rel_err']:.1%} worst {st['max_ratio']:.2f}x")
    for g, f in fits["gpus"].items():
        print(f"  {g}: {', '.join(f'{k}={v:.3g}' for k, v in f['params'].items())} "
              f"median {f['median_abs_rel_err']:.1%} worst {f['max_ratio']:.2f}x")
    for e, v in fits["engines"].items():
        print(f"  engine {e}: io={v['iteration_overhead_s']:.4g} ro={v['request_overhead_s']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
