"""Preble (Srivatsa et al., ICLR'25, arXiv 2407.00023) against its own baseline, at the setup of the
artifact's end-to-end configs (`WukLab/preble` @ 8e7906a, `preble/benchmarks/multi_exp_configs/`):
4 x Mistral-7B on A6000; baseline = SGLang data parallel, round-robin + LPM, no chunked prefill;
Preble = E2 with the eviction-cost term (`GlobalSchedulerTimeWithEviction`) + `fcfs-mpq`, 512-token
chunks; mean and p99 request latency over the configs' load ranges, on long-document QA (LooGLE)
and tool use (ToolBench). Every parameter and its source: docs/setups/preble-e2e.md.

The abstract's claim: 1.5-14.5x lower average latency and 2-10x lower p99 than the SOTA
data-parallel baselines, across its workloads; here: the maximum over our sweep, and where.
The A6000 forward time is the artifact's own fitted model (`PrebleA6000Cost`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._routing_common import latency_row, run_rows_with_cost
from llmsched.policies.routing.preble import PREBLE_MEASURED_DECISION_S
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload, merge
from llmsched.sim.workload.lengths import LengthSpec
from llmsched.sim.workload.programs import long_doc_qa, shared_system_prompt

MODEL, GPU, N_GPUS = "mistral-7b", "rtx-6000-ada", 4  # e2e_4r_*_config.py: Mistral-7B, gpu_id 0-3 (A6000)
KV_TOKENS = 198_516  # multi_exp_utils.py l. 54: kv_cache_memory = 131072 x 198516 (tokens of 128 KiB)
PREBLE_CHUNK, BASELINE_BUDGET = 512, 32_768  # ours_server_args chunk_prefill_budget 512; baseline: none
PAPER_MEAN_X, PAPER_P99_X = (1.5, 14.5), (2.0, 10.0)  # arXiv 2407.00023 abstract
# LooGLE, e2e_4r_loogle_config.py l. 71-77: scale_to_gpu([24, n, rps], 4 // 2) -> 48 documents
LOOGLE_POINTS = [(336, 0.6), (562, 1.0), (786, 1.4), (1122, 2.0), (1346, 2.4)]
LOOGLE_DOCS = 48
# ToolBench, e2e_4r_toolbench_config.py l. 76-82: scale_to_gpu([200, n, rps], 2) -> 400 tool prompts
TOOLBENCH_POINTS = [(1800, 6.0), (3600, 12.0), (5400, 18.0), (7200, 24.0), (9000, 30.0), (10800, 36.0)]
TOOLBENCH_PATTERNS = 400
HASH_BLOCK = 64  # our choice: prefix-cache granularity in tokens (SGLang's radix tree is per token)


class PrebleA6000Cost:
    """Mistral-7B on one A6000 under SGLang + FlashInfer, the artifact's fitted forward time
    (`preble/benchmarks/exp_configs/model_equations.py`, l. 29-66, 69-89, 121-127), in seconds:
    (linear(tokens) + attention(requests, context) + long-extend term) / 0.9, where
      linear = 0.10842571 ms x tokens + 4.2098 ms (>= 384 tokens); -118 + 1.25 n - 2.56e-3 n^2 ms
               (192-383; clamped below at 22 ms, our fix: the fit turns negative near 360); 22 ms;
      attention = 1.86e-4 ms x context + 0.159 ms (context > 1024, halved for short shared
               contexts as in the artifact), else 0.32 ms;
      long extend = 1.13e-3 e + 1.75e-3 s + 2.19e-6 e s ms when e x s > 2^20, for a prefill of e
               tokens ending at sequence length s (our aggregation over an iteration's chunks:
               e = prefill tokens, s = prefill context tokens, e x s = attention pairs + e(e-1)/2,
               exact for one chunk per iteration).
    """

    name = "preble-a6000-mistral-7b"

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        n = (s.prefill_tokens + s.decode_tokens).astype(np.float64)
        lin = np.where(n >= 384, 0.10842571 * n + 4.209777054806409,
                       np.where(n >= 192, np.maximum(-118 + 1.25 * n - 2.56e-3 * n * n, 22.0), 22.0))
        reqs = np.maximum(s.num_requests.astype(np.float64), 1.0)
        ctx = (s.prefill_context_tokens + s.decode_context_tokens + s.decode_tokens).astype(np.float64)
        attn = np.where(ctx <= 1024, 0.32, 1.86e-4 * ctx + 0.159)
        halve = (ctx > 1024) & (ctx / reqs <= 1024) & (reqs * ctx <= 32 * 256 * 2048)
        attn = np.where(halve, attn / 2, attn)
        e = s.prefill_tokens.astype(np.float64)
        sl = s.prefill_context_tokens.astype(np.float64)
        es = s.prefill_attention_pairs.astype(np.float64) + e * (e - 1) / 2
        quad = np.where(es > 1024 * 1024, 1.13e-3 * e + 1.75e-3 * sl + 2.19e-6 * es, 0.0)
        return (lin + attn + quad) / 0.9 / 1e3


def loogle(seed: int, n_requests: int, rate_rps: float) -> Workload:
    """48 documents, questions spread uniformly over them, Poisson arrivals (the artifact's
    `calc_send_out_times`). Document, question and answer lengths are our choice (the dataset is
    not bundled): documents uniform on 8,192-32,723 tokens (the loader's cap is 32,768 - 45),
    questions 10-60 tokens, answers 5-45 tokens (`max_tokens_override = 45`)."""
    rng = np.random.default_rng(seed)
    arr = arrivals.poisson(rng, rate_rps, n=n_requests)
    doc_len = rng.integers(8192, 32723, LOOGLE_DOCS, endpoint=True)
    which = rng.integers(0, LOOGLE_DOCS, n_requests)
    qa = LengthSpec("uniform", input_min=10, input_max=60, output_min=5, output_max=45)
    parts = [long_doc_qa(rng, arr[which == d], qa, n_docs=1, doc_tokens=int(doc_len[d]), block_tokens=HASH_BLOCK)
             for d in range(LOOGLE_DOCS) if (which == d).any()]
    return merge(parts, name="preble-loogle")


def toolbench(seed: int, n_requests: int, rate_rps: float) -> Workload:
    """400 tool prompts with equal load (`LoadDistribution.EVEN`), Poisson arrivals. Lengths are
    our choice (the artifact's length file is not bundled; its prompts are capped at 4,096 tokens):
    tool prompt 1,024-3,072 tokens, query 50-300 tokens, output 20-200 tokens."""
    rng = np.random.default_rng(seed)
    arr = arrivals.poisson(rng, rate_rps, n=n_requests)
    tool_len = rng.integers(1024, 3072, TOOLBENCH_PATTERNS, endpoint=True)
    which = rng.integers(0, TOOLBENCH_PATTERNS, n_requests)
    q = LengthSpec("uniform", input_min=50, input_max=300, output_min=20, output_max=200)
    parts = [shared_system_prompt(rng, arr[which == p], q, system_tokens=int(tool_len[p]), block_tokens=HASH_BLOCK)
             for p in range(TOOLBENCH_PATTERNS) if (which == p).any()]
    return merge(parts, name="preble-toolbench")


SYSTEMS = {  # label -> (router, router params, batching, token budget)
    "SGLang DP (RR + LPM)": ("round-robin", {}, "lpm", BASELINE_BUDGET),
    "Preble": ("preble", {"eviction_cost": True, "capacity_eviction": True,
                          "decision_base_s": PREBLE_MEASURED_DECISION_S}, "preble-mpq", PREBLE_CHUNK),
}
ABLATIONS = {  # measured reasons, run at the top load of each workload
    "Preble, E term off": ("preble", {"capacity_eviction": True, "decision_base_s": PREBLE_MEASURED_DECISION_S},
                           "preble-mpq", PREBLE_CHUNK),
    "Preble, no decision latency": ("preble", {"eviction_cost": True, "capacity_eviction": True}, "preble-mpq",
                                    PREBLE_CHUNK),
    "RR + LPM, 512-token chunks": ("round-robin", {}, "lpm", PREBLE_CHUNK),
}


def cluster(router: str, params: dict, batching: str, budget: int) -> ClusterSpec:
    spec = InstanceSpec(model=MODEL, gpu=GPU, batching=batching, token_budget=budget, max_batch_requests=256,
                        kv_capacity_tokens=KV_TOKENS, count=N_GPUS)
    return ClusterSpec(instances=(spec,), router=router, router_params=freeze_params(params))


@reproduction(name="preble-e2e", paper="Srivatsa et al., ICLR'25, arXiv 2407.00023 (Preble)",
              target="1.5-14.5x mean, 2-10x p99 latency vs SGLang data parallel (e2e configs)", quick_minutes=2.0)
def e2e(ctx: ReproContext) -> ReproOutput:
    """Mean and p99 latency of Preble and RR + LPM (no chunking) over the artifact's load ranges."""
    scale = 0.25 if ctx.quick else 1.0
    sweeps = {"LooGLE": (loogle, LOOGLE_POINTS[1::3] if ctx.quick else LOOGLE_POINTS),
              "ToolBench": (toolbench, TOOLBENCH_POINTS[1::4] if ctx.quick else TOOLBENCH_POINTS)}
    points = []
    for wl, (make, grid) in sweeps.items():
        for n_req, rps in grid:
            w = make(ctx.seed, max(int(n_req * scale), 50), rps)
            systems = dict(SYSTEMS)
            if (n_req, rps) == grid[-1]:
                systems.update(ABLATIONS)
            for label, (router, params, batching, budget) in systems.items():
                points.append({"workload": w, "cluster": cluster(router, params, batching, budget),
                               "seed": ctx.seed, "family": wl, "rps": rps, "system": label})
    tab = pd.DataFrame(run_rows_with_cost(points, lambda _p, res: latency_row(res), lambda _spec: PrebleA6000Cost()))
    main = tab[tab["system"].isin(list(SYSTEMS))]
    wide = main.pivot_table(index=["family", "rps"], columns="system", values=["e2e_mean_s", "e2e_p99_s"])
    base, ours = "SGLang DP (RR + LPM)", "Preble"
    ratio = pd.DataFrame({
        "mean_x": wide[("e2e_mean_s", base)] / wide[("e2e_mean_s", ours)],
        "p99_x": wide[("e2e_p99_s", base)] / wide[("e2e_p99_s", ours)],
    }).reset_index()
    f, axes = style.figure("text", height_in=2.3, ncols=2)
    for ax, col, lab in ((axes[0], "mean_x", "mean latency ratio"), (axes[1], "p99_x", "p99 latency ratio")):
        for wl, g in ratio.groupby("family"):
            ax.plot(g["rps"], g[col], "o-", label=wl)
        ax.axhspan(*(PAPER_MEAN_X if col == "mean_x" else PAPER_P99_X), color="0.9", zorder=0)
        ax.set_xlabel("request rate (req/s, 4 GPUs)")
        ax.set_ylabel(f"RR+LPM / Preble {lab}")
        ax.set_yscale("log")
        ax.legend()
    figs = style.save(f, ctx.out_dir, "preble_e2e")
    best_mean = ratio.loc[ratio["mean_x"].idxmax()]
    best_p99 = ratio.loc[ratio["p99_x"].idxmax()]
    comps = [
        Comparison("max over workloads x loads: RR+LPM / Preble mean latency", PAPER_MEAN_X[1],
                   float(best_mean["mean_x"]), "x", "ratio", tolerance=0.25, headline=True, direction="> 1",
                   note=f"at {best_mean['family']} {best_mean['rps']} req/s; paper: 'up to 14.5x' over 5 workloads x "
                        "2 GPU setups, ours over 2 of them on A6000"),
        Comparison("max over workloads x loads: RR+LPM / Preble p99 latency", PAPER_P99_X[1],
                   float(best_p99["p99_x"]), "x", "ratio", tolerance=0.25, headline=True, direction="> 1",
                   note=f"at {best_p99['family']} {best_p99['rps']} req/s; paper: 'up to 10x' over 5 workloads x "
                        "2 GPU setups (A6000, H100), ours over 2 of them (LooGLE, ToolBench) on A6000; per-workload "
                        "published values are not given"),
        Comparison("min over workloads x loads: mean latency ratio", PAPER_MEAN_X[0], float(ratio["mean_x"].min()),
                   "x", "info", note="the paper's lower end is over workloads at their loads"),
        Comparison("min over workloads x loads: p99 latency ratio", PAPER_P99_X[0], float(ratio["p99_x"].min()),
                   "x", "info"),
    ]
    for wl, (_, grid) in sweeps.items():
        top = tab[(tab["family"] == wl) & (tab["rps"] == grid[-1][1])].set_index("system")
        for label in ABLATIONS:
            comps.append(Comparison(f"ablation ({wl}, {grid[-1][1]} req/s): {label} / Preble mean latency", "",
                                    float(top.loc[label, "e2e_mean_s"] / top.loc[ours, "e2e_mean_s"]), "x", "info",
                                    note="> 1: the mechanism removed helps Preble"))
    notes = (f"{N_GPUS} x {MODEL} (A6000 forward times from the artifact's fit, PrebleA6000Cost), KV "
             f"{KV_TOKENS} tokens per GPU; requests x {scale} of the configs' counts; latency = request "
             "end-to-end; Preble decision latency {:.2f} ms (artifact measurement)".format(PREBLE_MEASURED_DECISION_S * 1e3))
    return ReproOutput(tables={"preble_e2e": tab, "preble_e2e_ratios": ratio}, figures=figs, comparisons=comps,
                       notes=notes)
