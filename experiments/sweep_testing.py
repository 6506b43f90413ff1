"""A cheap, deterministic stand-in for the simulator, for testing and timing the sweep machinery.

`synthetic_point(config)` derives its "metrics" from the config alone (a seeded numpy Generator and
closed-form M/M/1 numbers), so any backend must return identical values. It lives in the package,
not under tests/, so that Dask and joblib workers can import it. Test hooks (environment variables):
  LLMSCHED_SWEEP_TEST_CRASH_AFTER=k   kill this process (os._exit) when the (k+1)-th point starts
  LLMSCHED_SWEEP_TEST_FAIL_RATE=x     raise ValueError for points whose workload.rate equals x
`workload.params.synthetic_work_ms` burns that much CPU per point (for throughput measurements).
Nothing here is a model of LLM serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import numpy as np

_calls = 0


def _burn(ms: float) -> None:
    end = time.process_time() + ms / 1000.0
    x = np.arange(2048, dtype=np.float64)
    while time.process_time() < end:
        x = np.sqrt(x * x + 1.0)


def synthetic_point(config: dict[str, Any]) -> dict[str, Any]:
    """Metrics of an M/M/1 queue with arrival rate `workload.rate` (default 1/s) and service rate
    `token_budget/256` per second of instance 0, plus a seeded noise term; deterministic in config."""
    global _calls
    crash_after = os.environ.get("LLMSCHED_SWEEP_TEST_CRASH_AFTER")
    if crash_after is not None and _calls >= int(crash_after):
        os._exit(17)
    _calls += 1
    wl = config.get("workload", {})
    lam = wl.get("rate") or 1.0
    fail_rate = os.environ.get("LLMSCHED_SWEEP_TEST_FAIL_RATE")
    if fail_rate is not None and float(fail_rate) == lam:
        raise ValueError(f"injected failure at rate {lam}")
    _burn(float((wl.get("params") or {}).get("synthetic_work_ms", 0.0)))
    inst = config["cluster"]["instances"][0]
    mu = inst["token_budget"] / 256.0
    rho = lam / mu
    # Seed from the config itself so that the result depends on nothing but the config.
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).digest()
    rng = np.random.default_rng([config.get("seed", 0), int.from_bytes(digest[:8], "little")])
    noise = rng.standard_normal(3)
    # M/M/1 sojourn time 1/(mu - lambda) when stable (Kleinrock, Queueing Systems Vol. 1, eq. 3.26).
    sojourn = 1.0 / (mu - lam) if rho < 1 else float("inf")
    return {
        "rho": rho,
        "e2e_s": {"mean": sojourn, "noise": float(noise[0])},
        "requests_per_s": min(lam, mu),
        "policy": inst["batching"],
        "draws": [float(noise[1]), float(noise[2])],
        "wall_s": 0.123,  # must never reach the summary table
    }


def synthetic_sweep_toml(name: str = "synthetic", rates: tuple[float, ...] = (0.5, 1.0, 1.5),
                         seeds: tuple[int, ...] = (0, 1), policies: tuple[str, ...] = ("sarathi", "vllm"),
                         work_ms: float = 0.0) -> str:
    """A sweep file over the synthetic point: policies x rates x seeds (for tests and timings)."""
    def lst(xs):
        return "[" + ", ".join(repr(x) if not isinstance(x, str) else f'"{x}"' for x in xs) + "]"

    return (
        f'[sweep]\nname = "{name}"\npoint = "llmsched.experiments.sweep_testing:synthetic_point"\n\n'
        f"[base]\nseed = 0\n\n[base.workload]\nsource = \"synthetic\"\n\n"
        f"[base.workload.params]\nsynthetic_work_ms = {float(work_ms)!r}\n\n"
        f'[grid]\n"cluster.instances.0.batching" = {lst(policies)}\n'
        f'"workload.rate" = {lst(rates)}\nseed = {lst(seeds)}\n'
    )
