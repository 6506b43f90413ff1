"""`RunResult`: the tables and summary of one run, written to and read back from a run directory.

Owns the on-disk format (docs/run-format.md), reading it back (a damaged file is one InputError)
and the summary statistics. A run directory is written atomically as a whole (a hidden sibling
directory renamed into place under a lock), so an interrupted save leaves the old run or the new one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.sim import atomic
from llmsched.sim.errors import InputError
from llmsched.sim.state import ACCURACY_SCALE, DONE, NJ_PER_J, PUSD_PER_USD, REJECTED, RequestTable

FILES = ("requests.parquet", "service.parquet", "timeline.parquet", "summary.json")


@dataclass
class RunResult:
    requests: pd.DataFrame
    service: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path, force: bool = False) -> Path:
        """Write the run directory all at once: into a hidden sibling, then renamed into place.

        A reader (or a kill -9 at any moment) sees the complete old run or the complete new one,
        never a mix. An existing non-empty `out_dir` is refused unless `force`; concurrent saves to
        one directory are serialised by a lock file beside it (`.NAME.lock`).
        """
        out = Path(out_dir)
        check_out_dir(out, force)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary_text = json.dumps(_jsonable(self.summary), indent=2) + "\n"
        with _dir_lock(out):
            check_out_dir(out, force)  # again: another run may have finished while we waited
            _remove_stale_temps(out)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
            try:
                os.chmod(tmp, 0o777 & ~atomic.current_umask())
                for name, df in (("requests", self.requests), ("service", self.service),
                                 ("timeline", self.timeline)):
                    df.to_parquet(tmp / f"{name}.parquet", index=False)
                (tmp / "summary.json").write_text(summary_text, encoding="utf-8")
                for f in FILES:
                    atomic.fsync_path(tmp / f)
                atomic.fsync_path(tmp)
                _swap_into_place(tmp, out)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            atomic.fsync_path(out.parent)
        return out


def check_out_dir(out: str | Path, force: bool = False, flag: str = "--out") -> None:
    """Refuse an output path that is a file, a non-empty directory unless `force`, or one whose
    location cannot be written (checked before a run, not after it)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(flag, str(out), "exists and is not a directory", "pass a new or empty directory")
    if out.is_dir() and not force and any(out.iterdir()):
        raise InputError(flag, str(out), "is not empty (it may hold an earlier run)",
                         "pass a new directory, or --force to replace its contents")
    # the run is written beside `out` (a hidden sibling and a lock file): the nearest existing
    # ancestor of out's parent must be a directory we can create files in, or the save would fail
    # only after the whole run
    base = out.absolute().parent
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise InputError(flag, str(out), f"{base} is a file, so the run directory cannot be created there",
                         "pass a path under a directory")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise InputError(flag, str(out), f"cannot create files in {base} ({exc.strerror or type(exc).__name__})",
                         "pass a writable location") from None


@contextlib.contextmanager
def _dir_lock(out: Path):
    """An exclusive advisory lock (flock) on `.NAME.lock` beside `out`, held while writing."""
    lock = out.parent / f".{out.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, the rename is still atomic
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove_stale_temps(out: Path) -> None:
    """Hidden temp directories a killed writer left beside `out` (only the lock holder calls this)."""
    for p in out.parent.glob(f".{out.name}.*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    if not any(out.iterdir()):
        os.rename(tmp, out)  # POSIX: replaces an empty directory atomically
        return
    if _exchange(tmp, out):  # tmp now holds the old run
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # No atomic exchange (not Linux): move the old run aside first; a crash between the two
    # renames leaves the old run complete under its hidden name, never a mix.
    old = out.parent / f".{out.name}.{os.getpid()}.old.tmp"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return x


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError]
    try:
        import pyarrow

        errors.append(pyarrow.ArrowException)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    return tuple(errors)


#: What reading a damaged run file can raise; `read_error` turns any of them into one InputError.
READ_ERRORS = _read_errors()


def read_error(where: str | Path, exc: BaseException) -> InputError:
    """One-line InputError for a file that exists but cannot be read (corrupt, truncated, not ours)."""
    name = getattr(exc, "filename", None) or where
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 160:  # cut at a word, and say so
        text = text[:160].rsplit(" ", 1)[0] + " …"
    return InputError(str(name), "", f"cannot be read ({type(exc).__name__}: {text})",
                      "the file is damaged or not written by llmsched; re-run `llmsched simulate --out`")


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A run table; a missing or damaged file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path.parent), path.name, "missing from the run directory",
                         "pass a directory written by `llmsched simulate --out`")
    try:
        return pd.read_parquet(path)
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None


def read_summary(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path.parent), path.name, "missing from the run directory",
                         "pass a directory written by `llmsched simulate --out`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None
    if not isinstance(data, dict):
        raise InputError(str(path), "", "not a JSON object", "re-run `llmsched simulate --out`")
    return data


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run directory back (raises InputError naming a missing or damaged file)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(str(d), "", "not a run directory", "pass a directory written by `llmsched simulate --out`")
    for f in FILES:
        if not (d / f).is_file():
            raise InputError(str(d), f, "missing from the run directory",
                             "pass a directory written by `llmsched simulate --out`")
    return RunResult(
        requests=read_parquet(d / "requests.parquet"),
        service=read_parquet(d / "service.parquet"),
        timeline=read_parquet(d / "timeline.parquet"),
        summary=read_summary(d / "summary.json"),
    )


def requests_frame(reqs: RequestTable) -> pd.DataFrame:
    r = reqs
    served = r.state == DONE
    out = r.output.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt_mean = np.where(out > 1, (r.finish_s - r.first_token_s) / (out - 1), np.nan)
    ttft = r.first_token_s - r.arrival_s
    with np.errstate(invalid="ignore", divide="ignore"):  # tokens of model variants (Plan.variant) only
        accuracy = np.where(r.accuracy_tokens > 0, r.accuracy_sum / ACCURACY_SCALE / np.maximum(r.accuracy_tokens, 1), np.nan)
    tbt_max = np.where(served & (r.output > 1), r.tbt_max_s, np.nan)
    return pd.DataFrame({
        "request_id": np.arange(r.n, dtype=np.int64),
        "client": r.client,
        "instance": r.instance,
        "prefill_instance": r.prefill_instance,
        "arrival_s": r.arrival_s,
        "dispatch_s": r.dispatch_s,
        "first_token_s": r.first_token_s,
        "finish_s": r.finish_s,
        "ttft_s": ttft,
        "e2e_s": r.finish_s - r.arrival_s,
        "tbt_mean_s": tbt_mean,
        "tbt_max_s": tbt_max,
        "tbt_slo_misses": r.tbt_misses,
        "queueing_delay_s": r.dispatch_s - r.arrival_s,
        "preemptions": r.preemptions,
        "migrations": r.migrations,
        "prompt_tokens": r.prompt,
        "output_tokens": r.output,
        "generated_tokens": r.generated,
        "cached_prompt_tokens": r.cached_tokens,
        "admitted_prompt_tokens": r.admitted_prompt_tokens,
        "priority": r.priority,
        "ttft_slo_s": r.ttft_slo_s,
        "tbt_slo_s": r.tbt_slo_s,
        "slo_met": served & (ttft <= r.ttft_slo_s) & (r.tbt_misses == 0),
        "rejected": r.state == REJECTED,
        "accuracy": accuracy,
        "energy_j": r.energy_nj / NJ_PER_J,
        "cost_usd": r.cost_pusd / PUSD_PER_USD,
    })


#: Keys `llmsched.sim.run.simulate` adds to `summarize`'s (scalar ones; `config`, `policy_params`
#: and `router` hold nested records).
RUN_SUMMARY_KEYS = ("wall_s", "loop_s", "seed", "mode", "workload")


def summary_metric_names() -> list[str]:
    """The flattened scalar keys of a run summary (`ttft_s.p50`, ...), without running anything."""
    cols = ("arrival_s", "finish_s", "prompt_tokens", "output_tokens", "slo_met", "ttft_s", "tbt_mean_s",
            "tbt_max_s", "e2e_s", "queueing_delay_s", "rejected", "preemptions", "migrations")
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    out: list[str] = []
    for key, value in summarize(empty).items():
        if isinstance(value, dict):
            out.extend(f"{key}.{k}" for k in value)
        else:
            out.append(key)
    return out + list(RUN_SUMMARY_KEYS)


def _pcts(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(x.mean())}


def _cache_hit_rate(requests: pd.DataFrame) -> float:
    """Prompt tokens served from the prefix cache over prompt tokens admitted, over every admission
    of every request (the per-request counts are the engine's one tally)."""
    if "admitted_prompt_tokens" not in requests:
        return 0.0
    admitted = int(requests["admitted_prompt_tokens"].sum())
    return int(requests["cached_prompt_tokens"].sum()) / admitted if admitted else 0.0


def summarize(requests: pd.DataFrame) -> dict[str, Any]:
    done = requests[np.isfinite(requests["finish_s"])]
    n_done = len(done)
    start = float(requests["arrival_s"].min()) if len(requests) else 0.0
    end = float(done["finish_s"].max()) if n_done else start
    span = max(end - start, 1e-12)
    prompt = int(done["prompt_tokens"].sum())
    output = int(done["output_tokens"].sum())
    return {
        "num_requests": len(requests),
        "num_finished": n_done,
        "num_rejected": int(requests["rejected"].sum()),
        "makespan_s": end - start,
        "requests_per_s": n_done / span,
        "tokens_per_s": (prompt + output) / span,
        "output_tokens_per_s": output / span,
        "goodput_requests_per_s": int(done["slo_met"].sum()) / span,
        "slo_attainment": float(done["slo_met"].mean()) if n_done else math.nan,
        "ttft_s": _pcts(done["ttft_s"].to_numpy()),
        "tbt_s": _pcts(done["tbt_mean_s"].to_numpy()),
        "tbt_max_s": _pcts(done["tbt_max_s"].to_numpy()),
        "e2e_s": _pcts(done["e2e_s"].to_numpy()),
        "queueing_delay_s": _pcts(done["queueing_delay_s"].to_numpy()),
        "cache_hit_rate": _cache_hit_rate(requests),
        "preemptions": int(requests["preemptions"].sum()),
        "migrations": int(requests["migrations"].sum()),
        "accuracy_mean": _mean_of(done, "accuracy"),
    }


def _mean_of(done: pd.DataFrame, column: str) -> float:
    """Mean of a column over finished requests, ignoring NaN (NaN if the column is absent, e.g. in a
    run written before it existed, or has no value)."""
    if column not in done:
        return math.nan
    x = done[column].to_numpy(dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan
