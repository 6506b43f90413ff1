"""Reading a saved run into dense per-instance service grids for the fairness checkers.

Owns: loading `service.parquet` / `requests.parquet` / `timeline.parquet` / `summary.json`, and
forward-filling the sparse per-client rows onto one grid of change points per instance. Must not
decide any verdict (that is `llmsched.proofs_check.fairness`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError
from llmsched.sim.results import read_parquet, read_summary


@dataclass(frozen=True)
class SavedRun:
    """The tables of one run directory (any of them may be empty)."""

    service: pd.DataFrame
    requests: pd.DataFrame
    timeline: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"
    policy_params: dict[str, Any] = field(default_factory=dict)  # summary.json "policy_params"

    @property
    def input_weight(self) -> float:
        return float(self.config.get("input_weight", 1.0))

    @property
    def output_weight(self) -> float:
        return float(self.config.get("output_weight", 2.0))

    def instance_specs(self) -> list[dict[str, Any]]:
        """The config's instance groups expanded to one dict per instance index."""
        groups = self.config.get("cluster", {}).get("instances", [{}])
        out: list[dict[str, Any]] = []
        for g in groups:
            out.extend([g] * int(g.get("count", 1)))
        return out

    def instance_spec(self, instance: int) -> dict[str, Any]:
        """The instance's config, its `batching_params` completed with the resolved parameters
        the run recorded (defaults included), so a checker sees what the policy ran with."""
        specs = self.instance_specs()
        spec = specs[instance] if 0 <= instance < len(specs) else {}
        resolved = self.policy_params.get("batching", [])
        if 0 <= instance < len(resolved) and isinstance(resolved[instance], dict):
            params = {**(resolved[instance].get("params") or {}), **(spec.get("batching_params") or {})}
            spec = {**spec, "batching_params": params}
        return spec

    def kv_capacity_tokens(self, instance: int) -> int:
        """M: KV capacity of `instance` in tokens (timeline blocks × block size, else the config)."""
        spec = self.instance_spec(instance)
        block = int(spec.get("block_size", 16))
        tl = self.timeline
        if len(tl) and "kv_blocks_total" in tl:
            rows = tl[tl["instance"] == instance]
            if len(rows):
                return int(rows["kv_blocks_total"].max()) * block
        if spec.get("kv_capacity_tokens") is not None:
            return int(spec["kv_capacity_tokens"])
        raise InputError(self.path, "kv_capacity_tokens", "cannot find the KV capacity M of instance "
                         f"{instance}", "pass it as -o M=<tokens>")

    def max_input_tokens(self) -> int:
        """L_input: the longest prompt in the run."""
        if len(self.requests) == 0:
            return 0
        return int(self.requests["prompt_tokens"].max())


def load_run(path: str | Path) -> SavedRun:
    """Read a run directory written by `RunResult.save` (see docs/run-format.md)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(str(p), "PATH", "is not a run directory", "pass a directory written by simulate")

    def table(name: str, required: bool) -> pd.DataFrame:
        f = p / name
        if not f.exists():
            if required:
                raise InputError(str(p), name, "missing", "re-run `llmsched simulate --out DIR`")
            return pd.DataFrame()
        return read_parquet(f)

    config: dict[str, Any] = {}
    policy_params: dict[str, Any] = {}
    summary = p / "summary.json"
    if summary.exists():
        data = read_summary(summary)
        config = data.get("config", {}) or {}
        policy_params = data.get("policy_params", {}) or {}
    return SavedRun(table("service.parquet", True), table("requests.parquet", False),
                    table("timeline.parquet", False), config, str(p), policy_params)


@dataclass(frozen=True)
class ServiceGrid:
    """One instance's per-client counters on its change points (rows) × clients (columns).

    Row k holds the state after every event at times[k] (after the last `seq` at that time when
    `collapse_time`, else after change point seq[k]). inputs/cached/outputs are cumulative tokens;
    waiting > 0 on row k means the client is backlogged on [times[k], times[k+1]).
    """

    instance: int
    times: np.ndarray
    seqs: np.ndarray
    clients: np.ndarray
    inputs: np.ndarray
    cached: np.ndarray
    outputs: np.ndarray
    waiting: np.ndarray
    running: np.ndarray

    @property
    def n(self) -> int:
        return len(self.times)

    def column(self, client: int) -> int:
        return int(np.searchsorted(self.clients, client))


def instance_ids(service: pd.DataFrame) -> list[int]:
    return sorted(int(i) for i in service["instance"].unique()) if len(service) else []


def service_grid(service: pd.DataFrame, instance: int, collapse_time: bool = True) -> ServiceGrid:
    """Forward-fill the sparse service rows of `instance` onto a dense grid."""
    df = service[service["instance"] == instance]
    need = {"time_s", "seq", "client", "input_tokens", "cached_input_tokens", "output_tokens",
            "waiting", "running"}
    missing = need - set(df.columns)
    if missing:
        raise InputError("service.parquet", ",".join(sorted(missing)), "missing columns",
                         "write the run with the current simulator (docs/run-format.md)")
    seq = df["seq"].to_numpy(np.int64)
    time = df["time_s"].to_numpy(np.float64)
    cli = df["client"].to_numpy(np.int64)
    order = np.lexsort((cli, seq))  # seq order; within a seq, by client
    seq, time, cli = seq[order], time[order], cli[order]
    key = time if collapse_time else seq
    rows, row_of = np.unique(key, return_inverse=True)
    clients = np.unique(cli)
    col_of = np.searchsorted(clients, cli)
    n, c = len(rows), len(clients)
    # the last record of each (row, client) wins: later seq overwrite earlier ones
    last = np.full((n, c), -1, dtype=np.int64)
    np.maximum.at(last, (row_of, col_of), np.arange(len(order)))
    # forward fill: index of the latest record at or before each row, per client
    filled = np.maximum.accumulate(last, axis=0)

    def dense(col: str) -> np.ndarray:
        vals = df[col].to_numpy(np.float64)[order]
        out = np.where(filled >= 0, vals[np.maximum(filled, 0)], 0.0)
        return out

    if collapse_time:
        times = rows.astype(np.float64)
        seqs = np.zeros(n, np.int64)
        np.maximum.at(seqs, row_of, seq)
    else:
        seqs = rows.astype(np.int64)
        times = np.zeros(n, np.float64)
        np.maximum.at(times, row_of, time)
    return ServiceGrid(instance, times, seqs, clients, dense("input_tokens"),
                       dense("cached_input_tokens"), dense("output_tokens"), dense("waiting"),
                       dense("running"))


def interleaved_samples(grid: ServiceGrid, input_weight: float, output_weight: float,
                        uncached_only: bool = False) -> np.ndarray:
    """X sampled before and after each change point: shape (2n + 2, C).

    X(t) = w_p·I(t⁻) + w_q·O(t) makes W(t1, t2) = X(t2) − X(t1) the service in [t1, t2): prompt
    tokens charged at dispatch instants in [t1, t2) and output tokens of iterations ending in
    (t1, t2]. Row 2k = X at times[k] ("pre": inputs of the previous row), row 2k+1 = X just after
    times[k] ("post"); two padding rows repeat the last value.
    """
    inputs = grid.inputs - grid.cached if uncached_only else grid.inputs
    prev_inputs = np.vstack([np.zeros((1, inputs.shape[1])), inputs[:-1]])
    pre = input_weight * prev_inputs + output_weight * grid.outputs
    post = input_weight * inputs + output_weight * grid.outputs
    out = np.empty((2 * grid.n + 2, inputs.shape[1]))
    out[0:2 * grid.n:2] = pre
    out[1:2 * grid.n:2] = post
    out[2 * grid.n:] = post[-1] if grid.n else 0.0
    return out


def runs_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) row indices of the maximal runs of True in a 1-d mask."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)
