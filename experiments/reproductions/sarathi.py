"""Sarathi-Serve vs vLLM serving capacity (OSDI'24, arXiv 2403.02310): "up to 2.6x" for Mistral-7B on one A100.

Capacity as in the Sarathi-Serve artifact (`microsoft/sarathi-serve` branch `osdi-sarathi-serve`,
`sarathi/benchmark/capacity_search/`): the largest Poisson QPS, found by search on 2,048-request
runs, whose P50 scheduling delay is ≤ 2 s and whose P99 TBT (over decode tokens) is ≤ the SLO. We
search it for Sarathi-Serve (token budget 512 under the strict SLO, 2,048 under the relaxed one) and
vLLM (max batch 128, whole prompts) on the two traces of the paper's Fig. 5, and compare the largest
ratio on the trace we hold exactly as the artifact ran it (openchat_sharegpt4) with 2.6x; the arXiv
cells run a 4k-capped substitute for the artifact's unpublished 16k trace and are reported beside it. Setup table: docs/setups/sarathi.md. Runs `llmsched.sim.run.simulate`; no scheduling
logic here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction

MODEL, GPU = "mistral-7b", "a100-80gb"  # Sarathi-Serve §5: Mistral-7B on one A100-80GB
COST = "roofline"  # fitted roofline (data/reference/fits.json); decode reads KV at the running context
# osdi-experiments/figure-5-6 (notes/throughput_placement.md §5.2): Mistral-7B P99 TBT SLO and the
# Sarathi-Serve token budget chosen for it
SLOS = {"strict": (0.1, 512), "relaxed": (0.5, 2048)}
MAX_BATCH = 128  # vLLM max batch size in Sarathi-Serve's evaluation (notes §5.2); same cap for Sarathi-Serve
SCHED_DELAY_P50_S = 2.0  # --scheduling-delay-slo-value 2.0 at quantile 0.5 (capacity_search)
TBT_QUANTILE = 0.99  # --tbt-slo-quantile 0.99: P99 over decode-token gaps
TRACES = ("sharegpt", "arxiv-summarization")  # openchat_sharegpt4 and arxiv_summarization (Sarathi-Serve §5)
# Traces whose bundled file is the one the artifact ran (figure-5-6/mistral7b_*.yml: chat ->
# sharegpt_8k_filtered_stats_llama2_tokenizer.csv, max_seq_len 8192; our data/traces/sharegpt is that
# file). The artifact's arxiv trace (arxiv_summarization_filtered_stats_llama2_tokenizer.csv,
# max_seq_len 16384) is not public; ours is Vidur's 4,096-token-capped filtered_v2, so the arXiv cells
# are not at the paper's setup and are reported as info, not in the headline.
TRACES_AT_PAPER_SETUP = ("sharegpt",)
SEARCH_REQUESTS = 2048  # requests per capacity-search trial (capacity_search config)
SEARCH_REL_GRANULARITY = 0.025  # stop when the bracket is within 2.5% (--min-search-granularity 2.5)
START_QPS = 1.0  # our first probe; the bracket doubles from here
PAPER_RATIO = 2.6  # OSDI abstract: "up to 2.6x higher serving capacity" for Mistral-7B on one A100
TOLERANCE = 0.25  # relative, on an "up to" number from the abstract
LABELS = {"vllm": "vLLM", "sarathi": "Sarathi-Serve"}


def trial(policy: str, trace: str, slo: str, rate: float, n: int, seed: int) -> dict:
    """One capacity-search trial: P50 scheduling delay and token-level P99 TBT against the SLO."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec, WorkloadSpec, freeze_params
    from llmsched.sim.run import simulate
    from llmsched.sim.workload import catalog

    tbt_slo, budget = SLOS[slo]
    w = catalog.load(WorkloadSpec(source=trace, rate=rate, num_requests=n,
                                  params=freeze_params({"process": "poisson"})), seed)
    w = w.with_columns(tbt_slo_s=np.full(w.n, tbt_slo))
    kw = {"token_budget": budget} if policy == "sarathi" else {}
    spec = InstanceSpec(model=MODEL, gpu=GPU, cost=COST, batching=policy, max_batch_requests=MAX_BATCH, **kw)
    res = simulate(w, ClusterSpec(instances=(spec,)), seed=seed, record_service=False)
    r = res.requests
    gaps = float(np.maximum(r["generated_tokens"].to_numpy() - 1, 0).sum())
    miss = float(r["tbt_slo_misses"].sum()) / gaps if gaps else 0.0
    delay_p50 = float(np.nanmedian(r["queueing_delay_s"]))
    tbt_ok = miss <= 1 - TBT_QUANTILE
    delay_ok = delay_p50 <= SCHED_DELAY_P50_S
    return {"policy": policy, "trace": trace, "slo": slo, "tbt_slo_s": tbt_slo, "rate_rps": rate, "seed": seed,
            "num_requests": int(w.n), "sched_delay_p50_s": delay_p50, "tbt_miss_fraction": miss,
            "ttft_p50_s": float(np.nanmedian(r["ttft_s"])), "tbt_ok": tbt_ok, "delay_ok": delay_ok,
            "ok": tbt_ok and delay_ok, "preemptions": int(r["preemptions"].sum())}


def search_capacity(probe, start: float = START_QPS, rel: float = SEARCH_REL_GRANULARITY,
                    max_trials: int = 20) -> tuple[float, list[dict]]:
    """Largest rate with probe(rate)["ok"]: double from `start` until a failure (halve while the
    start fails), then bisect until (hi − lo) ≤ rel·hi. Returns (capacity, trials); 0 if even
    start/2^k fails for every trial allowed."""
    trials: list[dict] = []
    lo, hi = 0.0, math.inf
    x = start
    while len(trials) < max_trials and (math.isinf(hi) or hi - lo > rel * hi):
        t = probe(x)
        trials.append(t)
        if t["ok"]:
            lo = x
        else:
            hi = x
        x = 2 * x if math.isinf(hi) else (x / 2 if lo == 0.0 else (lo + hi) / 2)
    return lo, trials


def _search(policy: str, trace: str, slo: str, n: int, seed: int) -> tuple[float, list[dict]]:
    """The capacity search of one (policy, trace, SLO)."""
    return search_capacity(lambda x: trial(policy, trace, slo, x, n, seed))


def _binding(trials: list[dict]) -> str:
    """What failed at the smallest failing rate above the capacity."""
    bad = [t for t in trials if not t["ok"]]
    if not bad:
        return "none (no failing trial)"
    t = min(bad, key=lambda t: t["rate_rps"])
    return " and ".join(k for k, ok in (("P99 TBT", t["tbt_ok"]), ("P50 scheduling delay", t["delay_ok"])) if not ok)


@reproduction(name="sarathi-vs-vllm", paper="Agrawal et al., Sarathi-Serve (OSDI'24, arXiv 2403.02310)",
              target="serving capacity under P99 TBT SLOs, Mistral-7B on one A100 (abstract: up to 2.6x vs vLLM)",
              quick_minutes=2.0)
def run(ctx: ReproContext) -> ReproOutput:
    """Capacity (P50 scheduling delay ≤ 2 s, P99 TBT ≤ SLO) of Sarathi-Serve and vLLM, Mistral-7B on one
    A100-80GB, strict (0.1 s) and relaxed (0.5 s) SLOs, ShareGPT (and arXiv-summarization in full mode)."""
    traces = ("sharegpt",) if ctx.quick else TRACES
    n = 512 if ctx.quick else SEARCH_REQUESTS
    from llmsched.experiments.reproductions._parallel import pmap

    combos = [(pol, trace, slo, n, ctx.seed) for trace in traces for slo in SLOS for pol in ("vllm", "sarathi")]
    rows, cap_rows = [], []
    for (pol, trace, slo, _, _), (cap, trials) in zip(combos, pmap(_search, combos, parallel=not ctx.quick)):
        rows.extend(trials)
        cap_rows.append({"trace": trace, "slo": slo, "tbt_slo_s": SLOS[slo][0], "policy": pol,
                         "capacity_rps": cap, "binding": _binding(trials), "trials": len(trials)})
    trials_df = pd.DataFrame(rows)
    caps = pd.DataFrame(cap_rows)
    wide = caps.pivot_table(index=["trace", "slo"], columns="policy", values="capacity_rps").reset_index()
    wide["ratio"] = wide["sarathi"] / wide["vllm"].where(wide["vllm"] > 0)
    at_setup = wide[wide["trace"].isin(TRACES_AT_PAPER_SETUP)]
    best = at_setup.loc[at_setup["ratio"].idxmax()]

    fig, ax = style.figure(width="column", height_in=2.3)
    labels = [f"{r.trace}\n{r.slo}" for r in wide.itertuples()]
    x = np.arange(len(wide))
    for j, pol in enumerate(("vllm", "sarathi")):
        ax.bar(x + (j - 0.5) * 0.4, wide[pol], 0.4, label=LABELS[pol])
    ax.set_xticks(x, labels, fontsize="x-small")
    ax.set_ylabel("capacity (req/s)")
    ax.legend(fontsize="x-small")
    figures = style.save(fig, ctx.out_dir, "sarathi_vs_vllm_capacity")

    comps = [Comparison(
        "Sarathi-Serve / vLLM serving capacity, max over SLOs on the artifact's own trace (openchat_sharegpt4)",
        PAPER_RATIO, float(best["ratio"]), "x",
        relation="ratio", tolerance=TOLERANCE, headline=True, direction="> 1",
        note=f"max at {best['trace']}, {best['slo']} SLO ({SLOS[best['slo']][0]:g} s); capacity = largest QPS with "
             f"P50 scheduling delay <= {SCHED_DELAY_P50_S:g} s and token P99 TBT <= SLO (searched on {n}-request runs); "
             "arXiv cells (info rows) use a 4k-capped substitute for the artifact's unpublished 16k trace")]
    for r in wide.itertuples():
        substitute = r.trace not in TRACES_AT_PAPER_SETUP
        bind = {c.policy: c.binding for c in caps[(caps.trace == r.trace) & (caps.slo == r.slo)].itertuples()}
        comps.append(Comparison(f"{r.trace}, {r.slo} SLO: Sarathi-Serve / vLLM capacity", PAPER_RATIO, float(r.ratio),
                                "x", relation="info",
                                note=f"vLLM {r.vllm:.3g} req/s (fails on {bind['vllm']}), Sarathi-Serve {r.sarathi:.3g} "
                                     f"req/s (fails on {bind['sarathi']})"
                                     + ("; not the paper's trace: Vidur's arXiv lengths capped at 4,096 tokens, the "
                                        "artifact ran prompts up to 16,384 (file not public)" if substitute else "")))
    return ReproOutput(
        tables={"trials": trials_df, "capacity": caps, "ratios": wide}, figures=figures, comparisons=comps,
        notes=(f"{'Quick' if ctx.quick else 'Full'} mode: {len(trials_df)} search trials of {n} requests. "
               "Capacities (req/s): " + "; ".join(f"{r.trace}/{r.slo}: vLLM {r.vllm:.3g}, Sarathi-Serve {r.sarathi:.3g}"
                                                 for r in wide.itertuples()) + "."),
    )
