"""The notebook API: thin library functions over the layers below, one per user task.

`simulate` runs a workload through a cluster (names or objects); `check` runs a registered checker
on a run (in memory or saved) or a plan directory; `place` is the whole placement workflow of
`llmsched place` (solve, write the plan, certify it with its max-flow/min-cut certificate,
optionally simulate it); `reproduce` runs registered reproductions. Each delegates to the module
that owns the work; nothing is computed here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, WorkloadSpec, freeze_params
from llmsched.sim.errors import InputError
from llmsched.sim.results import RunResult
from llmsched.sim.workload.core import Workload

if TYPE_CHECKING:
    from llmsched.experiments.placement import PlacementOutcome

__all__ = ["check", "place", "reproduce", "simulate"]


def simulate(workload: Workload | WorkloadSpec | str, cluster: ClusterSpec | InstanceSpec | None = None, *,
             batching: str | None = None, router: str | None = None,
             batching_params: Mapping[str, Any] | None = None, router_params: Mapping[str, Any] | None = None,
             seed: int = 0, rate: float | None = None, duration_s: float | None = None,
             num_requests: int | None = None, **options: Any) -> RunResult:
    """Simulate `workload` on `cluster` and return a `RunResult` (`.requests`, `.service`,
    `.timeline` DataFrames, `.summary` dict, `.save(dir)`).

    workload: a `Workload`, a `WorkloadSpec`, or a catalogue name (`llmsched workloads`), which is
        loaded with `seed` and cut/rescaled by `rate`, `duration_s`, `num_requests`.
    cluster: a `ClusterSpec`, an `InstanceSpec` (one pool; `count` instances), or None for the
        default (one llama-2-7b on an A100-80GB).
    batching / router: registered policy names (`llmsched policies`) that replace the cluster's, with
        their constructor parameters in `batching_params` / `router_params`.
    options: passed on to `llmsched.sim.run.simulate` (`mode`, `cost_models`, `input_weight`,
        `output_weight`, `max_sim_time_s`, `record_service`, `progress`).

    The run's resolved config is kept in `summary["config"]`, so checkers read the KV capacity and
    the service weights from it as they do for `llmsched simulate --out`.
    """
    from llmsched.sim.run import simulate as run_simulation
    from llmsched.sim.workload import catalog

    if cluster is None:
        cluster = ClusterSpec()
    elif isinstance(cluster, InstanceSpec):
        cluster = ClusterSpec(instances=(cluster,))
    elif not isinstance(cluster, ClusterSpec):
        raise InputError("llmsched.simulate", "cluster", f"got {type(cluster).__name__}",
                         "pass a ClusterSpec or an InstanceSpec")
    if batching is not None or batching_params is not None:
        cluster = replace(cluster, instances=tuple(
            replace(spec, batching=batching or spec.batching,
                    batching_params=freeze_params(batching_params) if batching_params is not None
                    else spec.batching_params)
            for spec in cluster.instances))
    if router is not None or router_params is not None:
        cluster = replace(cluster, router=router or cluster.router,
                          router_params=freeze_params(router_params) if router_params is not None
                          else cluster.router_params)
    window = {"rate": rate, "duration_s": duration_s, "num_requests": num_requests}
    spec: WorkloadSpec | None = None
    if isinstance(workload, str):
        spec = WorkloadSpec(source=workload, **window)
    elif isinstance(workload, WorkloadSpec):
        spec = replace(workload, **{k: v for k, v in window.items() if v is not None})
    elif not isinstance(workload, Workload):
        raise InputError("llmsched.simulate", "workload", f"got {type(workload).__name__}",
                         "pass a Workload, a WorkloadSpec or a catalogue name (`llmsched workloads`)")
    elif any(v is not None for v in window.values()):
        raise InputError("llmsched.simulate", "rate/duration_s/num_requests",
                         "apply to a catalogue name or WorkloadSpec only", "cut the Workload yourself")
    config = RunConfig(workload=spec or WorkloadSpec(source=f"<{workload.name}>"), cluster=cluster,
                       seed=seed, **{k: options[k] for k in ("mode", "input_weight", "output_weight",
                                                             "record_service", "max_sim_time_s")
                                     if k in options})
    if spec is not None:
        config.validate("llmsched.simulate")
        wl = catalog.load(spec, seed)
    else:
        wl = workload
    plain = config.to_dict()
    if spec is None:
        plain["workload"] = {"source": f"<in-memory Workload {wl.name!r}>"}
    return run_simulation(wl, cluster, seed=seed, config=plain, source="llmsched.simulate", **options)


def check(name: str, run: RunResult | str | Path, **options: Any) -> Verdict:
    """Run the checker `name` (`llmsched check --list`) on a `RunResult`, a run directory, or a
    placement plan directory; returns its `Verdict` (`.ok`, `.witness`)."""
    from llmsched.proofs_check.registry import checkers, run_checker

    entries = checkers()
    if name not in entries:
        raise InputError("llmsched.check", "name", f"unknown checker {name!r}",
                         f"use one of {', '.join(entries)}")
    if isinstance(run, RunResult):
        with tempfile.TemporaryDirectory(prefix="llmsched-check-") as tmp:
            run.save(tmp)
            return run_checker(name, Path(tmp), **options)
    return run_checker(name, Path(run), **options)


def place(cluster: Any, model: str = "llama-2-70b", method: str = "milp", **options: Any) -> PlacementOutcome:
    """Place `model`'s layers on a heterogeneous `cluster` and certify the plan (the library form of
    `llmsched place`); see `llmsched.experiments.placement.place` for every option."""
    from llmsched.experiments.placement import place as run_placement

    return run_placement(cluster, model, method, **options)


def reproduce(name: str | None = None, *, out: str | Path = "results", quick: bool = True,
              seed: int = 0, jobs: int = 1, progress: bool = False) -> list[Any]:
    """Run one registered reproduction (or all, with name=None) into `out`; returns run records."""
    from llmsched.experiments.reproduce import run_reproductions, select

    repros = select([] if name is None else [name], run_all=name is None)
    return run_reproductions(repros, out, quick=quick, seed=seed, jobs=jobs, progress=progress)
