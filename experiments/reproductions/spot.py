"""Preemptible instances (after SpotServe, Miao et al., ASPLOS'24): latency and lost work versus
the preemption rate, with and without grace-period live migration. Each instance receives
Poisson preemption notices; after a grace period (30 s, or 5 s) it goes down for 120 s (a replacement
instance's start-up, our choice) and every request still on it restarts elsewhere, recomputing
its KV. With migration, decoding requests live-migrate away during the grace period and waiting
ones move at once. No request is lost (tests/routing/test_migration_invariants.py).

Our setup: 4 x Llama-2-7B on A100-80GB, Sarathi batching (512-token budget), round-robin over
the live instances, Poisson arrivals at 8 req/s, lognormal lengths (mean 512 in / 256 out).
SpotServe reports no number we can set this next to, so the comparisons are directions only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._routing_common import latency_row, run_rows
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.lengths import LengthSpec, sample_lengths

MODEL, GPU, INSTANCES, RATE_RPS = "llama-2-7b", "a100-80gb", 4, 8.0  # our choice
LENGTHS = LengthSpec("lognormal", input_tokens=512, output_tokens=256, input_sigma=1.0, output_sigma=1.0,
                     max_tokens=4096)  # our choice
GRACES_S = (5.0, 30.0)  # 30 s notice (GCP/Azure; sim/spot.py) and a short 5 s one (our choice)
DOWN_S = 120.0  # replacement start-up (our choice)


def workload(seed: int, duration_s: float) -> Workload:
    rng = np.random.default_rng(seed)
    a = arrivals.poisson(rng, RATE_RPS, duration_s=duration_s)
    p, o = sample_lengths(LENGTHS, rng, len(a))
    return Workload(arrival_s=a, client=np.zeros(len(a), dtype=np.int64), prompt_tokens=p, output_tokens=o,
                    name="spot-poisson")


def _row(_point: dict, res) -> dict:
    row = latency_row(res)
    s = res.summary.get("router", {})
    row.update({k: s.get(k, 0) for k in ("notices", "kills", "restarts", "lost_kv_tokens", "ignored")})
    row["spot_migrations"] = s.get("migrations", 0)
    return row


@reproduction(name="spot-preemption", paper="SpotServe (Miao et al., ASPLOS'24)",
              target="latency and lost work vs preemption rate, with/without migration", quick_minutes=1.5)
def preemption(ctx: ReproContext) -> ReproOutput:
    """P50/P99 latency and recomputed KV tokens vs preemption rate, with and without migration."""
    duration = 600.0 if ctx.quick else 1800.0
    rates = [0.0, 12.0, 24.0] if ctx.quick else [0.0, 3.0, 6.0, 12.0, 24.0, 48.0]
    w = workload(ctx.seed, duration)
    points = []
    for grace in GRACES_S:
        for rate in rates:
            for migrate in (False, True):
                params = {"inner": "round-robin", "preemptions_per_hour": rate, "grace_s": grace,
                          "down_s": DOWN_S, "migrate": migrate, "horizon_s": duration}
                spec = InstanceSpec(model=MODEL, gpu=GPU, count=INSTANCES)
                points.append({"workload": w, "cluster": ClusterSpec(instances=(spec,), router="spot",
                                                                     router_params=freeze_params(params)),
                               "seed": ctx.seed, "grace_s": grace, "preemptions_per_hour": rate,
                               "migration": migrate})
    tab = pd.DataFrame(run_rows(points, _row))
    f, axes = style.figure("text", height_in=2.2, ncols=3)
    for (grace, migrate), g in tab.groupby(["grace_s", "migration"]):
        g = g.sort_values("preemptions_per_hour")
        lab = f"grace {grace:.0f} s, " + ("migrate" if migrate else "restart")
        axes[0].plot(g["preemptions_per_hour"], g["e2e_p50_s"], "o-", label=f"{lab}: p50")
        axes[0].plot(g["preemptions_per_hour"], g["e2e_p99_s"], "s--", label=f"{lab}: p99")
        axes[1].plot(g["preemptions_per_hour"], g["lost_kv_tokens"], "o-", label=lab)
        axes[2].plot(g["preemptions_per_hour"], g["ttft_p99_s"], "o-", label=lab)
    axes[0].set_ylabel("request latency (s)")
    axes[1].set_ylabel("KV tokens lost (recomputed)")
    axes[2].set_ylabel("P99 TTFT (s)")
    for ax in axes:
        ax.set_xlabel("preemption notices per instance-hour")
        ax.legend(fontsize=5)
    figs = style.save(f, ctx.out_dir, "spot_preemption")
    comps = []
    for grace in GRACES_S:
        top = tab[(tab["preemptions_per_hour"] == max(rates)) & (tab["grace_s"] == grace)].set_index("migration")
        comps.append(Comparison(f"grace {grace:.0f} s: lost KV tokens, restart-only − with migration (highest rate)",
                                "> 0", float(top.loc[False, "lost_kv_tokens"] - top.loc[True, "lost_kv_tokens"]),
                                "tokens", "direction", note="migration in the grace period saves recomputation"))
    comps += [
        Comparison("every request finished (all points)", float(len(w.arrival_s)),
                   float(tab["finished"].min()), "requests", "within", tolerance=0.0),
    ]
    notes = (f"{INSTANCES} x {MODEL} on {GPU}; Poisson {RATE_RPS} req/s for {duration:.0f} s; grace {GRACES_S} s, "
             f"down {DOWN_S} s; Poisson notices per instance (a notice that would leave no live instance is ignored)")
    return ReproOutput(tables={"spot_preemption": tab}, figures=figs, comparisons=comps, notes=notes)


# ---------------------------------------------------------------- SpotServe's own experiment (§6.2)
# Setup and sources: docs/setups/spotserve.md. Hsword/SpotServe@832b29f elastic-switch/scripts_ae/aws_e2e.sh:
# per model (6.7B / 20B / 30B): TPT (arrival rate), REQUIRED_TPT, MIN_WORLD_SIZE; MAX_BS=4, GPU_PER_NODE=4,
# CV=6, traces As / Bs / As+o / Bs+o. Prompt 512 (query*_seq512.csv), output 128 (gpt_config_*.ini
# request_output_len), fp32 on T4 (data_type=fp32).
SS_GPU, SS_GPUS_PER_NODE, SS_MAX_BATCH, SS_CV = "t4-fp32", 4, 4, 6.0
SS_PROMPT, SS_OUTPUT = 512, 128
SS_GRACE_S = 30.0  # main.py --grace-period default 30
# model -> (arrival rate req/s, required throughput req/s, minimum GPUs)
SS_MODELS = {"spotserve-6.7b": (1.5, 2.0, 4), "spotserve-20b": (0.35, 0.4, 12), "spotserve-30b": (0.2, 0.2, 16)}
SS_TRACES = ("As", "Bs", "As+o", "Bs+o")
SS_SYSTEMS = ("spotserve", "reparallelization", "rerouting")
# ablations (6.7B and 20B, every seed): SpotServe without one mechanism, and the baselines with free start-up
SS_ABLATIONS = {
    "spotserve, no stateful recovery (KV recomputed)": ("spotserve", {"stateful": False}),
    "spotserve, no device-mapper matching": ("spotserve", {"match": False}),
    "reparallelization, instant weight loading": ("reparallelization", {"load_Bps": 1e18}),
    "rerouting, instant weight loading": ("rerouting", {"load_Bps": 1e18}),
}
PAPER_P99_LOW, PAPER_P99_HIGH, PAPER_COST_SAVING = 2.4, 9.1, 0.54  # abstract; §6.2 Figs. 6-7
# Fig. 7 (monetary cost, GPT-20B), as the artifact computes it (scripts_ae/tradeoff_plot.py): node prices
# 1.9046 $/h spot and 3.912 $/h on-demand (L25-26); node-minutes (spot, on-demand) of each trace (L27-31);
# on-demand only = SpotServe on 3, 4, 6, 8 fixed nodes, charged 18 minutes (L90-97, aws_ondemand.sh);
# cost per token = price / (requests x 640 tokens) (L78).
SPOT_PRICE_PER_H, ONDEMAND_PRICE_PER_H = 1.9046, 3.912
TRACE_NODE_MINUTES = {"As": (203, 0), "Bs": (137, 0), "As+o": (210, 27), "Bs+o": (92, 26)}
ONDEMAND_NODES, ONDEMAND_MINUTES, COST_MODEL = (3, 4, 6, 8), 18, "spotserve-20b"
# The artifact's own measured GPT-20B P99 latencies (s), tradeoff_plot.py L169-174 (reparallelization,
# rerouting, SpotServe per trace) and L175 (on-demand on 3, 4, 6, 8 nodes): a check of our absolute numbers.
ARTIFACT_20B_P99 = {"As": (61.287, 51.008, 46.108), "Bs": (56.284, 99.115, 37.083),
                    "As+o": (65.816, 50.732, 49.005), "Bs+o": (73.257, 43.239, 33.388)}
ARTIFACT_ONDEMAND_P99 = (253.343, 175.346, 43.47, 34.45)


def cost_saving(spot_p99_s: float, spot_cost_per_token: float, od_p99_s: Sequence[float],
                od_cost_per_token: Sequence[float]) -> float:
    """1 - SpotServe's cost per token / the on-demand cost per token at the same P99, read off the
    on-demand (P99, cost) points by linear interpolation (clamped to the cheapest / dearest point)."""
    order = np.argsort(od_p99_s)
    od = float(np.interp(spot_p99_s, np.asarray(od_p99_s)[order], np.asarray(od_cost_per_token)[order]))
    return 1.0 - spot_cost_per_token / od


def _cost_rows(agg: pd.DataFrame, traces: Sequence[str]) -> list[Comparison]:
    """Fig. 7's saving from our runs, and the same formula on the artifact's measured P99s."""
    od_cost = [n * ONDEMAND_PRICE_PER_H * ONDEMAND_MINUTES / 60 for n in ONDEMAND_NODES]
    od_req = [float(agg.loc[(COST_MODEL, f"node{n}", "spotserve"), "finished"]) for n in ONDEMAND_NODES]
    od_p99 = [float(agg.loc[(COST_MODEL, f"node{n}", "spotserve"), "e2e_p99_s"]) for n in ONDEMAND_NODES]
    ours, theirs = {}, {}
    for t in traces:
        spot_min, od_min = TRACE_NODE_MINUTES[t]
        price = spot_min / 60 * SPOT_PRICE_PER_H + od_min / 60 * ONDEMAND_PRICE_PER_H
        req = float(agg.loc[(COST_MODEL, t, "spotserve"), "finished"])
        ours[t] = cost_saving(float(agg.loc[(COST_MODEL, t, "spotserve"), "e2e_p99_s"]), price / (req * 640),
                              od_p99, [c / (r * 640) for c, r in zip(od_cost, od_req)])
        # the artifact's measured P99s with the same request counts
        theirs[t] = cost_saving(ARTIFACT_20B_P99[t][2], price / (req * 640), ARTIFACT_ONDEMAND_P99,
                                [c / (r * 640) for c, r in zip(od_cost, od_req)])
    best = max(ours, key=ours.get)  # type: ignore[arg-type]
    return [
        Comparison("monetary cost saving vs on-demand only at equal P99, max over traces (GPT-20B)",
                   PAPER_COST_SAVING, ours[best], "", "ratio", tolerance=0.25,
                   note=f"at {best}; per trace: " + ", ".join(f"{t} {v:.0%}" for t, v in ours.items())
                        + f"; on-demand P99 on 3/4/6/8 nodes: {' / '.join(f'{p:.0f}' for p in od_p99)} s"),
        Comparison("the same saving from the artifact's measured P99s (tradeoff_plot.py L169-175), max over traces",
                   PAPER_COST_SAVING, max(theirs.values()), "", "info",
                   note="per trace: " + ", ".join(f"{t} {v:.0%}" for t, v in theirs.items())
                        + "; our reading: the paper's 54% is the best trace at matched latency"),
    ]


def spotserve_arrivals(rng: np.random.Generator, rate: float, cv: float, duration_s: float) -> np.ndarray:
    """The artifact's arrival process (trace/gen_query.py, dist "gamma"): inter-arrival times in ms
    ~ Gamma(shape = (1000 / rate) / cv, scale = cv), so "cv 6" is a scale of 6 ms, not a coefficient of
    variation: the gaps have mean 1/rate and CV sqrt(cv * rate / 1000) (0.095 at 1.5 req/s)."""
    k = (1000.0 / rate) / cv
    n = int(duration_s * rate * 1.2) + 10
    t = np.cumsum(rng.gamma(k, cv, n) / 1000.0)
    return t[t < duration_s]


def spotserve_workload(seed: int, rate: float, duration_s: float) -> Workload:
    a = spotserve_arrivals(np.random.default_rng(seed), rate, SS_CV, duration_s)
    n = len(a)
    return Workload(arrival_s=a, client=np.zeros(n, dtype=np.int64), prompt_tokens=np.full(n, SS_PROMPT),
                    output_tokens=np.full(n, SS_OUTPUT), name="spotserve-gamma")


def spotserve_cluster(model: str, trace: str, system: str, extra: dict | None = None) -> ClusterSpec:
    """The instance pool of one plan (one engine instance per replica id, `reparallel.replica_groups`)."""
    from llmsched.sim import reparallel as rp
    from llmsched.sim.parallelism import kv_tokens_per_replica
    from llmsched.sim.spot import spotserve_trace

    _, req, min_gpus = SS_MODELS[model]
    params = {"system": system, "trace": trace, "model": model, "gpu": SS_GPU, "gpus_per_node": SS_GPUS_PER_NODE,
              "min_gpus": min_gpus, "batch": SS_MAX_BATCH, "prompt_tokens": SS_PROMPT, "output_tokens": SS_OUTPUT,
              "required_rps": req, "grace_s": SS_GRACE_S} | dict(extra or {})
    setup = rp.Setup(model, SS_GPU, SS_GPUS_PER_NODE, min_gpus, SS_MAX_BATCH, SS_PROMPT, SS_OUTPUT, req, SS_GRACE_S,
                     **{k: v for k, v in (extra or {}).items() if k in ("match", "overlap", "stateful", "load_Bps")})
    tr = spotserve_trace(trace)
    init, trans = rp.plan_transitions(system, setup, tr.initially_up, tr.adds, [(x.time_s, x.instance) for x in tr.notices])
    groups = rp.replica_groups(init, trans)
    specs = []
    for (tp, pp), n in _runs([(tp, pp) for _, tp, pp in groups]):
        # KV room of the replica's tp x pp GPUs (never binding here: a batch needs 4 x 640 tokens)
        kv = kv_tokens_per_replica(model, SS_GPU, tp, pp)
        specs.append(InstanceSpec(model=model, gpu=SS_GPU, tp=tp, cost=rp.cost_spec(model, pp),
                                  batching="fastertransformer", max_batch_requests=SS_MAX_BATCH,
                                  kv_capacity_tokens=kv, count=n))
    return ClusterSpec(instances=tuple(specs), router="spotserve", router_params=freeze_params(params),
                       kv_link_bandwidth_Bps=rp.NODE_LINK_BPS)


def _runs(xs: list) -> list:
    out: list = []
    for x in xs:
        if out and out[-1][0] == x:
            out[-1][1] += 1
        else:
            out.append([x, 1])
    return [(x, n) for x, n in out]


def _ss_row(point: dict, res) -> dict:
    row = latency_row(res)
    row["requests"] = len(point["workload"].arrival_s)
    s = res.summary.get("router", {})
    row.update({k: s.get(k, 0) for k in ("switches", "restarts", "kv_moves", "lost_kv_tokens", "moved_kv_tokens",
                                          "weights_s", "moved_weight_bytes", "storage_loads")})
    return row


@reproduction(name="spotserve-e2e", paper="SpotServe (Miao et al., ASPLOS'24)",
              target="§6.2 Fig. 6: P99 latency of SpotServe vs reparallelization and rerouting, 3 models x 4 traces",
              quick_minutes=1.0)
def spotserve_e2e(ctx: ReproContext) -> ReproOutput:
    """SpotServe (dynamic re-parallelization, device mapper, stateful recovery) against the artifact's
    two baselines on its availability traces, its three models and arrival rates: P99 request latency
    of the best baseline over SpotServe's, with ablations of each mechanism."""
    from llmsched.sim.spot import spotserve_trace

    models = ("spotserve-6.7b", "spotserve-20b") if ctx.quick else tuple(SS_MODELS)
    traces = ("Bs",) if ctx.quick else SS_TRACES
    seeds = (ctx.seed,) if ctx.quick else (ctx.seed, ctx.seed + 1, ctx.seed + 2)
    points = []
    for model in models:
        rate = SS_MODELS[model][0]
        for trace in traces:
            end = spotserve_trace(trace).end_s
            for s in seeds:
                w = spotserve_workload(s, rate, end)
                runs = [(x, x, {}) for x in SS_SYSTEMS]
                if model != "spotserve-30b":
                    runs += [(label, sysname, extra) for label, (sysname, extra) in SS_ABLATIONS.items()]
                for label, sysname, extra in runs:
                    points.append({"workload": w, "cluster": spotserve_cluster(model, trace, sysname, extra),
                                   "seed": s, "model": model, "trace": trace, "system": label})
    if not ctx.quick:  # Fig. 7's on-demand only runs (GPT-20B, SpotServe on n fixed nodes)
        for n in ONDEMAND_NODES:
            for sd in seeds:
                w = spotserve_workload(sd, SS_MODELS[COST_MODEL][0], spotserve_trace(f"node{n}").end_s)
                points.append({"workload": w, "cluster": spotserve_cluster(COST_MODEL, f"node{n}", "spotserve"),
                               "seed": sd, "model": COST_MODEL, "trace": f"node{n}", "system": "spotserve"})
    tab = pd.DataFrame(run_rows(points, _ss_row))
    agg = tab.groupby(["model", "trace", "system"])[["e2e_p99_s", "e2e_p50_s", "lost_kv_tokens", "finished"]].mean()
    ratios = {}
    for model in models:
        for trace in traces:
            p99 = {x: float(agg.loc[(model, trace, x), "e2e_p99_s"]) for x in SS_SYSTEMS}
            best = min(("reparallelization", "rerouting"), key=lambda x: p99[x])
            ratios[(model, trace)] = (p99[best] / p99["spotserve"], best, p99)
    f, axes = style.figure("text", height_in=2.0, ncols=len(models))
    axes = np.atleast_1d(axes)
    for ax, model in zip(axes, models):
        for i, x in enumerate(SS_SYSTEMS):
            ax.bar([j + 0.27 * i for j in range(len(traces))], [agg.loc[(model, t, x), "e2e_p99_s"] for t in traces],
                   width=0.27, label=x)
        ax.set_xticks([j + 0.27 for j in range(len(traces))], list(traces))
        ax.set_title(model, fontsize=7)
        ax.set_ylabel("P99 request latency (s)")
        ax.legend(fontsize=5)
    figs = style.save(f, ctx.out_dir, "spotserve_e2e")
    lo = min(ratios, key=lambda k: ratios[k][0])
    hi = max(ratios, key=lambda k: ratios[k][0])
    per = "; ".join(f"{m.removeprefix('spotserve-')} {t} {r:.2f}x ({b})" for (m, t), (r, b, _) in ratios.items())
    from llmsched.sim import reparallel as rp

    m67 = "spotserve-6.7b"
    c67 = rp.choose_config(m67, SS_GPU, 28, min_gpus=SS_MODELS[m67][2], required_rps=SS_MODELS[m67][1],
                           batch=SS_MAX_BATCH, prompt=SS_PROMPT, output=SS_OUTPUT)
    assert c67 is not None
    cap67 = rp.config_perf(m67, SS_GPU, 28, c67.tp, c67.pp, SS_MAX_BATCH, SS_PROMPT, SS_OUTPUT).throughput_rps
    inst = ("reparallelization, instant weight loading", "rerouting, instant weight loading")
    free = {k: min(float(agg.loc[(*k, x), "e2e_p99_s"]) for x in inst) / ratios[k][2]["spotserve"]
            for k in ratios if all((*k, x) in agg.index for x in inst)}
    why = ("; ablation, best baseline with instant weight loading / SpotServe: "
           + ", ".join(f"{m.removeprefix('spotserve-')} {t} {v:.2f}x" for (m, t), v in free.items())
           + " (the gap is the storage start-up SpotServe's device mapper avoids; 6.7B: one "
           + f"TP{c67.tp}xPP{c67.pp} pipeline per node at {SS_MODELS[m67][0]} of {cap67:.1f} req/s capacity on As's "
             "28 GPUs, so a preemption costs both systems one pipeline and no queue)"
           ) if free else ""
    comps = [
        Comparison("best baseline / SpotServe P99 request latency, min over models x traces", PAPER_P99_LOW,
                   ratios[lo][0], "x", "ratio", tolerance=0.25, headline=True, direction="> 1",
                   note=f"min at {lo[0]} {lo[1]}; per model and trace (best baseline): {per}{why}"),
        Comparison("best baseline / SpotServe P99 request latency, max over models x traces", PAPER_P99_HIGH,
                   ratios[hi][0], "x", "ratio", tolerance=0.25, headline=True, direction="> 1",
                   note=f"max at {hi[0]} {hi[1]}"),
        Comparison("runs in which every request finished", float(len(tab)),
                   float((tab["finished"] == tab["requests"]).sum()), "runs", "within", tolerance=0.0,
                   note="no request is lost by a preemption, a restart or a re-configuration"),
    ]
    if not ctx.quick:
        comps += _cost_rows(agg, traces)
    if COST_MODEL in models:
        for t in traces:
            p99 = ratios[(COST_MODEL, t)][2]
            art = ARTIFACT_20B_P99[t]
            comps.append(Comparison(
                f"GPT-20B {t}: P99 (s) ours / artifact-measured, spotserve | reparallelization | rerouting", "",
                " | ".join(f"{p99[x]:.0f} / {a:.0f}" for x, a in zip(("spotserve", "reparallelization", "rerouting"),
                                                                      (art[2], art[0], art[1]))),
                "s", "info", note=f"artifact best baseline / SpotServe: {min(art[:2]) / art[2]:.2f}x "
                                  "(tradeoff_plot.py L169-174)"))
    for model in models:
        for trace in traces:
            p99 = ratios[(model, trace)][2]
            abl = [x for x in SS_ABLATIONS if (model, trace, x) in agg.index]
            comps.append(Comparison(
                f"{model} {trace}: P99 (s) spotserve / reparallelization / rerouting", "",
                " / ".join(f"{p99[x]:.1f}" for x in SS_SYSTEMS), "s", "info",
                note=("ablations: " + "; ".join(f"{x} {agg.loc[(model, trace, x), 'e2e_p99_s']:.1f} s" for x in abl))
                if abl else ""))
    notes = (f"models {', '.join(models)} (artifact shapes, fp32) on g4dn.12xlarge nodes (4 x T4, catalogue "
             f"{SS_GPU}); FasterTransformer batching, batch {SS_MAX_BATCH}; artifact gamma arrivals at the "
             f"per-model rates, {SS_PROMPT}/{SS_OUTPUT} tokens; traces {', '.join(traces)}; grace {SS_GRACE_S:.0f} s; "
             f"{len(seeds)} seed(s); start-up from storage at {131.4:.1f} MB/s per GPU, peers over 50 Gb/s")
    return ReproOutput(tables={"spotserve_e2e": tab}, figures=figs, comparisons=comps, notes=notes)
