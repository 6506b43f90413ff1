"""`llmsched capacity`: predicted capacity (requests/s) of an instance or P/D pool and its binding limit.

Resolves the model, GPU, cost model and workload from flags, reduces the workload to its moments
and calls `llmsched.theory.capacity.capacity`. Imports of `llmsched.sim.cost` / `llmsched.sim.workload.catalog` are lazy so
that `llmsched --help` stays fast and this command degrades clearly if a room is missing.
"""

from __future__ import annotations

import argparse
import json

from llmsched.sim.errors import InputError

HELP = "predicted capacity (requests/s) and its binding constraint for a model, GPU, workload and policy"

#: Policies that are not work-conserving in Li–Dai–Peng's sense (arXiv 2504.07347 §4, as
#: reproduced by a third party): for them the capacity is an upper bound they may not reach.
NON_WORK_CONSERVING = ("vllm", "vllm-vanilla", "faster-transformer", "fastertransformer", "ft")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="llama-2-7b", help="catalogue model name (default llama-2-7b)")
    p.add_argument("--gpu", default="a100-80gb", help="catalogue GPU name (default a100-80gb)")
    p.add_argument("--workload", default="sharegpt",
                   help="bundled workload name or trace path, or 'means:P,O' (deterministic prompt/output tokens)")
    p.add_argument("--batching", default="sarathi", help="batching policy name (affects only the work-conservation note)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    p.add_argument("--cost", default="roofline", help="cost model spec, e.g. roofline, linear:a,b,c,d, staircase:c,a,b0")
    p.add_argument("--token-budget", type=int, default=512, help="tokens per iteration (default 512)")
    p.add_argument("--max-batch-requests", type=int, default=256, help="request cap per iteration (default 256)")
    p.add_argument("--kv-capacity-tokens", type=int, default=None, help="override the catalogue KV capacity")
    p.add_argument("--instances", type=int, default=1, help="number of identical mixed instances")
    p.add_argument("--prefill-instances", type=int, default=0, help="disaggregated: prefill pool size")
    p.add_argument("--decode-instances", type=int, default=0, help="disaggregated: decode pool size")
    p.add_argument("--num-requests", type=int, default=20000, help="requests drawn to estimate length moments")
    p.add_argument("--seed", type=int, default=0, help="seed for generated workloads")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


def _stats(args):
    from llmsched.theory.workload_stats import WorkloadStats

    w = args.workload
    if w.startswith("means:"):
        parts = w.removeprefix("means:").split(",")
        try:
            p, o = (float(x) for x in parts)
        except ValueError:
            raise InputError("--workload", w, "expected means:PROMPT,OUTPUT", "e.g. means:100,101") from None
        if p < 0 or o < 1:
            raise InputError("--workload", w, "need PROMPT >= 0 and OUTPUT >= 1 tokens")
        return WorkloadStats.deterministic(p, o), f"deterministic prompt {p:g} / output {o:g} tokens"
    from llmsched.sim.config import WorkloadSpec
    from llmsched.sim.workload import catalog

    if args.num_requests < 1:
        raise InputError("--num-requests", str(args.num_requests), "must be >= 1")
    wl = catalog.load(WorkloadSpec(source=w, num_requests=args.num_requests), args.seed)
    if wl.n == 0:
        raise InputError(f"workload {w!r}", "rows", "no requests", "use a non-empty workload")
    return WorkloadStats.from_workload(wl), f"{w} ({wl.n} requests)"


def _cluster(args):
    from llmsched.sim.config import ClusterSpec, InstanceSpec

    base = dict(model=args.model, gpu=args.gpu, tp=args.tp, cost=args.cost, batching=args.batching,
                token_budget=args.token_budget, max_batch_requests=args.max_batch_requests,
                kv_capacity_tokens=args.kv_capacity_tokens)
    for name, v in (("--tp", args.tp), ("--token-budget", args.token_budget),
                    ("--max-batch-requests", args.max_batch_requests), ("--instances", args.instances)):
        if v < 1:
            raise InputError(name, str(v), "must be >= 1")
    if (args.prefill_instances > 0) != (args.decode_instances > 0):
        raise InputError("--prefill-instances/--decode-instances", "", "disaggregation needs both pools",
                         "give both --prefill-instances N and --decode-instances M, or neither")
    if args.prefill_instances > 0:
        return ClusterSpec(instances=(InstanceSpec(**base, role="prefill", count=args.prefill_instances),
                                      InstanceSpec(**base, role="decode", count=args.decode_instances)))
    return ClusterSpec(instances=(InstanceSpec(**base, count=args.instances),))


def run(args: argparse.Namespace) -> int:
    try:
        from llmsched.sim.cost import build
    except ImportError as exc:  # the cost-model room is not built yet
        raise InputError("llmsched capacity", "--cost", f"cost models unavailable ({exc})",
                         "install/build sim.cost first") from None
    from llmsched.sim.hardware import kv_bytes_per_token
    from llmsched.theory.capacity import capacity

    cluster = _cluster(args)
    stats, wdesc = _stats(args)
    cost = build(args.cost, args.model, args.gpu, args.tp)
    res = capacity(cluster, cost, stats, kv_bytes_per_token=kv_bytes_per_token(args.model))
    if args.json:
        print(json.dumps({"requests_per_s": res.requests_per_s, "binding_constraint": res.binding_constraint,
                          "details": res.details}, indent=2, default=float))
        return 0
    print(f"capacity: {res.requests_per_s:.4g} requests/s   binding: {res.binding_constraint}")
    print(f"workload: {wdesc}; mean prompt {stats.mean_prompt_tokens:.1f}, mean output "
          f"{stats.mean_output_tokens:.1f} tokens")
    for g in res.details["groups"]:
        limits = ", ".join(f"{k} {v:.4g}" for k, v in g["limits_requests_per_s"].items())
        print(f"  {g['role']} x{g['count']} ({g['model']} on {g['gpu']}, tp={g['tp']}, cost={g['cost']}): "
              f"{g['per_instance_requests_per_s']:.4g} req/s each  [{limits}]  KV from {g['kv_source']}")
        if "better_budget_tokens" in g:
            print(f"    tiling: a budget of {g['better_budget_tokens']:.0f} tokens would give "
                  f"{g['better_budget_requests_per_s']:.4g} req/s per instance")
    if "limits_requests_per_s" in res.details:
        print("  pools: " + ", ".join(f"{k} {v:.4g}" for k, v in res.details["limits_requests_per_s"].items()))
        ratio = res.details.get("pd_ratio_optimal_prefill_per_decode")
        if ratio:
            print(f"  balanced pools need {ratio:.3g} prefill instances per decode instance")
    if args.batching.lower() in NON_WORK_CONSERVING:
        print(f"note: {args.batching} is not work-conserving; this capacity is an upper bound it may not "
              "reach (Li–Dai–Peng show such policies can be unstable inside the region)")
    return 0
