"""D²LPM (Cao et al., arXiv 2501.14312, distributed evaluation): D²LPM versus Preble versus
round-robin + LPM versus VTC per worker, with a misbehaving client (S1: 4× the request rate; S2:
4× longer prefixes) and a victim client; the victim's mean TTFT (the paper's metric for
long-context QA) next to the abstract's "up to 7.18× lower per-client latency" (vs the best
distributed baseline, Preble), over a load sweep, and a Q^w sweep (the paper's Fig. 10 knob).

Preble runs its published e2e configuration (eviction-cost term E, capacity eviction) behind one
global scheduler with the artifact's measured decision latency (6.03 ms, see
`llmsched.policies.routing.preble`): D²LPM's case against a centralised queue rests on that
overhead (its Fig. 4, notes/reproduction_setups.md §3 [SEC]); the ablations remove it and scale
it 10x. Setup and sources: docs/setups/d2lpm.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._fair_metrics import jain_index
from llmsched.experiments.reproductions._routing_common import run_rows
from llmsched.policies.routing.preble import PREBLE_MEASURED_DECISION_S
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload, merge
from llmsched.sim.workload.lengths import LengthSpec
from llmsched.sim.workload.programs import long_doc_qa

MODEL, GPU = "llama-3.1-8b", "a100-80gb"  # the paper's distributed setting [SEC, notes §3]
WORKERS, TOKEN_BUDGET = 2, 2048  # our choice: 2 of the paper's 1-8 workers; Sarathi-style chunks
N_CLIENTS, DOCS, DOC_TOKENS = 8, 3, 8192  # our choice: LooGLE-like documents
RATE_RPS, BAD_FACTOR = 1.0, 4.0  # per-client rate; the misbehaving client's multiplier (S1) or doc-length factor (S2)
# our choice (the paper's loads are unpublished): at 0.5 req/s every system keeps up (victim TTFT
# 0.2-3 s in quick runs); by 1.5 req/s requests queue (victim TTFT > 5 s for RR+LPM in a 30 s probe)
LOAD_SWEEP_RPS = [0.5, 1.0, 1.5]
MISBEHAVING, VICTIM = 0, 1
QUESTION = LengthSpec("uniform", input_min=20, input_max=100, output_min=50, output_max=200)
PAPER_VICTIM_X = 7.18  # abstract: "up to 7.18x lower per-client latency" (vs Preble, notes §2.6)
PREBLE_PUBLISHED = {"eviction_cost": True, "capacity_eviction": True, "decision_base_s": PREBLE_MEASURED_DECISION_S}
SYSTEMS = {  # label -> (router, router params, batching)
    "D²LPM": ("d2lpm", {}, "dlpm"),
    "Preble": ("preble", PREBLE_PUBLISHED, "preble-mpq"),
    "RR+LPM": ("round-robin", {}, "lpm"),
    "VTC per worker": ("round-robin", {}, "vtc"),
}
ABLATIONS = {  # at RATE_RPS: what the Preble baseline's router overhead and E term change
    "Preble, instant decisions": ("preble", {**PREBLE_PUBLISHED, "decision_base_s": 0.0}, "preble-mpq"),
    "Preble, 10x decision latency": ("preble", {**PREBLE_PUBLISHED, "decision_base_s": 10 * PREBLE_MEASURED_DECISION_S},
                                     "preble-mpq"),
    "Preble, E term off": ("preble", {**PREBLE_PUBLISHED, "eviction_cost": False}, "preble-mpq"),
}


def workload(seed: int, duration_s: float, scenario: str, rate_rps: float = RATE_RPS) -> Workload:
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(N_CLIENTS):
        bad = c == MISBEHAVING
        rate = rate_rps * (BAD_FACTOR if bad and scenario == "S1" else 1.0)
        doc = int(DOC_TOKENS * (BAD_FACTOR if bad and scenario == "S2" else 1))
        a = arrivals.poisson(rng, rate, duration_s=duration_s)
        parts.append(long_doc_qa(rng, a, QUESTION, n_docs=DOCS, doc_tokens=doc))
    return merge(parts, name=f"d2lpm-{scenario}")


def _row(p: dict, res) -> dict:
    r = res.requests
    window = p["window_s"]
    done = r[r["finish_s"] <= window]
    svc = np.zeros(N_CLIENTS)  # DLPM service: uncached prompt + 2 x output, finished in window
    per = done.groupby("client").apply(
        lambda g: float((g["prompt_tokens"] - np.minimum(g["cached_prompt_tokens"], g["prompt_tokens"])).sum()
                          + 2 * g["output_tokens"].sum()),
        include_groups=False)
    svc[per.index.to_numpy(dtype=int)] = per.to_numpy()
    fin = r[r["finish_s"].notna()]
    victim = fin[fin["client"] == VICTIM]
    return {"victim_e2e_mean_s": float(victim["e2e_s"].mean()), "victim_e2e_p99_s": float(victim["e2e_s"].quantile(0.99)),
            "victim_ttft_mean_s": float(victim["ttft_s"].mean()), "victim_ttft_p99_s": float(victim["ttft_s"].quantile(0.99)),
            "bad_e2e_mean_s": float(fin.loc[fin["client"] == MISBEHAVING, "e2e_s"].mean()),
            "jain": jain_index(svc), "cache_hit_rate": float(res.summary["cache_hit_rate"]),
            "throughput_tok_s": float((done["prompt_tokens"] + done["output_tokens"]).sum() / window),
            "finished_in_window": len(done)}


def _cluster(router: str, params: dict, batching: str) -> ClusterSpec:
    spec = InstanceSpec(model=MODEL, gpu=GPU, token_budget=TOKEN_BUDGET, batching=batching, count=WORKERS)
    return ClusterSpec(instances=(spec,), router=router, router_params=freeze_params(params))


@reproduction(name="d2lpm-fairness", paper="Cao et al., arXiv 2501.14312 (D²LPM)",
              target="victim TTFT vs Preble (7.18x claim), Jain index, load and Q^w sweeps (Fig. 10)", quick_minutes=3.0)
def fairness(ctx: ReproContext) -> ReproOutput:
    """Victim-client TTFT and Jain's index under a misbehaving client, over loads; Q^w sweep for D²LPM."""
    window = 90.0 if ctx.quick else 240.0
    quanta = [1024.0, 1e12] if ctx.quick else [256.0, 1024.0, 16384.0, 65536.0, 1e12]
    loads = [RATE_RPS] if ctx.quick else LOAD_SWEEP_RPS
    points = []
    for scenario in ("S1", "S2"):
        for rate in loads:
            w = workload(ctx.seed, window, scenario, rate)
            systems = {**SYSTEMS, **(ABLATIONS if rate == RATE_RPS else {})}
            for label, (router, params, batching) in systems.items():
                points.append({"workload": w, "cluster": _cluster(router, params, batching), "seed": ctx.seed,
                               "scenario": scenario, "rate_rps": rate, "system": label, "quantum_w": np.nan,
                               "window_s": window})
            if rate != RATE_RPS:
                continue
            for q in quanta:
                points.append({"workload": w, "cluster": _cluster("d2lpm", {"quantum": q}, "dlpm"), "seed": ctx.seed,
                               "scenario": scenario, "rate_rps": rate, "system": "D²LPM (Q^w sweep)", "quantum_w": q,
                               "window_s": window})
    tab = pd.DataFrame(run_rows(points, _row))
    tab.loc[tab["system"] == "D²LPM", "quantum_w"] = 4096.0
    f, axes = style.figure("text", height_in=2.3, ncols=3)
    main = tab[tab["system"].isin(list(SYSTEMS)) & (tab["rate_rps"] == RATE_RPS)]
    xs = np.arange(len(SYSTEMS))
    for k, scen in enumerate(("S1", "S2")):
        m = main[main["scenario"] == scen].set_index("system").loc[list(SYSTEMS)]
        axes[0].bar(xs + 0.38 * k, m["victim_ttft_mean_s"], 0.38, label=f"{scen}")
        axes[1].bar(xs + 0.38 * k, m["jain"], 0.38, label=f"{scen}")
    for ax, lab in ((axes[0], f"victim mean TTFT (s) at {RATE_RPS} req/s"), (axes[1], "Jain's index (service)")):
        ax.set_xticks(xs + 0.19, list(SYSTEMS), rotation=20, fontsize=6)
        ax.set_ylabel(lab)
        ax.legend(loc="lower left" if ax is axes[1] else "upper left")
    sweep = tab[tab["system"].isin(["D²LPM", "Preble"])]
    for (scen, sys_), g in sweep.groupby(["scenario", "system"]):
        g = g.sort_values("rate_rps")
        axes[2].plot(g["rate_rps"], g["victim_ttft_mean_s"], "o-" if sys_ == "Preble" else "s--", label=f"{scen} {sys_}")
    axes[2].set_xlabel("request rate per client (req/s)")
    axes[2].set_ylabel("victim mean TTFT (s)")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=5)
    figs = style.save(f, ctx.out_dir, "d2lpm_fairness")
    piv = tab[tab["system"].isin(list(SYSTEMS))].pivot_table(index=["scenario", "rate_rps"], columns="system",
                                                             values="victim_ttft_mean_s")
    ratio = (piv["Preble"] / piv["D²LPM"]).rename("preble_over_d2lpm").reset_index()
    best = ratio.loc[ratio["preble_over_d2lpm"].idxmax()]
    comps = [Comparison("max over scenarios x loads: Preble / D²LPM victim mean TTFT", PAPER_VICTIM_X,
                        float(best["preble_over_d2lpm"]), "x", "ratio", tolerance=0.25, headline=True,
                        direction="> 1",
                        note=f"at {best['scenario']}, {best['rate_rps']} req/s per client; paper: 'up to 7.18x' "
                             "on its own workloads (loads unpublished)")]
    for scen in ("S1", "S2"):
        m = main[main["scenario"] == scen].set_index("system")
        comps.append(Comparison(f"{scen} at {RATE_RPS} req/s: best baseline / D²LPM victim mean TTFT", "> 1",
                                float(m.drop(index="D²LPM")["victim_ttft_mean_s"].min() / m.loc["D²LPM", "victim_ttft_mean_s"]),
                                "x", "direction", note="> 1: D²LPM protects the victim best"))
        comps.append(Comparison(f"{scen} at {RATE_RPS} req/s: Preble / D²LPM victim mean e2e latency", "", float(
            m.loc["Preble", "victim_e2e_mean_s"] / m.loc["D²LPM", "victim_e2e_mean_s"]), "x", "info"))
        ab = tab[(tab["scenario"] == scen) & (tab["rate_rps"] == RATE_RPS)].set_index("system")
        for label in ABLATIONS:
            comps.append(Comparison(f"ablation ({scen}, {RATE_RPS} req/s): {label} / D²LPM victim mean TTFT", "",
                                    float(ab.loc[label, "victim_ttft_mean_s"] / ab.loc["D²LPM", "victim_ttft_mean_s"]),
                                    "x", "info", note="vs the Preble row: what the router overhead / E term change"))
    notes = (f"{WORKERS} x {MODEL} on {GPU}; {N_CLIENTS} clients x {DOCS} docs of {DOC_TOKENS} tokens, "
             f"loads {loads} req/s per client; misbehaving client {MISBEHAVING} (S1: {BAD_FACTOR}x rate, S2: "
             f"{BAD_FACTOR}x doc length), victim client {VICTIM}; window {window:.0f} s; Jain over DLPM service in "
             "the window; Preble with E term and measured decision latency")
    return ReproOutput(tables={"d2lpm_fairness": tab, "d2lpm_preble_over_d2lpm": ratio}, figures=figs,
                       comparisons=comps, notes=notes)
