"""Engine speed and scale: the Azure conv 2023 trace and a 1M-request ShareGPT workload.

Measures wall time, CPU time, peak RSS and simulated requests per wall second of `llmsched.sim.run.run`,
in a fresh process per run (so peak memory is per run), and prints one JSON line per run (with
`compiled`: whether the Numba kernels ran, see `llmsched.sim.kernels`) plus the median over repeats. Not a test: results go to docs/performance.md by hand with the command.

    python -m benchmarks.engine_scale azure            # the acceptance command's workload
    python -m benchmarks.engine_scale sharegpt --requests 1000000 --instances 16 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from llmsched.sim.config import RunConfig
from llmsched.sim.run import run
from llmsched.sim import kernels
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
t0, c0 = time.perf_counter(), time.process_time()
res = run(cfg)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
s = res.summary
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "requests": s["num_requests"], "finished": s["num_finished"],
                  "sim_requests_per_wall_s": s["num_requests"] / wall, "ttft_p50_s": s["ttft_s"]["p50"],
                  "requests_per_s": s["requests_per_s"], "service_rows": len(res.service),
                  "timeline_rows": len(res.timeline), "compiled": kernels.loaded()}))
"""


def capacity_rps(model: str, gpu: str, instances: int) -> float:
    """Predicted capacity of the cluster on ShareGPT lengths (theory.capacity)."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec, WorkloadSpec
    from llmsched.sim.cost import build
    from llmsched.sim.workload import catalog
    from llmsched.theory.capacity import capacity

    spec = InstanceSpec(model=model, gpu=gpu, count=instances)
    w = catalog.load(WorkloadSpec(source="sharegpt", num_requests=30000), 0)
    return capacity(ClusterSpec(instances=(spec,)), build("roofline", model, gpu, 1), w).requests_per_s


def config(args) -> dict:
    inst = {"model": args.model, "gpu": args.gpu, "count": args.instances, "batching": "sarathi"}
    if args.workload == "azure":
        workload = {"source": "azure-conv-2023"}
    else:
        rate = args.load * capacity_rps(args.model, args.gpu, args.instances)
        workload = {"source": "sharegpt", "rate": rate, "num_requests": args.requests}
    return {"workload": workload, "cluster": {"router": "round-robin", "instances": [inst]}, "seed": args.seed}


def profile(cfg: dict) -> int:
    """One run under cProfile: the top functions by cumulative time, plus segment statistics."""
    import cProfile
    import pstats

    from llmsched.sim.config import RunConfig
    from llmsched.sim.instance import Instance
    from llmsched.sim.run import run

    segments = 0
    original = Instance.start_segment

    def counting(self, now):
        nonlocal segments
        end = original(self, now)
        segments += end is not None and end >= 0
        return end

    Instance.start_segment = counting
    prof = cProfile.Profile()
    prof.enable()
    res = run(RunConfig.from_dict(cfg))
    prof.disable()
    Instance.start_segment = original
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    iterations = int(res.timeline["iteration_s"].size)
    print(json.dumps({"requests": res.summary["num_requests"], "segments": segments,
                      "segments_per_request": segments / max(res.summary["num_requests"], 1),
                      "timeline_rows": iterations}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=["azure", "sharegpt"])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--load", type=float, default=0.9, help="fraction of predicted capacity")
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--gpu", default="a100-80gb")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", type=int, default=None, help="pin to this core with taskset")
    p.add_argument("--profile", action="store_true",
                   help="run once in this process under cProfile and print where the time goes")
    args = p.parse_args(argv)
    cfg = config(args)
    if args.profile:
        return profile(cfg)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                      "config": cfg}))
    runs = []
    for _ in range(args.repeat):
        cmd = [sys.executable, "-c", CHILD, json.dumps(cfg)]
        if args.cpu is not None:
            cmd = ["taskset", "-c", str(args.cpu), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        runs.append(json.loads(out))
        print(out, flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mb", "sim_requests_per_wall_s")}
    print(json.dumps({"median": med, "runs": len(runs)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
