"""Llumnix (Sun et al., OSDI'24, arXiv 2406.03243; artifact `AlibabaPAI/llumnix` branch osdi24ae,
claims in ../shared/reference/llumnix): Llumnix (freeness dispatch + live migration) versus
round-robin and a load-balancing dispatcher without migration (the artifact's INFaaS++:
`--dispatch-policy load`, no migration) on mixed short/long requests with bursty arrivals: P99
prefill latency, P99 request latency, preemptions and fragmentation; plus Llumnix auto-scaling's
instance-seconds against the fixed cluster.

Our setup: LLaMA-7B on A10 instances with 12,800 KV tokens each (artifact `serving_exp`
max_batch_total_tokens 12800), vLLM batching; lengths lognormal (mean 256, sigma 1.2, cap 6,144:
a stand-in for the artifact's Zipf lengths with range 6144); Gamma arrivals with CV 4. Quick
mode: 4 instances and 1,000 requests per point; full: 16 instances (the artifact's size), 4,000.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._routing_common import latency_row, run_rows
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.lengths import LengthSpec, sample_lengths

MODEL, GPU, KV_TOKENS = "llama-2-7b", "a10", 12800  # artifact 63_serving_performance/config/serving_exp L9
LENGTHS = LengthSpec("lognormal", input_tokens=256, output_tokens=256, input_sigma=1.2, output_sigma=1.2,
                     max_tokens=6144)  # our stand-in for zipf lengths, irange/oranges 6144 (ibid. L19-L25)
CV = 4.0  # our choice: bursty Gamma arrivals (the paper sweeps CV in Fig. 12)
RATES_PER_INSTANCE = (0.625, 0.75, 0.875)  # req/s per instance: from light to heavy contention (our choice)
SYSTEMS = {  # label -> (router, params)
    "round-robin": ("round-robin", {}),
    "INFaaS++ (load, no migration)": ("llumnix", {"migration": False}),
    "Llumnix": ("llumnix", {}),
    "Llumnix + auto-scaling": ("llumnix", {"autoscale": True, "initial_instances": None}),
}
CLAIMS = {  # ../shared/reference/llumnix/derived/claims.csv (artifact AE run, Fig. 11, vs INFaaS++)
    "prefill P99": 15.63, "request P99": 2.59, "preemption loss reduction %": 99.98}
HIGH_PRIORITY_SHARE = 0.1  # artifact 64_support_for_priorities/config/serving_exp: priority_ratio 0.1 (L11)
PAPER_HP_REQUEST_MEAN_X = 1.51  # figure13.claim: high-priority request mean latency up to 1.51x vs Llumnix-base
PAPER_PREFILL_P99_VS_RR = 34.4  # figure11_paper.claim: prefill P99 up to 34.4x vs round-robin (real datasets)


def workload(seed: int, rate: float, n: int, high_priority_share: float = 0.0) -> Workload:
    rng = np.random.default_rng(seed)
    a = arrivals.gamma(rng, rate, CV, n=n)
    p, o = sample_lengths(LENGTHS, rng, len(a))
    prio = (rng.random(len(a)) < high_priority_share).astype(np.int64)
    return Workload(arrival_s=a, client=np.zeros(len(a), dtype=np.int64), prompt_tokens=p, output_tokens=o,
                    priority=prio, name="llumnix-mixed")


def fragmentation(timeline: pd.DataFrame, step_s: float = 0.5) -> float:
    """Time-average fraction of the cluster's KV blocks that are free while some instance has a
    queue (memory that exists but the queued requests cannot use), sampled every `step_s`."""
    if timeline.empty:
        return float("nan")
    t0, t1 = float(timeline["time_s"].min()), float(timeline["time_s"].max())
    grid = pd.DataFrame({"time_s": np.arange(t0, t1, step_s)})
    free = np.zeros(len(grid))
    total = np.zeros(len(grid))
    queued = np.zeros(len(grid), dtype=bool)
    for _, g in timeline.sort_values("time_s").groupby("instance"):
        m = pd.merge_asof(grid, g[["time_s", "kv_blocks_used", "kv_blocks_total", "waiting"]], on="time_s")
        tot = m["kv_blocks_total"].fillna(g["kv_blocks_total"].iloc[0]).to_numpy()
        used = m["kv_blocks_used"].fillna(0).to_numpy()
        free += tot - used
        total += tot
        queued |= m["waiting"].fillna(0).to_numpy() > 0
    return float(np.mean(np.where(queued, free / total, 0.0)))


def _row(p: dict, res) -> dict:
    row = latency_row(res)
    r = res.requests
    row["preempted_requests"] = int((r["preemptions"] > 0).sum())
    row["fragmentation"] = fragmentation(res.timeline)
    k = p["instances"]
    stats = res.summary.get("router", {})
    fixed = k * row["makespan_s"]
    row["instance_seconds"] = float(stats["instance_seconds"]) if p["system"].endswith("auto-scaling") else fixed
    row["cost_vs_fixed"] = row["instance_seconds"] / fixed if fixed else float("nan")
    hp = r[(r["priority"] > 0) & r["finish_s"].notna()]
    row["hp_e2e_mean_s"] = float(hp["e2e_s"].mean()) if len(hp) else float("nan")
    row["hp_ttft_p99_s"] = float(hp["ttft_s"].quantile(0.99)) if len(hp) else float("nan")
    row["hp_tbt_mean_s"] = float(hp["tbt_mean_s"].mean()) if len(hp) else float("nan")
    return row


@reproduction(name="llumnix-serving", paper="Sun et al., OSDI'24 (Llumnix)",
              target="Fig. 11 (P99 prefill/request latency, preemptions vs RR and INFaaS++), Fig. 14 cost",
              quick_minutes=1.0)
def serving(ctx: ReproContext) -> ReproOutput:
    """Llumnix vs round-robin vs load dispatch without migration: P99 prefill/request latency,
    preemptions, fragmentation; auto-scaling instance-seconds."""
    k, n = (4, 1000) if ctx.quick else (16, 4000)
    points = []
    for rate in RATES_PER_INSTANCE:
        w = workload(ctx.seed, rate * k, n)
        for label, (router, params) in SYSTEMS.items():
            params = {**params, "initial_instances": k} if "autoscale" in params else params
            spec = InstanceSpec(model=MODEL, gpu=GPU, batching="vllm", kv_capacity_tokens=KV_TOKENS, count=k)
            points.append({"workload": w, "cluster": ClusterSpec(instances=(spec,), router=router,
                                                                 router_params=freeze_params(params)),
                           "seed": ctx.seed, "system": label, "rate_per_instance": rate, "instances": k,
                           "service": False})
    # priorities (Fig. 13): 10% high-priority requests at the middle load, with and without headroom
    mid = RATES_PER_INSTANCE[1]
    wp = workload(ctx.seed, mid * k, n, HIGH_PRIORITY_SHARE)
    for label, params in (("Llumnix (priority headroom)", {}),
                          ("Llumnix-base (no headroom)", {"high_priority_target_tokens": 10 ** 9})):
        spec = InstanceSpec(model=MODEL, gpu=GPU, batching="vllm", kv_capacity_tokens=KV_TOKENS, count=k)
        points.append({"workload": wp, "cluster": ClusterSpec(instances=(spec,), router="llumnix",
                                                              router_params=freeze_params(params)),
                       "seed": ctx.seed, "system": label, "rate_per_instance": mid, "instances": k, "service": False})
    tab = pd.DataFrame(run_rows(points, _row))
    prio = tab[tab["system"].str.contains("headroom")].set_index("system")
    tab_main = tab[~tab["system"].str.contains("headroom")]
    f, axes = style.figure("text", height_in=2.2, ncols=4)
    for label, g in tab_main.groupby("system", sort=False):
        g = g.sort_values("rate_per_instance")
        for ax, col in zip(axes, ("ttft_p99_s", "e2e_p99_s", "preemptions", "fragmentation"), strict=True):
            ax.plot(g["rate_per_instance"], g[col], "o-", label=label)
    for ax, lab in zip(axes, ("P99 prefill latency (s)", "P99 request latency (s)", "preemptions",
                              "fragmentation (free KV while queued)"), strict=True):
        ax.set_xlabel("rate per instance (req/s)")
        ax.set_ylabel(lab)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=5)
    figs = style.save(f, ctx.out_dir, "llumnix_serving")
    heavy = tab[tab["rate_per_instance"] == max(RATES_PER_INSTANCE)].set_index("system")
    ll, inf, rr = heavy.loc["Llumnix"], heavy.loc["INFaaS++ (load, no migration)"], heavy.loc["round-robin"]

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else float("nan")

    comps = [
        Comparison("INFaaS++ / Llumnix P99 prefill latency (heaviest load)", CLAIMS["prefill P99"],
                   ratio(inf["ttft_p99_s"], ll["ttft_p99_s"]), "x", "info", note="AE run: 'up to 15.63x'"),
        Comparison("INFaaS++ / Llumnix P99 request latency (heaviest load)", CLAIMS["request P99"],
                   ratio(inf["e2e_p99_s"], ll["e2e_p99_s"]), "x", "info", note="AE run: 'up to 2.59x'"),
        Comparison("round-robin / Llumnix P99 prefill latency (heaviest load)", PAPER_PREFILL_P99_VS_RR,
                   ratio(rr["ttft_p99_s"], ll["ttft_p99_s"]), "x", "info", note="paper text: 'up to 34.4x'"),
        Comparison("round-robin preemptions − Llumnix preemptions", "> 0", float(rr["preemptions"] - ll["preemptions"]),
                   "", "direction", note="paper: preemption loss -84% vs round-robin"),
        Comparison("high-priority mean request latency: base / with headroom", PAPER_HP_REQUEST_MEAN_X,
                   ratio(prio.loc["Llumnix-base (no headroom)", "hp_e2e_mean_s"],
                         prio.loc["Llumnix (priority headroom)", "hp_e2e_mean_s"]), "x", "info",
                   note="Fig. 13 AE run: up to 1.51x; 10% high-priority requests, middle load"),
        Comparison("auto-scaling instance-seconds / fixed (heaviest load)", "0.84 (16% saving)",
                   float(heavy.loc["Llumnix + auto-scaling", "cost_vs_fixed"]), "", "info",
                   note="Fig. 14: up to 16% cost saving (Poisson)"),
    ]
    notes = (f"{k} x {MODEL} on {GPU}, {KV_TOKENS} KV tokens each, vLLM batching; {n} requests per point, "
             f"lognormal lengths (mean 256, sigma 1.2, cap 6144), Gamma arrivals CV {CV}; "
             "fragmentation = time-average free-KV fraction while some instance queues")
    return ReproOutput(tables={"llumnix_serving": tab}, figures=figs, comparisons=comps, notes=notes)
