"""D²LPM (Cao et al., arXiv 2501.14312, distributed evaluation): D²LPM versus Preble versus
round-robin + LPM versus VTC per worker, with a misbehaving client (S1: 4× the request rate; S2:
4× longer prefixes) and a victim client; the victim's latency and Jain's index next to the
abstract's "up to 7.18× lower per-client latency" (vs the best distributed baseline, Preble per
notes §2.6), and a Q^w sweep (the paper's Fig. 10 knob).

Our setup (the paper's traces are not available): 2 workers of Llama-3.2-3B on A10G (catalogue
KV capacity 144k tokens, so the 8 clients' 24 documents of 8,192 tokens do not fit one worker),
long-document QA per client (intra-client sharing only, as the paper models), Poisson arrivals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._fair_metrics import jain_index
from llmsched.experiments.reproductions._routing_common import run_rows
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload, merge
from llmsched.sim.workload.lengths import LengthSpec
from llmsched.sim.workload.programs import long_doc_qa

MODEL, GPU, WORKERS, TOKEN_BUDGET = "llama-3.2-3b", "a10g", 2, 2048  # our choice (DLPM's A10G setting x2)
N_CLIENTS, DOCS, DOC_TOKENS = 8, 3, 8192  # our choice: LooGLE-like documents
RATE_RPS, BAD_FACTOR = 0.5, 4.0  # per-client rate; the misbehaving client's multiplier (S1) or doc-length factor (S2)
MISBEHAVING, VICTIM = 0, 1
QUESTION = LengthSpec("uniform", input_min=20, input_max=100, output_min=50, output_max=200)
PAPER_VICTIM_X = 7.18  # abstract: "up to 7.18x lower per-client latency" (vs Preble, notes §2.6)
SYSTEMS = {  # label -> (router, router params, batching)
    "D²LPM": ("d2lpm", {}, "dlpm"),
    "Preble": ("preble", {}, "preble-mpq"),
    "RR+LPM": ("round-robin", {}, "lpm"),
    "VTC per worker": ("round-robin", {}, "vtc"),
}


def workload(seed: int, duration_s: float, scenario: str) -> Workload:
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(N_CLIENTS):
        bad = c == MISBEHAVING
        rate = RATE_RPS * (BAD_FACTOR if bad and scenario == "S1" else 1.0)
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
        lambda g: float((g["prompt_tokens"] - g["cached_prompt_tokens"]).sum() + 2 * g["output_tokens"].sum()),
        include_groups=False)
    svc[per.index.to_numpy(dtype=int)] = per.to_numpy()
    fin = r[r["finish_s"].notna()]
    victim = fin[fin["client"] == VICTIM]
    return {"victim_e2e_mean_s": float(victim["e2e_s"].mean()), "victim_e2e_p99_s": float(victim["e2e_s"].quantile(0.99)),
            "victim_ttft_mean_s": float(victim["ttft_s"].mean()),
            "bad_e2e_mean_s": float(fin.loc[fin["client"] == MISBEHAVING, "e2e_s"].mean()),
            "jain": jain_index(svc), "cache_hit_rate": float(res.summary["cache_hit_rate"]),
            "throughput_tok_s": float((done["prompt_tokens"] + done["output_tokens"]).sum() / window),
            "finished_in_window": len(done)}


def _cluster(router: str, params: dict, batching: str) -> ClusterSpec:
    spec = InstanceSpec(model=MODEL, gpu=GPU, token_budget=TOKEN_BUDGET, batching=batching, count=WORKERS)
    return ClusterSpec(instances=(spec,), router=router, router_params=freeze_params(params))


@reproduction(name="d2lpm-fairness", paper="Cao et al., arXiv 2501.14312 (D²LPM)",
              target="victim latency vs Preble (7.18x claim), Jain index, Q^w sweep (Fig. 10)", quick_minutes=2.5)
def fairness(ctx: ReproContext) -> ReproOutput:
    """Victim-client latency and Jain's index under a misbehaving client; Q^w sweep for D²LPM."""
    window = 90.0 if ctx.quick else 480.0
    quanta = [1024.0, 4096.0, 16384.0, 1e12] if ctx.quick else [256.0, 1024.0, 4096.0, 16384.0, 65536.0, 1e12]
    points = []
    for scenario in ("S1", "S2"):
        w = workload(ctx.seed, window, scenario)
        for label, (router, params, batching) in SYSTEMS.items():
            points.append({"workload": w, "cluster": _cluster(router, params, batching), "seed": ctx.seed,
                           "scenario": scenario, "system": label, "quantum_w": np.nan, "window_s": window})
        for q in quanta:
            if q == 4096.0:
                continue  # the default: already the "D²LPM" row
            points.append({"workload": w, "cluster": _cluster("d2lpm", {"quantum": q}, "dlpm"), "seed": ctx.seed,
                           "scenario": scenario, "system": "D²LPM (Q^w sweep)", "quantum_w": q, "window_s": window})
    tab = pd.DataFrame(run_rows(points, _row))
    tab.loc[tab["system"] == "D²LPM", "quantum_w"] = 4096.0
    f, axes = style.figure("text", height_in=2.3, ncols=3)
    main = tab[tab["system"] != "D²LPM (Q^w sweep)"]
    xs = np.arange(len(SYSTEMS))
    for k, scen in enumerate(("S1", "S2")):
        m = main[main["scenario"] == scen].set_index("system").loc[list(SYSTEMS)]
        axes[0].bar(xs + 0.38 * k, m["victim_e2e_mean_s"], 0.38, label=f"{scen}")
        axes[1].bar(xs + 0.38 * k, m["jain"], 0.38, label=f"{scen}")
    for ax, lab in ((axes[0], "victim mean latency (s)"), (axes[1], "Jain's index (service)")):
        ax.set_xticks(xs + 0.19, list(SYSTEMS), rotation=20, fontsize=6)
        ax.set_ylabel(lab)
        ax.legend(loc="lower left" if ax is axes[1] else "upper left")
    d2 = tab[tab["system"].str.startswith("D²LPM")].sort_values("quantum_w")
    for scen, g in d2.groupby("scenario"):
        axes[2].plot(g["quantum_w"], g["victim_e2e_mean_s"], "o-", label=f"{scen} victim latency")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("Q^w (service units; 1e12 = no deficit)")
    axes[2].set_ylabel("victim mean latency (s)")
    ax2 = axes[2].twinx()
    for scen, g in d2.groupby("scenario"):
        ax2.plot(g["quantum_w"], g["cache_hit_rate"], "x--", label=f"{scen} hit rate")
    ax2.set_ylabel("cache hit rate")
    axes[2].legend(fontsize=5, loc="upper left")
    ax2.legend(fontsize=5, loc="lower right")
    figs = style.save(f, ctx.out_dir, "d2lpm_fairness")
    comps = []
    for scen in ("S1", "S2"):
        m = main[main["scenario"] == scen].set_index("system")
        comps.append(Comparison(f"{scen}: Preble / D²LPM victim mean latency", PAPER_VICTIM_X,
                                float(m.loc["Preble", "victim_e2e_mean_s"] / m.loc["D²LPM", "victim_e2e_mean_s"]), "x",
                                "info", note="paper: 'up to 7.18x' on its own workloads"))
        comps.append(Comparison(f"{scen}: best baseline / D²LPM victim mean latency", "> 1",
                                float(m.drop(index="D²LPM")["victim_e2e_mean_s"].min() / m.loc["D²LPM", "victim_e2e_mean_s"]),
                                "x", "direction", note="> 1: D²LPM protects the victim best"))
    notes = (f"{WORKERS} x {MODEL} on {GPU}; {N_CLIENTS} clients x {DOCS} docs of {DOC_TOKENS} tokens, "
             f"{RATE_RPS} req/s each; misbehaving client {MISBEHAVING} (S1: {BAD_FACTOR}x rate, S2: {BAD_FACTOR}x "
             f"doc length), victim client {VICTIM}; window {window:.0f} s; Jain over DLPM service in the window")
    return ReproOutput(tables={"d2lpm_fairness": tab}, figures=figs, comparisons=comps, notes=notes)
