"""`llmsched simulate`: run one workload through one cluster, print a summary, save the run.

Flags build a `RunConfig`; `--config run.toml` loads one, and any flag given explicitly overrides
the file. Validation errors surface as one line naming the file/flag, the field and the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from llmsched.sim.config import InstanceSpec, RunConfig, WorkloadSpec, freeze_params
from llmsched.sim.errors import InputError

HELP = "run one workload through one cluster config (progress bar, summary table, run directory)"


def _kv(items: list[str], flag: str) -> dict:
    out = {}
    for text in items:
        if "=" not in text:
            raise InputError(flag, text, "expected KEY=VALUE")
        key, value = text.split("=", 1)
        out[key] = tuple(_scalar(v) for v in value.split(",")) if "," in value else _scalar(value)
    return out


def _scalar(value: str):
    """int, then float, then true/false, else the string itself (a comma makes a list of these)."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a run.toml (see docs/simulate.md); flags given override it")
    p.add_argument("--workload", help="bundled trace/generator name (see `llmsched workloads`) or a CSV/JSONL path")
    p.add_argument("--workload-param", action="append", default=[], metavar="KEY=VALUE",
                   help="generator parameter, repeatable")
    p.add_argument("--rate", type=float, help="requests/s (rescales trace arrivals)")
    p.add_argument("--duration", type=float, help="keep arrivals up to this many seconds")
    p.add_argument("--num-requests", type=int, help="keep the first N requests")
    p.add_argument("--model", help="model name, e.g. llama-2-7b")
    p.add_argument("--gpu", help="GPU name, e.g. a100-80gb")
    p.add_argument("--tp", type=int, help="tensor-parallel degree")
    p.add_argument("--cost", help="roofline | linear:a,b,c,d | staircase:c,a,b0 | profiled:<table>")
    p.add_argument("--instances", type=int, help="number of (mixed) instances")
    p.add_argument("--pd", metavar="P:D", help="disaggregate: P prefill and D decode instances")
    p.add_argument("--batching", help="batching policy (see `llmsched policies`)")
    p.add_argument("--batching-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--router", help="routing policy (see `llmsched policies`)")
    p.add_argument("--router-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--token-budget", type=int, help="tokens per iteration")
    p.add_argument("--max-batch-requests", type=int, help="cap on requests per iteration")
    p.add_argument("--block-size", type=int, help="KV block size in tokens")
    p.add_argument("--admission-interval", type=int, help="admit new requests every k iterations")
    p.add_argument("--kv-capacity-tokens", type=int, help="override the derived KV capacity")
    p.add_argument("--context-tokens", type=int,
                   help="max prompt + output tokens of one request (default: the model's context length)")
    p.add_argument("--no-prefix-cache", action="store_true", help="disable the prefix cache")
    p.add_argument("--mode", choices=["fast", "step"], help="exact fast-forward (default) or reference step mode")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--out", help="write requests/service/timeline parquet + summary.json here")
    p.add_argument("--force", action="store_true",
                   help="replace the run in an existing non-empty --out (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_config(args: argparse.Namespace) -> RunConfig:
    cfg = RunConfig.from_toml(args.config) if args.config else RunConfig()
    src = args.config or "command line"
    w = _workload_overrides(args, cfg.workload)
    instances = _instance_overrides(args, cfg.cluster.instances, src)
    c_changes: dict = {"instances": instances}
    if args.router is not None:
        c_changes["router"] = args.router
    if args.router_param:
        c_changes["router_params"] = freeze_params(_kv(args.router_param, "--router-param"))
    cluster = dataclasses.replace(cfg.cluster, **c_changes)
    top = {"workload": w, "cluster": cluster}
    if args.seed is not None:
        top["seed"] = args.seed
    if args.mode is not None:
        top["mode"] = args.mode
    return dataclasses.replace(cfg, **top).validate(src)


def _workload_overrides(args: argparse.Namespace, w: WorkloadSpec) -> WorkloadSpec:
    """The config's workload with the command line's --workload, --rate, ... applied."""
    w_changes = {}
    if args.workload is not None:
        w_changes["source"] = args.workload
    if args.rate is not None:
        w_changes["rate"] = args.rate
    if args.duration is not None:
        w_changes["duration_s"] = args.duration
    if args.num_requests is not None:
        w_changes["num_requests"] = args.num_requests
    if args.workload_param:
        w_changes["params"] = freeze_params({**dict(w.params), **_kv(args.workload_param, "--workload-param")})
    return dataclasses.replace(w, **w_changes) if w_changes else w


def _instance_overrides(args: argparse.Namespace, groups: tuple[InstanceSpec, ...], src: str
                        ) -> tuple[InstanceSpec, ...]:
    """The config's instance groups with the command line's per-instance flags applied to every
    group, then --instances (the count of a single group) or --pd P:D (prefill and decode pools)."""
    inst_changes = {}
    for flag, field in (("model", "model"), ("gpu", "gpu"), ("tp", "tp"), ("cost", "cost"),
                        ("batching", "batching"), ("token_budget", "token_budget"),
                        ("max_batch_requests", "max_batch_requests"), ("block_size", "block_size"),
                        ("admission_interval", "admission_interval"),
                        ("kv_capacity_tokens", "kv_capacity_tokens"), ("context_tokens", "context_tokens")):
        value = getattr(args, flag)
        if value is not None:
            inst_changes[field] = value
    if args.batching_param:
        inst_changes["batching_params"] = freeze_params(_kv(args.batching_param, "--batching-param"))
    if args.no_prefix_cache:
        inst_changes["prefix_cache"] = False
    instances = tuple(dataclasses.replace(i, **inst_changes) for i in groups)
    if args.instances is not None and args.pd:
        raise InputError(src, "--instances/--pd", "give one of them", "use --pd P:D for disaggregation")
    if args.instances is not None:
        from llmsched.sim.config import MAX_INSTANCES

        if not 1 <= args.instances <= MAX_INSTANCES:
            raise InputError(src, "--instances", f"must be between 1 and {MAX_INSTANCES}, got {args.instances}")
        if len(instances) != 1:
            raise InputError(src, "--instances", "the config has several instance groups",
                             "set `count` per group in the config instead")
        instances = (dataclasses.replace(instances[0], count=args.instances),)
    if args.pd:
        try:
            p_count, d_count = (int(x) for x in args.pd.split(":"))
        except ValueError:
            raise InputError(src, "--pd", f"expected P:D like 2:2, got {args.pd!r}") from None
        if p_count < 1 or d_count < 1:
            raise InputError(src, "--pd", f"needs at least one prefill and one decode instance, got {args.pd!r}",
                             "use P:D with P >= 1 and D >= 1, e.g. 1:1")
        base = instances[0]
        instances = (dataclasses.replace(base, role="prefill", count=p_count),
                     dataclasses.replace(base, role="decode", count=d_count))
    return instances


def _fmt(x: float, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}{unit}"


def print_summary(summary: dict) -> None:
    unfinished = summary["num_requests"] - summary["num_finished"] - summary.get("num_rejected", 0)
    if unfinished > 0:  # a policy that never admits them (a stall), or a time limit: never silent
        sys.stderr.write(f"warning: {unfinished} of {summary['num_requests']} requests never finished: they were "
                         "still queued or running when nothing was left to simulate\n")
    rows = [
        ("requests finished", f"{summary['num_finished']} / {summary['num_requests']}"
         + (f" ({summary['num_rejected']} rejected" + (
             f", {summary['num_rejected_context']} longer than the model's context length"
             if summary.get("num_rejected_context") else "") + ")" if summary.get("num_rejected") else "")),
        ("throughput", f"{_fmt(summary['requests_per_s'])} req/s, {_fmt(summary['tokens_per_s'])} tok/s"),
        ("goodput (SLOs met)", f"{_fmt(summary['goodput_requests_per_s'])} req/s"),
    ]
    for key, label in (("ttft_s", "TTFT"), ("tbt_s", "TBT (mean per request)"), ("e2e_s", "end-to-end")):
        p = summary[key]
        rows.append((label, f"p50 {_fmt(p['p50'], ' s')}  p90 {_fmt(p['p90'], ' s')}  p99 {_fmt(p['p99'], ' s')}"))
    rows += [
        ("prefix-cache hit rate", f"{summary['cache_hit_rate']:.1%}"),
        ("preemptions / migrations", f"{summary['preemptions']} / {summary['migrations']}"),
        ("simulated time", f"{_fmt(summary['makespan_s'], ' s')}  (wall {summary['wall_s']:.2f} s)"),
    ]
    if summary.get("energy_j"):
        rows.append(("energy", f"{summary['energy_j']:.4g} J (active {summary['energy_active_j']:.4g} J, "
                               f"idle {summary['energy_idle_j']:.4g} J)"))
    accuracy = summary.get("accuracy_mean")
    if accuracy is not None and accuracy == accuracy:  # not NaN: model variants ran
        rows.append(("mean accuracy", f"{accuracy:.2%}"))
    if "cost_usd" in summary:
        rows.append(("serverless cost", f"${summary['cost_usd']:.6g}: {summary['invocations']} invocations, "
                                        f"{summary['cold_starts']} cold starts, {summary['padding_tokens']} padding tokens"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def run(args: argparse.Namespace) -> int:
    from llmsched.sim.results import check_out_dir
    from llmsched.sim.run import run as run_sim

    cfg = build_config(args)
    if args.out:
        check_out_dir(Path(args.out), args.force)  # before the run, not after it
    result = run_sim(cfg, progress=not args.no_progress, source=args.config or "command line")
    print_summary(result.summary)
    if args.out:
        out = result.save(Path(args.out), force=args.force)
        print(f"wrote {out}/{{requests,service,timeline}}.parquet and summary.json")
    return 0
