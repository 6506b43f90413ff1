"""The reproduction runner: run registered reproductions and write their results directories.

For each reproduction NAME it writes, under OUT/NAME/: the reproduction's tables (Parquet + CSV),
its figures (PNG + PDF, drawn by the reproduction through `llmsched.experiments.style`), `comparisons.csv`
(paper value, ours, ratio, agreement) and `meta.json` (what ran, how, on which commit, how long).
A failing reproduction is recorded (`meta.json` status "failed", `error.txt`) and the others go on.
It does not draw figures or decide what a reproduction computes (`llmsched.experiments.reproductions.*`).
"""

from __future__ import annotations

import math
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.experiments.registry import (
    Comparison,
    ReproContext,
    Reproduction,
    ReproOutput,
    all_reproductions,
)
from llmsched.experiments.tables import write_table
from llmsched.sim import atomic
from llmsched.sim.errors import InputError

COMPARISON_COLUMNS = ["metric", "paper_value", "ours", "unit", "relation", "tolerance", "ratio",
                      "agrees", "note", "headline", "direction", "direction_met"]

REPRODUCED, DIRECTION_ONLY, NOT_REPRODUCED, NO_HEADLINE = (
    "reproduced", "direction only", "not reproduced", "no headline")


@dataclass(frozen=True)
class ReproRecord:
    name: str
    status: str  # "ok" | "failed"
    out_dir: Path
    wall_s: float
    error: str = ""


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD's commit of the checkout holding this package (suffixed "-dirty" if it has local edits)."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        try:
            x = float(x)  # numpy scalars, numeric strings
        except (TypeError, ValueError):
            return None
    x = float(x)
    return x if math.isfinite(x) else None


_THRESHOLD = re.compile(r"^\s*(>=|<=|>|<|≥|≤)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*x?\s*$")


def threshold(text: Any) -> tuple[str, float] | None:
    """A paper value written as a bound ("> 1", ">= 0.5", "< 0", "≤ 2x") -> (operator, number)."""
    if not isinstance(text, str):
        return None
    m = _THRESHOLD.match(text)
    if not m:
        return None
    op = {"≥": ">=", "≤": "<="}.get(m.group(1), m.group(1))
    return op, float(m.group(2))


def judge(c: Comparison) -> tuple[float | None, bool | None]:
    """(ours/paper, agrees) for one comparison.

    An explicit `agrees` wins. Otherwise: "ratio"/"within" with a tolerance agree when
    |ours/paper - 1| <= tolerance. "direction" with a bound as the paper value ("> 1", "<= 0")
    agrees when ours satisfies the bound; with a number, when ours has the paper's sign (a paper
    value of 0: undecided). "info", missing tolerances and non-numbers are undecided (None).
    The ratio is not reported for "direction" (the paper value carries a sign or a bound there).
    """
    p, o = _number(c.paper_value), _number(c.ours)
    ratio = o / p if p not in (None, 0.0) and o is not None and c.relation != "direction" else None
    if c.agrees is not None:
        return ratio, bool(c.agrees)
    if c.relation in ("ratio", "within") and c.tolerance is not None and ratio is not None:
        return ratio, abs(ratio - 1.0) <= c.tolerance
    if c.relation == "direction" and o is not None:
        bound = threshold(c.paper_value)
        if bound is not None:
            op, x = bound
            return None, {">": o > x, ">=": o >= x, "<": o < x, "<=": o <= x}[op]
        if p not in (None, 0.0):
            return ratio, (p > 0) == (o > 0) and o != 0.0
    return ratio, None


def comparisons_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    rows = []
    for c in comparisons:
        ratio, agrees = judge(c)
        rows.append({"metric": c.metric, "paper_value": str(c.paper_value), "ours": str(c.ours),
                     "unit": c.unit, "relation": c.relation, "tolerance": c.tolerance, "ratio": ratio,
                     "agrees": agrees, "note": c.note, "headline": bool(c.headline),
                     "direction": c.direction, "direction_met": direction_met(c)})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def direction_met(c: Comparison) -> bool | None:
    """Whether ours meets the comparison's `direction` bound (None without a bound or a number)."""
    bound = threshold(c.direction) if c.direction else None
    ours = _number(c.ours)
    if bound is None or ours is None:
        return None
    op, x = bound
    return {">": ours > x, ">=": ours >= x, "<": ours < x, "<=": ours <= x}[op]


def repro_status(comparisons: pd.DataFrame | None) -> str:
    """A reproduction's status from its headline comparisons.

    reproduced: every headline agrees (within its tolerance); direction only: every headline that
    misses meets its direction bound; not reproduced: otherwise. Without a headline: "no headline".
    """
    if comparisons is None or "headline" not in comparisons or not comparisons["headline"].any():
        return NO_HEADLINE
    heads = comparisons[comparisons["headline"].astype(bool)]
    missed = [i for i, agrees in zip(heads.index, heads["agrees"]) if not _true(agrees)]
    if not missed:
        return REPRODUCED
    if all(_true(heads.at[i, "direction_met"]) for i in missed):
        return DIRECTION_ONLY
    return NOT_REPRODUCED


def _true(x: Any) -> bool:
    """True for a true boolean (numpy's too); False for False, None and NaN (undecided)."""
    return isinstance(x, bool | np.bool_) and bool(x)


def _keep_figures(figures: Sequence[Path | str], out_dir: Path) -> list[str]:
    """Figures as paths relative to out_dir; files written elsewhere are copied in."""
    kept: list[str] = []
    for f in figures:
        f = Path(f)
        if not f.is_file():
            raise FileNotFoundError(f"the reproduction reported figure {f} but did not write it")
        try:
            rel = f.resolve().relative_to(out_dir.resolve())
        except ValueError:
            shutil.copy2(f, out_dir / f.name)
            rel = Path(f.name)
        kept.append(rel.as_posix())
    return kept


MARKER = ".llmsched-reproduction"  # marks a directory this runner created (and may clear)


def _fresh_dir(out_dir: Path, resume: bool) -> None:
    """Start from an empty out_dir, unless resuming; only directories this runner made are cleared."""
    if out_dir.exists() and not resume and (out_dir / MARKER).is_file():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).touch()
    for stale in ("error.txt", "meta.json"):
        (out_dir / stale).unlink(missing_ok=True)


def run_one(repro: Reproduction, out_root: Path, quick: bool, seed: int, command: str,
            commit: str | None, resume: bool = False) -> ReproRecord:
    """Run one reproduction into out_root/NAME; never raises for the reproduction's own errors.

    Without `resume` the directory is cleared first, so results never mix code versions; with it,
    reproductions that run sweeps skip the points already on disk.
    """
    out_dir = out_root / repro.name
    _fresh_dir(out_dir, resume)
    meta: dict[str, Any] = {
        "name": repro.name, "paper": repro.paper, "target": repro.target, "description": repro.description,
        "mode": "quick" if quick else "full", "quick": quick, "seed": seed, "command": command,
        "commit": commit, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "quick_minutes_expected": repro.quick_minutes,
    }
    t0 = time.perf_counter()
    status, error = "ok", ""
    try:
        from llmsched.experiments.style import context as plot_style

        with plot_style():  # the paper style for its figures; the caller's rcParams come back
            result = repro.run(ReproContext(out_dir=out_dir, quick=quick, seed=seed))
        if not isinstance(result, ReproOutput):
            raise TypeError(f"reproduction {repro.name!r} returned {type(result).__name__}, not ReproOutput")
        tables = {}
        for tname, df in result.tables.items():
            write_table(df, out_dir, tname)
            tables[tname] = {"parquet": f"{tname}.parquet", "csv": f"{tname}.csv", "rows": len(df)}
        comp = comparisons_frame(result.comparisons)
        write_table(comp, out_dir, "comparisons")
        meta.update(tables=tables, figures=_keep_figures(result.figures, out_dir), notes=result.notes,
                    comparisons=len(comp), reproduction_status=repro_status(comp), agree=int((comp["agrees"] == True).sum()),  # noqa: E712
                    disagree=int((comp["agrees"] == False).sum()))  # noqa: E712
    except Exception as exc:  # noqa: BLE001 - any failure of a reproduction is recorded in its run directory
        status = "failed"
        error = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        atomic.write_text(out_dir / "error.txt", traceback.format_exc())
    wall = time.perf_counter() - t0
    meta.update(status=status, error=error, wall_s=round(wall, 3))
    atomic.write_json(out_dir / "meta.json", meta)
    return ReproRecord(repro.name, status, out_dir, wall, error)


def select(names: Sequence[str], run_all: bool) -> list[Reproduction]:
    entries = all_reproductions()
    if run_all:
        return list(entries.values())
    if not names:
        raise InputError("llmsched reproduce", "NAME", "no reproduction named",
                         "give names (see --list) or --all")
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise InputError("llmsched reproduce", "NAME", f"unknown reproduction {unknown[0]!r}",
                         f"use one of: {', '.join(entries) or '(none registered)'}")
    return [entries[n] for n in dict.fromkeys(names)]


def _died(repro: Reproduction, out_root: Path, quick: bool, seed: int, command: str, commit: str | None,
          exc: BaseException) -> ReproRecord:
    """Record a reproduction whose worker process died before it could write its own meta.json."""
    error = f"worker process died: {type(exc).__name__}: {exc}".splitlines()[0]
    out_dir = out_root / repro.name
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out_dir / "meta.json", {
        "name": repro.name, "paper": repro.paper, "target": repro.target, "description": repro.description,
        "mode": "quick" if quick else "full", "quick": quick, "seed": seed, "command": command,
        "commit": commit, "status": "failed", "error": error, "wall_s": None})
    return ReproRecord(repro.name, "failed", out_dir, float("nan"), error)


def _run_in_worker(*args) -> ReproRecord:
    """`run_one` in a pool process, then release joblib's idle workers: loky keeps them 300 s after
    the last task, and a pool process cannot exit before they do, which delayed `--jobs 2` runs by
    about 4.5 minutes after the last reproduction had finished."""
    try:
        return run_one(*args)
    finally:
        loky = sys.modules.get("joblib.externals.loky.reusable_executor")
        executor = getattr(loky, "_executor", None) if loky is not None else None
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)


def run_reproductions(repros: Sequence[Reproduction], out_root: str | Path, *, quick: bool, seed: int = 0,
                      command: str | None = None, progress: bool = True,
                      resume: bool = False, jobs: int = 1) -> list[ReproRecord]:
    """Run the reproductions (a failure does not stop the others); records in the given order.

    jobs > 1 runs that many reproductions at once, each in its own (spawned) process; a reproduction
    that sweeps may start workers of its own, so jobs=2 can oversubscribe a 2-core machine a little.
    """
    from tqdm import tqdm

    if jobs < 1:
        raise InputError("--jobs", "jobs", f"must be >= 1, got {jobs}")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    command = command or " ".join(["llmsched", *sys.argv[1:]])
    commit = git_commit()
    bar = tqdm(total=len(repros), desc="reproduce", unit="repro", disable=not progress, dynamic_ncols=True)
    by_name: dict[str, ReproRecord] = {}

    def done(rec: ReproRecord) -> None:
        if rec.status != "ok":
            bar.write(f"{rec.name}: FAILED ({rec.error}); see {rec.out_dir}")
        by_name[rec.name] = rec
        bar.update(1)

    if jobs == 1 or len(repros) <= 1:
        for repro in repros:
            bar.set_postfix_str(repro.name)
            done(run_one(repro, out_root, quick, seed, command, commit, resume))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_in_worker, r, out_root, quick, seed, command, commit, resume): r
                       for r in repros}
            for fut in as_completed(futures):
                repro = futures[fut]
                try:
                    rec = fut.result()
                except Exception as exc:  # noqa: BLE001 - the worker process itself died (crash, out of memory)
                    rec = _died(repro, out_root, quick, seed, command, commit, exc)
                done(rec)
    bar.close()
    return [by_name[r.name] for r in repros]
