"""SuperServe / SlackFit (Khare et al., arXiv 2312.16733): accuracy vs SLO attainment on a bursty
trace, SlackFit over a space of model variants against fixed variants (Clipper+) and against the
same policy paying a model load at every switch (INFaaS-style separate models).

Claim (abstract): "4.67% higher accuracy for the same SLO attainment and 2.85x higher SLO
attainment for the same accuracy on a trace derived from the real-world Microsoft Azure Functions
workload". The paper body (its variant profiles, SLOs, GPU count and trace scaling) was not
retrievable (docs/setups/superserve.md), so the setup is ours and the headline is judged in
direction, with the magnitudes reported beside the paper's:

* accuracy at equal SLO attainment: at each load, SlackFit's mean accuracy minus that of the most
  accurate fixed variant whose SLO attainment is at least SlackFit's (percentage points; the
  maximum over the load sweep is compared with 4.67);
* SLO attainment at equal accuracy: SlackFit's attainment over that of the fastest fixed variant
  whose accuracy is at least SlackFit's mean accuracy (maximum over loads vs 2.85).

Setup (sources in docs/setups/superserve.md): one A100-80GB, torchvision's five ResNets as the
variant space (`llmsched.sim.variants`), requests of one image (1 prompt token, 1 output token:
one forward pass), arrivals of the Azure LLM inference 2023 conversation trace (bursty, real,
Microsoft; the paper used Azure Functions) rescaled to each load, SLO 50 ms. No scheduling logic
here; every run goes through `llmsched.sim.run.simulate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._parallel import pmap

GPU = "a100-80gb"
SLO_S = 0.05  # our choice (the paper's SLOs were not retrievable)
VARIANTS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
PAPER_ACCURACY_GAIN_PP = 4.67
PAPER_ATTAINMENT_GAIN = 2.85
SYSTEMS = ("slackfit", "slackfit-load", *(f"fixed:{v}" for v in VARIANTS))
LABELS = {"slackfit": "SlackFit (subnetworks)", "slackfit-load": "SlackFit, separate models (load on switch)",
          **{f"fixed:{v}": f"fixed {v}" for v in VARIANTS}}


def _grid(quick: bool) -> tuple[list[float], int | None]:
    if quick:
        return [4500.0, 8000.0], 4000
    return [2000.0, 3000.0, 4500.0, 6000.0, 8000.0, 10000.0, 12000.0], None


def workload(rate: float, n: int | None, seed: int):
    """Azure conversation 2023 arrivals rescaled to `rate` (the whole trace, or its first n), one
    image per request, SLO `SLO_S`."""
    from llmsched.sim.config import WorkloadSpec
    from llmsched.sim.workload import catalog

    w = catalog.load(WorkloadSpec(source="azure-conv-2023", rate=rate, num_requests=n), seed)
    ones = np.ones(w.n, dtype=np.int64)
    return dataclasses.replace(w, prompt_tokens=ones, output_tokens=ones.copy(), ttft_slo_s=np.full(w.n, SLO_S))


def cluster(system: str):
    from llmsched.sim.config import ClusterSpec, InstanceSpec

    base: dict[str, Any] = dict(gpu=GPU, prefix_cache=False, max_batch_requests=4096)
    if system.startswith("fixed:"):
        params: tuple = (("slo_s", SLO_S), ("variant", system.split(":", 1)[1]))
        inst = InstanceSpec(batching="fixed-variant", batching_params=params, **base)
    else:
        deployment = "separate-models" if system == "slackfit-load" else "subnetworks"
        inst = InstanceSpec(batching="slackfit", batching_params=(("deployment", deployment), ("slo_s", SLO_S)), **base)
    return ClusterSpec(instances=(inst,))


def one_run(system: str, rate: float, n: int | None, seed: int) -> dict[str, Any]:
    from llmsched.sim.run import simulate

    w = workload(rate, n, seed)
    res = simulate(w, cluster(system), seed=seed)
    s = res.summary
    tl = res.timeline
    return {"system": system, "rate_rps": rate, "seed": seed, "num_requests": s["num_requests"],
            "slo_attainment": s["slo_attainment"], "accuracy": s["accuracy_mean"],
            "e2e_p99_s": s["e2e_s"]["p99"], "mean_batch": float(tl["batch_requests"].mean())}


def gains(curves: pd.DataFrame) -> pd.DataFrame:
    """Per load: SlackFit's accuracy gain over the most accurate fixed variant that attains at
    least its SLO attainment (pp), and its attainment gain over the fastest fixed variant that is
    at least as accurate (x). NaN where no fixed variant qualifies."""
    rows = []
    for rate, g in curves.groupby("rate_rps"):
        sf = g[g["system"] == "slackfit"].iloc[0]
        fixed = g[g["system"].str.startswith("fixed:")]
        as_good = fixed[fixed["slo_attainment"] >= sf["slo_attainment"] - 1e-9]
        acc_gain = (sf["accuracy"] - as_good["accuracy"].max()) * 100 if len(as_good) else np.nan
        as_accurate = fixed[fixed["accuracy"] >= sf["accuracy"] - 1e-9]
        att = as_accurate.sort_values("accuracy")["slo_attainment"]
        att_gain = sf["slo_attainment"] / att.iloc[0] if len(att) and att.iloc[0] > 0 else np.nan
        rows.append({"rate_rps": rate, "accuracy_gain_pp": acc_gain, "attainment_gain": att_gain,
                     "slackfit_accuracy": sf["accuracy"], "slackfit_attainment": sf["slo_attainment"]})
    return pd.DataFrame(rows)


def plot(curves: pd.DataFrame, out_dir) -> list:
    fig, (ax_a, ax_b) = style.figure(width="text", height_in=2.3, ncols=2)
    for sysname in SYSTEMS:
        c = curves[curves["system"] == sysname].sort_values("rate_rps")
        ax_a.plot(c["slo_attainment"], c["accuracy"] * 100, marker="o", label=LABELS[sysname])
        ax_b.plot(c["rate_rps"], c["slo_attainment"], marker="o", label=LABELS[sysname])
    ax_a.set_xlabel("SLO attainment")
    ax_a.set_ylabel("mean accuracy (top-1, %)")
    ax_b.set_xlabel("arrival rate (req/s)")
    ax_b.set_ylabel("SLO attainment")
    ax_b.legend(loc="lower left", fontsize="x-small")
    return style.save(fig, out_dir, "superserve_accuracy_vs_attainment")


@reproduction(name="superserve-slackfit", paper="Khare et al. 2023, SuperServe (arXiv 2312.16733)",
              target="abstract: +4.67% accuracy at equal SLO attainment, 2.85x SLO attainment at equal accuracy",
              quick_minutes=0.3)
def run(ctx: ReproContext) -> ReproOutput:
    """Accuracy vs SLO attainment of SlackFit over torchvision's ResNets against each fixed ResNet
    and against SlackFit paying a model load per switch, on the bursty Azure conversation trace
    rescaled to a sweep of loads (one A100, SLO 50 ms)."""
    rates, n = _grid(ctx.quick)
    calls = [(sysname, r, n, ctx.seed) for sysname in SYSTEMS for r in rates]
    points = pd.DataFrame(pmap(one_run, calls, parallel=not ctx.quick))
    curves = points.drop(columns=["seed"])
    g = gains(curves)
    figures = plot(curves, ctx.out_dir)
    acc_best = g["accuracy_gain_pp"].max()
    att_best = g["attainment_gain"].max()
    at_acc = float(g.loc[g["accuracy_gain_pp"].idxmax(), "rate_rps"]) if g["accuracy_gain_pp"].notna().any() else np.nan
    at_att = float(g.loc[g["attainment_gain"].idxmax(), "rate_rps"]) if g["attainment_gain"].notna().any() else np.nan
    piv = curves.pivot(index="rate_rps", columns="system", values="slo_attainment")
    load_penalty = (piv["slackfit"] / piv["slackfit-load"]).max()
    setup = ("our setup: one A100, torchvision ResNet-18..152 as the variant space, Azure conversation 2023 "
             "arrivals, SLO 50 ms; the paper's variant profiles, SLOs and trace scaling are not public here")
    comps = [
        Comparison("max over loads: SlackFit accuracy minus the best fixed variant with at least its SLO attainment",
                   PAPER_ACCURACY_GAIN_PP, float(acc_best), "pp", relation="ratio", tolerance=0.5, headline=True,
                   direction="> 0", note=f"maximum at {at_acc:g} req/s; {setup}; our space spans 69.8-78.3% top-1"),
        Comparison("max over loads: SlackFit SLO attainment over the fixed variant at least as accurate",
                   PAPER_ATTAINMENT_GAIN, float(att_best), "x", relation="ratio", tolerance=0.5, headline=True,
                   direction="> 1", note=f"maximum at {at_att:g} req/s; {setup}"),
        Comparison("ablation: max over loads of SLO attainment, subnetworks / separate models (load on switch)", "> 1",
                   float(load_penalty), "x", relation="direction",
                   note="the same SlackFit choices; each switch loads the variant's fp16 weights over PCIe Gen4 first"),
    ]
    for _, row in g.iterrows():
        comps.append(Comparison(f"at {row['rate_rps']:g} req/s: SlackFit accuracy / SLO attainment", "",
                                f"{row['slackfit_accuracy'] * 100:.2f}% / {row['slackfit_attainment']:.3f}", "",
                                relation="info", note=f"gains: {row['accuracy_gain_pp']:.2f} pp, "
                                                      f"{row['attainment_gain']:.3g}x"))
    return ReproOutput(
        tables={"points": points, "gains": g},
        figures=figures,
        comparisons=comps,
        notes=(f"{'Quick' if ctx.quick else 'Full'} mode: {len(points)} runs over loads "
               + ", ".join(f"{r:g}" for r in rates) + " req/s."),
    )
