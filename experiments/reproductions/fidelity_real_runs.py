"""End-to-end fidelity against real measured serving runs (docs/fidelity.md): the VTC artifact's S-LoRA
runs on an A10G (Chatbot-Arena trace; synthetic suites) and on an A100 (Llama-2-13B), replayed through
the same scheduler; median and P99 of TTFT, TBT and end-to-end latency, simulated vs measured.

Quick mode: one run per dataset, no ablations (about 30 s of CPU). Full mode: every run, and every
ablation of `llmsched.experiments.fidelity.ABLATIONS` on the FCFS runs (about 10 min of CPU).
"""

from __future__ import annotations

import pandas as pd

from llmsched.experiments import fidelity as F
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction

TARGET_MEDIAN_ERROR = 0.10  # issue 12: median error <= 10% on every dataset


@reproduction(name="fidelity-real-runs", paper="llmsched end-to-end fidelity (issue 12) vs the VTC artifact's "
              "measured S-LoRA runs (Ying1123/VTC-artifact @ 192c2e20)",
              target="median |error| <= 10% per dataset (TTFT, TBT, E2E; p50 and p99)", quick_minutes=0.6)
def run(ctx: ReproContext) -> ReproOutput:
    """Replay each measured run's arrivals and lengths (cost `roofline+stack:slora`, fitted on per-iteration
    data only) and compare latency percentiles with the measured file."""
    runs = F.quick_runs() if ctx.quick else F.RUNS
    table = F.fidelity_table(runs, None if ctx.quick else F.ABLATIONS, seed=ctx.seed)
    per_dataset = F.dataset_errors(table)
    comps = []
    calibrated = per_dataset[per_dataset["variant"] == "calibrated"]
    for _, row in calibrated.iterrows():
        cells = table[(table["dataset"] == row["dataset"]) & (table["variant"] == "calibrated")]
        tbt = cells[cells["metric"] == "tbt_s"]["rel_error"]
        comps.append(Comparison(
            metric=f"{row['dataset']}: median |error| over {len(cells)} (run, metric, p50/p99) cells",
            paper_value=f"<= {TARGET_MEDIAN_ERROR}", ours=round(float(row["median_abs_error"]), 4),
            relation="direction", headline=True, direction=f"<= {TARGET_MEDIAN_ERROR}",
            note=(f"TBT error {tbt.min():+.0%} to {tbt.max():+.0%}; queueing metrics amplify a per-iteration "
                  "time error near saturation (ablations below)")))
    same = F.dataset_errors(table, same_runs=True) if not ctx.quick else per_dataset.iloc[0:0]
    for _, row in same.iterrows():
        comps.append(Comparison(metric=f"ablation: {row['variant']} — {row['dataset']} median |error|",
                                paper_value="", ours=round(float(row["median_abs_error"]), 4), relation="info"))
    return ReproOutput(tables={"fidelity": table, "fidelity_by_dataset": pd.concat([per_dataset, same])},
                       comparisons=comps,
                       notes="Measured values come from the artifact's per-request files; see docs/fidelity.md.")
