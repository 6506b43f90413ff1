"""End-to-end fidelity: simulated TTFT, TBT and end-to-end latency next to real measured serving runs.

Each measured run is a public per-request result file of a real GPU run that neither we nor the
simulator produced (the VTC artifact's S-LoRA runs, `data/reference/vtc/upstream/fair_bench/`). We
replay the run's own arrivals and prompt/output lengths through the same scheduler at the artifact's
server settings and compare the median and P99 of

    TTFT  = first token - send time                      (per request)
    TBT   = (finish - first token) / (output tokens - 1) (per request, output > 1: mean inter-token time)
    E2E   = finish - send time                           (per request)

with relative error = simulated / measured - 1. The measured numbers are always read from the
measured file (`measured_metrics`), never from a simulation. How the cost model was calibrated and
what was held out is in docs/fidelity.md; `python -m llmsched.experiments.fidelity` prints the tables.

Owns the list of measured runs, their replay and the error tables. No plotting.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, freeze_params
from llmsched.sim.paths import DATA_DIR
from llmsched.sim.run import simulate
from llmsched.sim.workload.core import Workload

VTC_DIR = DATA_DIR / "reference" / "vtc" / "upstream" / "fair_bench"
METRICS = ("ttft_s", "tbt_s", "e2e_s")
STATS = {"p50": 50.0, "p99": 99.0}

# Server settings of the VTC artifact (Ying1123/VTC-artifact @ 192c2e20, notes/fairness_locality.md §1.5):
# KV pool max_total_token_num (fair_bench/launch_server.py: 10000 on A10G; sec6.4 runs: the folder name,
# 35000 or 65000, on A100-80GB), batch_max_tokens = max(pool / 6, 2048 + 1024) new prompt tokens per
# admission, running_max_req_size = 1000, admission every max_wait_tokens = 10 decode steps
# (manager.py), S-LoRA's peak-memory admission test (every request assumed to run to its output length).
MAX_REQUESTS = 1000
ADMISSION_EVERY = 10


def prompt_budget(kv_tokens: int) -> int:
    return max(kv_tokens // 6, 2048 + 1024)


@dataclass(frozen=True)
class MeasuredRun:
    """One real run: `path` under VTC_DIR; replayed with our `policy` on (model, gpu) with `kv_tokens`.

    served_only: the run rejected requests at the door (RPM limits, latency -1); only the requests it
    served are replayed (a rejected request costs the server nothing).
    """

    dataset: str
    label: str
    path: str
    policy: str
    model: str = "llama-2-7b"
    gpu: str = "a10g"
    kv_tokens: int = 10_000
    served_only: bool = False


# Three datasets. A10G runs: Llama-2-7B on one A10G (24 GB) (VTC paper Sec 5; fair_bench/README.md).
# A100 runs: Llama-2-13B on one A100 (80 GB), KV pools 35000 / 65000 tokens (VTC paper Sec 6.4, Fig 14).
RUNS = (
    # 1. Chatbot-Arena trace (masked, time-compressed; 27 clients, 1-1024 tokens), A10G
    MeasuredRun("vtc-a10g-arena", "FCFS, RPM 5", "LShare/rpm5/all_results_real.jsonl.gz", "fcfs", served_only=True),
    MeasuredRun("vtc-a10g-arena", "FCFS, RPM 10", "LShare/rpm10/all_results_real.jsonl.gz", "fcfs", served_only=True),
    MeasuredRun("vtc-a10g-arena", "FCFS, RPM 20", "LShare/rpm20/all_results_real.jsonl.gz", "fcfs", served_only=True),
    MeasuredRun("vtc-a10g-arena", "FCFS, RPM 30", "LShare/rpm30/all_results_real.jsonl.gz", "fcfs", served_only=True),
    MeasuredRun("vtc-a10g-arena", "FCFS", "FCFS/all_results_real.jsonl.gz", "fcfs"),
    MeasuredRun("vtc-a10g-arena", "VTC", "VTC/all_results_real.jsonl.gz", "vtc"),
    # 2. synthetic suites (2-8 clients, fixed lengths, Poisson / on-off / ramps), A10G
    MeasuredRun("vtc-a10g-synthetic", "FCFS increase", "FCFS/all_results_increase.jsonl.gz", "fcfs"),
    MeasuredRun("vtc-a10g-synthetic", "VTC increase", "VTC/all_results_increase.jsonl.gz", "vtc"),
    MeasuredRun("vtc-a10g-synthetic", "FCFS on_off_less", "FCFS/all_results_on_off_less.jsonl.gz", "fcfs"),
    MeasuredRun("vtc-a10g-synthetic", "FCFS proportional", "FCFS/all_results_proportional.jsonl.gz", "fcfs"),
    MeasuredRun("vtc-a10g-synthetic", "FCFS poisson_short_long_2", "FCFS/all_results_poisson_short_long_2.jsonl.gz",
                "fcfs"),
    MeasuredRun("vtc-a10g-synthetic", "FCFS overload", "FCFS/all_results_overload.jsonl.gz", "fcfs"),
    # 3. Llama-2-13B on A100-80GB, two clients, overload (sec6.4)
    MeasuredRun("vtc-a100-13b", "FCFS 256/256, pool 65000", "sec6.4/65000/FCFS-256/all_results_overload-s4.jsonl.gz",
                "fcfs", "llama-2-13b", "a100-80gb", 65_000),
    MeasuredRun("vtc-a100-13b", "VTC 256/256, pool 65000", "sec6.4/65000/VTC-256/all_results_overload-s4.jsonl.gz",
                "vtc", "llama-2-13b", "a100-80gb", 65_000),
    MeasuredRun("vtc-a100-13b", "VTC 512/512, pool 65000", "sec6.4/65000/VTC-512/all_results_overload-s4.jsonl.gz",
                "vtc", "llama-2-13b", "a100-80gb", 65_000),
    MeasuredRun("vtc-a100-13b", "VTC 256/256, pool 35000", "sec6.4/35000/VTC-256/all_results_overload-s4.jsonl.gz",
                "vtc", "llama-2-13b", "a100-80gb", 35_000),
    MeasuredRun("vtc-a100-13b", "VTC 512/512, pool 35000", "sec6.4/35000/VTC-512/all_results_overload-s4.jsonl.gz",
                "vtc", "llama-2-13b", "a100-80gb", 35_000),
)
QUICK_RUNS = ("FCFS, RPM 5", "FCFS increase", "FCFS 256/256, pool 65000")  # one per dataset

# The cost model every replay uses: the roofline fitted per GPU on per-iteration reference data only
# (docs/cost-models.md) with the S-LoRA stack overhead fitted on the VTC cost profile (A10G).
COST = "roofline+stack:slora"


def load_measured(run: MeasuredRun, root: Path = VTC_DIR) -> pd.DataFrame:
    """The measured file as a per-request frame (sorted by send time): client, arrival_s, prompt_tokens,
    output_tokens, ttft_s, e2e_s, served."""
    with gzip.open(root / run.path, "rt") as fh:
        obj = json.loads(fh.readline())
    resp = obj["result"]["responses"]
    names = sorted({r["adapter_dir"] for r in resp}, key=lambda s: (len(s), s))
    idx = {n: i for i, n in enumerate(names)}
    df = pd.DataFrame({
        "client": [idx[r["adapter_dir"]] for r in resp],
        "arrival_s": [float(r["req_time"]) for r in resp],
        "prompt_tokens": [max(1, int(r["prompt_len"])) for r in resp],
        "output_tokens": [max(1, int(r["output_len"])) for r in resp],
        "ttft_s": [float(r["first_token_latency"]) for r in resp],
        "e2e_s": [float(r["request_latency"]) for r in resp],
    })
    df["served"] = df["e2e_s"] >= 0
    df.attrs["n_clients"] = len(names)
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True)


def per_request_metrics(ttft_s, e2e_s, output_tokens) -> pd.DataFrame:
    ttft = np.asarray(ttft_s, dtype=np.float64)
    e2e = np.asarray(e2e_s, dtype=np.float64)
    out = np.asarray(output_tokens, dtype=np.float64)
    tbt = np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)
    return pd.DataFrame({"ttft_s": ttft, "tbt_s": tbt, "e2e_s": e2e})


def summarise(per_request: pd.DataFrame) -> dict[tuple[str, str], float]:
    """{(metric, stat): value} over the requests (NaN TBTs of one-token outputs left out)."""
    out = {}
    for m in METRICS:
        v = per_request[m].to_numpy()
        v = v[np.isfinite(v)]
        for s, q in STATS.items():
            out[(m, s)] = float(np.percentile(v, q)) if len(v) else float("nan")
    return out


def measured_metrics(run: MeasuredRun, root: Path = VTC_DIR) -> dict[tuple[str, str], float]:
    """Median and P99 of the measured run's served requests, from the measured file only."""
    df = load_measured(run, root)
    df = df[df["served"]]
    return summarise(per_request_metrics(df["ttft_s"], df["e2e_s"], df["output_tokens"]))


def replay_workload(run: MeasuredRun, root: Path = VTC_DIR) -> Workload:
    df = load_measured(run, root)
    if run.served_only:
        df = df[df["served"]]
    n = df.attrs["n_clients"]
    t = df["arrival_s"].to_numpy()
    return Workload(arrival_s=t - min(0.0, float(t.min())), client=df["client"].to_numpy(),
                    prompt_tokens=df["prompt_tokens"].to_numpy(), output_tokens=df["output_tokens"].to_numpy(),
                    client_weight=np.ones(n), client_names=tuple(f"client-{i}" for i in range(n)),
                    name=f"fidelity-{run.label}")


def instance(run: MeasuredRun, cost: str = COST, admission_every: int = ADMISSION_EVERY) -> InstanceSpec:
    return InstanceSpec(model=run.model, gpu=run.gpu, cost=cost, batching=run.policy,
                        batching_params=freeze_params({"admission": "peak"}),
                        kv_capacity_tokens=run.kv_tokens, block_size=1,
                        token_budget=prompt_budget(run.kv_tokens) + MAX_REQUESTS,
                        max_batch_requests=MAX_REQUESTS, admission_interval=admission_every,
                        prefix_cache=False)


def simulated_metrics(run: MeasuredRun, cost: str = COST, admission_every: int = ADMISSION_EVERY,
                      seed: int = 0, root: Path = VTC_DIR) -> dict[tuple[str, str], float]:
    w = replay_workload(run, root)
    cluster = ClusterSpec(instances=(instance(run, cost, admission_every),))
    res = simulate(w, cluster, seed=seed, config=RunConfig(cluster=cluster, seed=seed).to_dict())
    r = res.requests
    done = np.isfinite(np.asarray(r["finish_s"], dtype=np.float64))
    if not done.all():
        raise RuntimeError(f"{run.label}: {int((~done).sum())} requests did not finish in the simulation")
    arr = np.asarray(r["arrival_s"], dtype=np.float64)
    return summarise(per_request_metrics(np.asarray(r["first_token_s"]) - arr, np.asarray(r["finish_s"]) - arr,
                                         np.asarray(r["output_tokens"])))


def compare(run: MeasuredRun, sim: dict, meas: dict, variant: str = "calibrated") -> pd.DataFrame:
    rows = []
    for (m, s), mv in meas.items():
        sv = sim[(m, s)]
        rows.append({"dataset": run.dataset, "run": run.label, "variant": variant, "metric": m, "stat": s,
                     "measured": mv, "simulated": sv, "rel_error": sv / mv - 1.0 if mv > 0 else float("nan")})
    return pd.DataFrame(rows)


# Ablations: what moves the error (each replaces one setting of the calibrated replay).
# The per-iteration overhead brackets: S-LoRA's model-runner overhead from its offline profile (~1 ms, the
# calibrated replay) < +5 ms (a round sensitivity step, not fitted) < vLLM 0.1's server overhead on an A10
# (14.1 ms, Llumnix Fig 10); none is fitted to these runs.
ABLATIONS = {
    "no CPU overhead (stack sglang)": {"cost": "roofline+stack:sglang"},
    "+5 ms per iteration (sensitivity)": {"cost": COST + "+extra:0.005"},
    "vLLM 0.1 server overhead (stack vllm-llumnix, 14.1 ms)": {"cost": "roofline+stack:vllm-llumnix"},
    "unfitted roofline (default efficiencies)": {"cost": "roofline:unfitted+stack:slora"},
    "admission every iteration (instead of every 10 decode steps)": {"admission_every": 1},
}


# Ablations run on the FCFS runs of each dataset only (the VTC replays cost 4-10x more to simulate);
# their per-dataset errors are compared with the calibrated replay of the same runs.
ABLATION_RUNS = ("FCFS, RPM 5", "FCFS, RPM 20", "FCFS", "FCFS increase", "FCFS on_off_less", "FCFS overload",
                 "FCFS 256/256, pool 65000")


def fidelity_table(runs=RUNS, ablations: dict | None = None, seed: int = 0) -> pd.DataFrame:
    frames = []
    for run in runs:
        meas = measured_metrics(run)
        frames.append(compare(run, simulated_metrics(run, seed=seed), meas))
        if run.label in ABLATION_RUNS:
            for name, kw in (ablations or {}).items():
                frames.append(compare(run, simulated_metrics(run, seed=seed, **kw), meas, name))
    return pd.concat(frames, ignore_index=True)


def dataset_errors(table: pd.DataFrame, same_runs: bool = False) -> pd.DataFrame:
    """Median |relative error| per dataset and variant, over every (run, metric, statistic) cell.
    same_runs: only the runs every variant has (ablations), the calibrated row then as "calibrated (same runs)"."""
    t = table.assign(abs_error=table["rel_error"].abs())
    if same_runs:
        n_var = t["variant"].nunique()
        runs = t.groupby("run")["variant"].nunique()
        t = t[t["run"].isin(runs[runs == n_var].index)]
        t = t.assign(variant=t["variant"].replace({"calibrated": "calibrated (same runs)"}))
    return (t.groupby(["dataset", "variant"], sort=False)["abs_error"].median().rename("median_abs_error")
            .reset_index())


def markdown(table: pd.DataFrame) -> str:
    """docs/fidelity.md's tables: per dataset, every (run, metric, statistic) of the calibrated replay,
    then the per-dataset median |error| of every variant."""
    names = {"ttft_s": "TTFT", "tbt_s": "TBT", "e2e_s": "E2E"}
    out = []
    cal = table[table["variant"] == "calibrated"]
    for ds, part in cal.groupby("dataset", sort=False):
        out += [f"### {ds}", "", "| run | metric | measured (s) | simulated (s) | error |", "|---|---|---:|---:|---:|"]
        for _, r in part.iterrows():
            out.append(f"| {r['run']} | {names[r['metric']]} {r['stat']} | {r['measured']:.4g} | {r['simulated']:.4g} | "
                       f"{r['rel_error']:+.1%} |")
        out.append("")
    errs = pd.concat([dataset_errors(table), dataset_errors(table, same_runs=True)], ignore_index=True)
    errs = errs.drop_duplicates(["dataset", "variant"])
    variants = list(dict.fromkeys(errs["variant"]))
    out += ["### Median |error| per dataset and variant", "",
            "`calibrated`: every run; the other rows: the ablation runs only (`ABLATION_RUNS`).", "",
            "| variant | " + " | ".join(dict.fromkeys(errs["dataset"])) + " |",
            "|---|" + "---:|" * errs["dataset"].nunique()]
    for v in variants:
        row = errs[errs["variant"] == v].set_index("dataset")["median_abs_error"]
        out.append(f"| {v} | " + " | ".join(f"{row.get(d, float('nan')):.1%}" for d in dict.fromkeys(errs["dataset"]))
                   + " |")
    return "\n".join(out) + "\n"


def quick_runs() -> tuple[MeasuredRun, ...]:
    return tuple(r for r in RUNS if r.label in QUICK_RUNS)


def main(argv: list[str] | None = None) -> int:
    """Print docs/fidelity.md's tables: `--quick` (one run per dataset, no ablations), full otherwise, or
    `--from TABLE.parquet` to render a saved `fidelity` table (e.g. from `llmsched reproduce fidelity-real-runs`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m llmsched.experiments.fidelity")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--from", dest="saved", type=Path)
    a = ap.parse_args(argv)
    if a.saved:
        table = pd.read_parquet(a.saved)
    else:
        table = fidelity_table(quick_runs() if a.quick else RUNS, None if a.quick else ABLATIONS)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
