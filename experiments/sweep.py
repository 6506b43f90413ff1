"""Resumable parameter sweeps: a TOML grid over a base `RunConfig`, run with joblib or on Dask.

Owns the sweep file schema, grid expansion, the point key (hash of the resolved config), the
per-point result files, resumption and the summary table. It never edits configs semantics (that is
`llmsched.sim.config`) and never simulates by itself: each point calls a point function (`module:function`,
default `simulate_point`, which runs `llmsched.sim.run.run`). Workers only compute; the client process alone
writes files, so on a multi-node Dask cluster the output directory need only exist on the client.

Layout of an output directory:
  sweep.json            manifest: the sweep file's contents, point function, grid keys
  points/<key>.json     one completed point: resolved config, metrics, timing (atomic write)
  failed/<key>.json     last error of a point that raised (retried on the next start)
  summary.parquet/.csv  one row per completed point, in grid order: config.* columns + metrics
  timings.parquet/.csv  wall time, host and pid per point (kept out of the summary so that local
                        and Dask runs give identical summary tables)
  plots/                figures drawn from the summary table (`llmsched.experiments.sweep_plot`, `--plot`)
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import itertools
import json
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.experiments.tables import flatten, write_table
from llmsched.sim import atomic
from llmsched.sim.config import read_toml
from llmsched.sim.errors import InputError

DEFAULT_POINT = "llmsched.experiments.sweep:simulate_point"
# Keys of a point function's result that describe the run, not its outcome: kept in the point file
# but never in the summary table (wall time differs between backends; see module docstring).
NON_RESULT_KEYS = ("config", "wall_s", "loop_s", "llmsched_version")
_TOP_KEYS = ("sweep", "base", "grid")
DASK_CONNECT_TIMEOUT = "20s"  # how long `--dask ADDRESS` waits for the scheduler (our choice)
_SWEEP_KEYS = ("name", "point", "metrics")


# ----------------------------------------------------------------------------------------------
# spec parsing and expansion


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. `grid` keeps the file's key order; values are the file's lists."""

    source: str
    name: str
    base: dict[str, Any]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    point: str = DEFAULT_POINT
    metrics: tuple[str, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SweepPoint:
    index: int
    key: str
    params: dict[str, Any]  # grid key -> value for this point
    config: dict[str, Any]  # resolved RunConfig as a plain dict


def stable_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def point_key(config: Mapping[str, Any]) -> str:
    """The point's identity: sha256 of its resolved config as stable JSON (first 16 hex digits)."""
    return hashlib.sha256(stable_json(config).encode()).hexdigest()[:16]


def _resolve(cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    from llmsched.sim.config import RunConfig

    return RunConfig.from_dict(cfg, source).to_dict()


def _flatten_grid(grid: Mapping[str, Any], source: str, prefix: str = "") -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = []
    for k, v in grid.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            if not v:
                raise InputError(source, f"grid.{key}", "is an empty table", "give a list of values")
            out.extend(_flatten_grid(v, source, key + "."))
        elif isinstance(v, list):
            if not v:
                raise InputError(source, f"grid.{key}", "has no values", "give at least one value")
            out.append((key, tuple(v)))
        else:
            raise InputError(source, f"grid.{key}", f"must be a list of values, got {v!r}",
                             f"write {key} = [{v!r}]")
    return out


def _set_dotted(d: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set `a.b.0.c` in a resolved config dict; every step but the last must exist
    (keys under a `*params` table are free-form)."""
    parts = key.split(".")
    node: Any = d
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        parent_is_params = depth > 0 and parts[depth - 1].endswith("params")
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(source, f"grid.{key}", f"{where!r}: index out of range (list has {len(node)} entries)",
                                 "index an existing entry, or add it to [base]")
            idx = int(part)
            if last:
                node[idx] = copy.deepcopy(value)
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if part not in node and not parent_is_params:
                raise InputError(source, f"grid.{key}", f"unknown config key {where!r}",
                                 f"use one of: {', '.join(sorted(node))}")
            if last:
                node[part] = copy.deepcopy(value)
            else:
                node = node.setdefault(part, {})
        else:
            raise InputError(source, f"grid.{key}", f"{where!r} is a value, not a table")


def parse_spec(data: Mapping[str, Any], source: str = "sweep", *, allow_import: bool = False) -> SweepSpec:
    """Validate a sweep dict (the TOML's contents); raises `InputError` naming the field.

    `point` must be a registered point function (`registered_points()`) unless `allow_import`:
    any other "module:function" is imported, which runs that module's code.
    """
    if not isinstance(data, Mapping):
        raise InputError(source, "", "must be a TOML table")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise InputError(source, unknown[0], "unknown top-level key",
                         "use [sweep] (name, point, metrics), [base] (a RunConfig) and [grid]")
    meta = data.get("sweep", {})
    if not isinstance(meta, Mapping):
        raise InputError(source, "sweep", "must be a table")
    for k in meta:
        if k not in _SWEEP_KEYS:
            raise InputError(source, f"sweep.{k}", "unknown key", f"use one of: {', '.join(_SWEEP_KEYS)}")
    name = meta.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise InputError(source, "sweep.name", "must be a non-empty string")
    point = meta.get("point", DEFAULT_POINT)
    if not isinstance(point, str):
        raise InputError(source, "sweep.point", "must be a 'module:function' string")
    point = check_point(point, source, allow_import=allow_import)
    resolve_point_fn(point, source)
    metrics = meta.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise InputError(source, "sweep.metrics", "must be a non-empty list of metric names",
                             'e.g. metrics = ["ttft_s.p50", "output_tokens_per_s"]')
        metrics = tuple(metrics)
    base = data.get("base", {})
    if not isinstance(base, Mapping):
        raise InputError(source, "base", "must be a table holding a RunConfig")
    base_resolved = _resolve(base, f"{source} [base]")
    if "grid" not in data:
        raise InputError(source, "grid", "missing", "add a [grid] table, e.g. seed = [0, 1]")
    grid_raw = data["grid"]
    if not isinstance(grid_raw, Mapping):
        raise InputError(source, "grid", "must be a table of key = [values]")
    grid = tuple(_flatten_grid(grid_raw, source))
    if not grid:
        raise InputError(source, "grid", "is empty", "add at least one key = [values]")
    return SweepSpec(source, name, base_resolved, grid, point, metrics, raw=dict(data))


def load_spec(path: str | Path, *, allow_import: bool = False) -> SweepSpec:
    return parse_spec(read_toml(path, "sweep file"), str(path), allow_import=allow_import)


def expand(spec: SweepSpec) -> list[SweepPoint]:
    """The Cartesian product of the grid, in file order (last key varies fastest), validated.

    Keys are applied in file order, so a whole table or list (e.g. `cluster.instances`) set by one
    key can be refined by a later key (`cluster.instances.0.batching`)."""
    keys = [k for k, _ in spec.grid]
    points: list[SweepPoint] = []
    seen: dict[str, int] = {}
    for index, values in enumerate(itertools.product(*(v for _, v in spec.grid))):
        params = dict(zip(keys, values))
        label = ", ".join(f"{k}={v!r}" for k, v in params.items())
        where = f"{spec.source} [grid point {index}: {label}]"
        cfg = copy.deepcopy(spec.base)
        for k, v in params.items():
            _set_dotted(cfg, k, v, spec.source)
            if isinstance(v, (Mapping, list)):
                cfg = _resolve(cfg, where)  # fill defaults inside a table/list so later keys can index it
        resolved = _resolve(cfg, where)
        key = point_key(resolved)
        if key in seen:
            raise InputError(spec.source, "grid", f"points {seen[key]} and {index} ({label}) resolve to the same config",
                             "remove the duplicate values")
        seen[key] = index
        points.append(SweepPoint(index, key, params, resolved))
    return points


# ----------------------------------------------------------------------------------------------
# point functions


# Point functions a sweep file may name without --allow-import: "module:function" -> short name.
# Plugins add theirs through the entry-point group `llmsched.sweep_points` (name = "module:function").
BUILTIN_POINTS = {
    DEFAULT_POINT: "simulate",
    "llmsched.experiments.sweep_testing:synthetic_point": "synthetic",
}


def registered_points() -> dict[str, str]:
    """Every registered point function: "module:function" -> short name (built-ins and plugins)."""
    from llmsched.sim.registry import entry_point_values

    points = dict(BUILTIN_POINTS)
    for name, ref in entry_point_values("llmsched.sweep_points").items():
        points.setdefault(ref, name)
    return points


def check_point(ref: str, source: str = "sweep", *, allow_import: bool = False) -> str:
    """The "module:function" a sweep's `point` names (a short name is expanded). Anything not
    registered is refused unless `allow_import`, because resolving it imports (runs) its module."""
    points = registered_points()
    by_name = {name: full for full, name in points.items()}
    if ref in by_name:
        return by_name[ref]
    if ref in points or allow_import:
        return ref
    raise InputError(source, "sweep.point", f"{ref!r} is not a registered point function (importing it runs "
                     "its module's code)", f"use one of {sorted(by_name)} or pass --allow-import")


def resolve_point_fn(ref: str, source: str = "sweep") -> Callable[[dict[str, Any]], Mapping[str, Any]]:
    """`"package.module:function"` -> the function (importable on every worker)."""
    mod_name, _, fn_name = ref.partition(":")
    if not mod_name or not fn_name:
        raise InputError(source, "sweep.point", f"{ref!r} is not 'module:function'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputError(source, "sweep.point", f"cannot import {mod_name!r} ({exc})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise InputError(source, "sweep.point", f"{mod_name!r} has no function {fn_name!r}")
    return fn


def simulate_point(config: dict[str, Any]) -> dict[str, Any]:
    """The default point: run the simulator on the config and return its summary (see run-format.md)."""
    from llmsched.sim.config import RunConfig
    from llmsched.sim.run import run

    result = run(RunConfig.from_dict(config, "sweep point"))
    return dict(result.summary)


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item) and getattr(v, "shape", None) == ():
        return v.item()
    return v


def execute_point(point_ref: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one point where it lands (local process or Dask worker); never raises.

    Returns {"ok": True, "metrics": {...}, "wall_s", "host", "pid"} or {"ok": False, "error": text}.
    """
    t0 = time.perf_counter()
    try:
        raw = resolve_point_fn(point_ref)(config)
        flat = flatten(dict(raw))
        metrics = {k: _plain(v) for k, v in flat.items() if k.split(".")[0] not in NON_RESULT_KEYS}
        return {"ok": True, "metrics": metrics, "wall_s": time.perf_counter() - t0,
                "host": socket.gethostname(), "pid": os.getpid()}
    except Exception:  # noqa: BLE001 - a failing sweep point is recorded with its traceback; the sweep goes on
        return {"ok": False, "error": traceback.format_exc(), "wall_s": time.perf_counter() - t0,
                "host": socket.gethostname(), "pid": os.getpid()}


def _execute_indexed(point_ref: str, index: int, config: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return index, execute_point(point_ref, config)


# ----------------------------------------------------------------------------------------------
# result files


def _points_dir(out: Path) -> Path:
    return out / "points"


def completed_points(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """key -> point record for every readable, complete point file (temp files are ignored)."""
    found: dict[str, dict[str, Any]] = {}
    pdir = _points_dir(Path(out_dir))
    if not pdir.is_dir():
        return found
    for f in sorted(pdir.iterdir()):
        if atomic.is_temp_name(f.name) or f.suffix != ".json":
            continue
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # unreadable: treated as not done, recomputed
        if isinstance(rec, dict) and rec.get("key") == f.stem and "metrics" in rec:
            found[f.stem] = rec
    return found


def _write_manifest(out: Path, spec: SweepSpec) -> None:
    manifest_path = out / "sweep.json"
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = {}
        if old.get("point") not in (None, spec.point):
            raise InputError(str(out), "sweep.point",
                             f"this output directory holds results of point function {old['point']!r}",
                             "use another --out directory")
    atomic.write_json(manifest_path, {
        "name": spec.name, "source": spec.source, "point": spec.point,
        "grid_keys": [k for k, _ in spec.grid], "metrics": list(spec.metrics or []),
        "spec": spec.raw,
    })


@dataclass
class SweepOutcome:
    out_dir: Path
    total: int
    skipped: int  # completed before this start
    ran: int  # completed in this start
    failed: dict[str, str]  # key -> error text
    summary: pd.DataFrame
    backend: str

    @property
    def ok(self) -> bool:
        return not self.failed and len(self.summary) == self.total


def _record(point: SweepPoint, res: dict[str, Any], point_ref: str) -> dict[str, Any]:
    return {"key": point.key, "params": point.params, "config": point.config, "point": point_ref,
            "metrics": res["metrics"], "wall_s": res["wall_s"], "host": res["host"], "pid": res["pid"]}


def summary_frame(points: Sequence[SweepPoint], done: Mapping[str, Mapping[str, Any]],
                  metrics: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, timings) for the completed points, in grid order. The summary holds no timing."""
    rows, timing_rows = [], []
    for p in points:
        rec = done.get(p.key)
        if rec is None:
            continue
        row: dict[str, Any] = {"point": p.key, "index": p.index}
        row.update(flatten(p.config, "config"))
        m = rec["metrics"]
        if metrics:
            m = {k: v for k, v in m.items() if any(k == s or k.startswith(s + ".") for s in metrics)}
        row.update(sorted(m.items()))  # sorted: same columns whether read back from disk or fresh
        rows.append(row)
        timing_rows.append({"point": p.key, "index": p.index, "wall_s": rec.get("wall_s"),
                            "host": rec.get("host"), "pid": rec.get("pid")})
    return pd.DataFrame(rows), pd.DataFrame(timing_rows)


def check_plot_columns(spec: SweepSpec, plots: Sequence[tuple[str, str, str | None]]) -> None:
    """Check `--plot X:Y[:HUE]` names before the sweep runs (not after it): config columns come
    from the grid, metric columns from the run summary's keys (default point function only; a
    custom point function's metrics are unknown until it runs)."""
    if not plots:
        return
    from llmsched.experiments.sweep_plot import resolve_column
    from llmsched.sim.results import summary_metric_names

    if spec.point != DEFAULT_POINT:
        return
    cols: dict[str, None] = {"point": None, "index": None}
    for p in expand(spec):
        cols.update(dict.fromkeys(flatten(p.config, "config")))
    metrics = [m for m in summary_metric_names() if m.split(".")[0] not in NON_RESULT_KEYS]
    if spec.metrics:
        metrics = [m for m in metrics if any(m == s or m.startswith(s + ".") for s in spec.metrics)]
    cols.update(dict.fromkeys(metrics))
    frame = pd.DataFrame(columns=list(cols))
    for x, y, hue in plots:
        for name, what in ((x, "X"), (y, "Y"), (hue, "HUE")):
            if name is None or name.split(".")[0] in ("router", "policy_params"):
                continue  # nested records whose keys depend on the policies
            resolve_column(frame, name, what)


# ----------------------------------------------------------------------------------------------
# running


def _local_results(todo: list[SweepPoint], point_ref: str, jobs: int) -> Iterator[tuple[int, dict[str, Any]]]:
    if jobs == 1:
        for p in todo:
            yield p.index, execute_point(point_ref, p.config)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)
    yield from par(delayed(_execute_indexed)(point_ref, p.index, p.config) for p in todo)


def _dask_results(todo: list[SweepPoint], point_ref: str, client: Any,
                  window: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Submit points to Dask, at most `window` in flight (default 4 per worker thread, >= 16), so
    that a sweep of 10^5 points does not put 10^5 tasks on the scheduler at once. A task that Dask
    itself gives up on (e.g. a point that kills its worker 3 times: KilledWorker) is a failed point."""
    import uuid

    from distributed import as_completed

    if window is None:
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        window = max(16, 4 * threads)
    tag = uuid.uuid4().hex[:8]
    pending = iter(todo)
    index_of: dict[str, int] = {}

    def submit(p: SweepPoint):
        fut = client.submit(_execute_indexed, point_ref, p.index, p.config,
                            key=f"llmsched-point-{p.key}-{tag}", pure=False)
        index_of[fut.key] = p.index
        return fut

    queue = as_completed([submit(p) for p in itertools.islice(pending, window)])
    for fut in queue:
        try:
            yield fut.result()
        except Exception as exc:  # noqa: BLE001 - the task never returned (worker lost too often, cancelled, ...)
            yield index_of[fut.key], {"ok": False, "error": f"dask: {type(exc).__name__}: {exc}\n",
                                      "wall_s": float("nan"), "host": "", "pid": -1}
        finally:
            fut.release()
        nxt = next(pending, None)
        if nxt is not None:
            queue.add(submit(nxt))


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, jobs: int = 1, dask_address: str | None = None,
              dask_local: int | None = None, progress: bool = True, rerun: bool = False,
              dask_window: int | None = None) -> SweepOutcome:
    """Run every point of `spec` not already in `out_dir`; write the summary; return the outcome.

    Backends: joblib with `jobs` processes (1 = in this process), a Dask scheduler at `dask_address`,
    or a fresh `LocalCluster` of `dask_local` single-threaded worker processes on loopback.
    `dask_window` caps the points in flight on Dask (default: 4 per worker thread, at least 16).
    """

    if jobs < 1:
        raise InputError("--jobs", "jobs", f"must be >= 1, got {jobs}")
    if dask_local is not None and dask_local < 1:
        raise InputError("--dask-local", "N", f"must be >= 1 worker, got {dask_local}")
    out = Path(out_dir)
    points = expand(spec)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write_manifest(out, spec)
        return _run_in(spec, out, points, jobs, dask_address, dask_local, progress, rerun, dask_window)
    except BaseException as exc:
        # A failed start (bad manifest, unreachable scheduler) leaves nothing in a new directory;
        # once a point has completed, the directory is kept so that the next start resumes.
        if created and not completed_points(out) and not isinstance(exc, KeyboardInterrupt):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run_in(spec: SweepSpec, out: Path, points: list[SweepPoint], jobs: int, dask_address: str | None,
            dask_local: int | None, progress: bool, rerun: bool, dask_window: int | None) -> SweepOutcome:
    from tqdm import tqdm

    by_index = {p.index: p for p in points}
    if rerun:  # forget every earlier result, so that a rerun interrupted midway resumes as a rerun
        for sub in (_points_dir(out), out / "failed"):
            if sub.is_dir():
                shutil.rmtree(sub)
    done = completed_points(out)
    wanted = {p.key for p in points}
    skipped = len(wanted & set(done))
    todo = [p for p in points if p.key not in done]
    failed: dict[str, str] = {}
    ran = 0

    cluster = client = None
    backend = f"joblib({jobs})"
    try:
        if todo and (dask_address or dask_local):
            try:
                from distributed import Client, LocalCluster
            except ImportError:
                raise InputError("llmsched sweep", "--dask", "needs dask.distributed, which is not installed",
                                 "pip install 'llmsched[dask]'") from None

            if dask_local:
                backend = f"dask-local({dask_local})"
                cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
                client = Client(cluster)
            else:
                backend = f"dask({dask_address})"
                try:
                    client = Client(dask_address, timeout=DASK_CONNECT_TIMEOUT)
                except (OSError, ValueError, TypeError) as exc:
                    raise InputError("--dask", str(dask_address), f"cannot reach the scheduler ({exc})",
                                     "start `dask scheduler` and pass its tcp://HOST:PORT") from None
            results = _dask_results(todo, spec.point, client, dask_window)
        else:
            jobs = max(1, min(jobs, len(todo)))  # no idle workers for a short remainder
            backend = f"joblib({jobs})"
            results = _local_results(todo, spec.point, jobs)
        bar = tqdm(total=len(points), initial=skipped, desc=spec.name, unit="pt", disable=not progress,
                   dynamic_ncols=True, smoothing=0.1)
        try:
            for index, res in results:
                p = by_index[index]
                if res["ok"]:
                    rec = _record(p, res, spec.point)
                    atomic.write_json(_points_dir(out) / f"{p.key}.json", rec)
                    done[p.key] = rec
                    fail_file = out / "failed" / f"{p.key}.json"
                    if fail_file.exists():
                        fail_file.unlink()
                    ran += 1
                else:
                    failed[p.key] = res["error"]
                    atomic.write_json(out / "failed" / f"{p.key}.json",
                                      {"key": p.key, "params": p.params, "error": res["error"]})
                    bar.write(f"point {p.index} ({p.key}) failed: {res['error'].strip().splitlines()[-1]}")
                bar.update(1)
        finally:
            bar.close()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    summary, timings = summary_frame(points, done, spec.metrics)
    if len(summary):
        write_table(summary, out, "summary")
        write_table(timings, out, "timings")
    return SweepOutcome(out, len(points), skipped, ran, failed, summary, backend)
