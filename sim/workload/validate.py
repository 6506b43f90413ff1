"""Column checks shared by the trace readers: each failure is one `InputError` naming file, column, row.

Owns only validation of parsed tables (pandas DataFrames); parsing and Workload assembly live in
the reader modules.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llmsched.sim.errors import InputError


def require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(str(path), "", f"{what} not found",
                         "pass an existing file (bundled traces live under data/traces/)")


def show(value: object) -> str:
    """A value as a user wrote it, for messages: `inf`, `3.5`, `'abc'` — never `np.float64(inf)`."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        with contextlib.suppress(AttributeError, ValueError, TypeError):
            value = value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON Lines file; a bad line (not JSON,
    not UTF-8 text, not an object) is an InputError naming the file and the line."""
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(str(path), f"line {line_no}", "not UTF-8 text (is this a binary file?)",
                                 "pass a JSON Lines text file, one JSON object per line") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), f"line {line_no}", f"not valid JSON ({exc.msg})",
                                 "write one JSON object per line") from None
            if not isinstance(rec, dict):
                raise InputError(str(path), f"line {line_no}", "not a JSON object", "write one object per line")
            yield line_no, rec


def require_columns(df: pd.DataFrame, columns: Sequence[str], path: Path | str, fix: str = "") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns)) or "none"
        raise InputError(str(path), missing[0], f"missing column (have: {have})",
                         fix or f"add a header with the columns {', '.join(columns)}")


def reject_unknown_columns(columns, accepted: Sequence[str], path: Path | str, what: str = "column") -> None:
    """An unknown column is an error, not silently ignored (a typo like `ttft_slo` for `ttft_slo_s`
    would otherwise make every SLO count as met)."""
    unknown = [str(c) for c in columns if str(c) not in accepted]
    if unknown:
        raise InputError(str(path), unknown[0], f"unknown {what}" + (f" (and {len(unknown) - 1} more)"
                                                                    if len(unknown) > 1 else ""),
                         f"accepted {what}s: {', '.join(accepted)}; rename or remove it")


def require_rows(n: int, path: Path | str) -> None:
    """A trace with a header but no requests is an error (a run of 0 requests says nothing)."""
    if n == 0:
        raise InputError(str(path), "", "the file has no requests (only a header)",
                         "add at least one request row")


def _row(pos: int, header_lines: int) -> str:
    return f"row {pos + 1} (line {pos + 1 + header_lines})"


def numeric(df: pd.DataFrame, col: str, path: Path | str, *, integer: bool = False,
            minimum: float | None = 0, header_lines: int = 1, allow_inf: bool = False) -> np.ndarray:
    """Column `col` as float64 (or int64), rejecting non-numeric, non-finite, fractional or small values."""
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(vals) if allow_inf else ~np.isfinite(vals)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputError(str(path), col, f"{_row(pos, header_lines)}: not a number ({show(raw.iloc[pos])})",
                         "write a plain decimal number in every row")
    if integer:
        frac = vals != np.floor(vals)
        if frac.any():
            pos = int(np.flatnonzero(frac)[0])
            raise InputError(str(path), col, f"{_row(pos, header_lines)}: not an integer ({show(float(vals[pos]))})",
                             "token counts must be whole numbers")
    if minimum is not None and (vals < minimum).any():
        pos = int(np.flatnonzero(vals < minimum)[0])
        what = "negative" if vals[pos] < 0 else f"below {minimum:g}"
        raise InputError(str(path), col, f"{_row(pos, header_lines)}: {what} value {float(vals[pos])!r}",
                         f"every value must be >= {minimum:g}")
    return vals.astype(np.int64) if integer else vals


def sorted_times(t: np.ndarray, col: str, path: Path | str, header_lines: int = 1) -> None:
    """Reject decreasing arrival times (we never re-sort a user's file silently)."""
    if len(t) > 1:
        dec = np.flatnonzero(np.diff(t) < 0)
        if len(dec):
            pos = int(dec[0]) + 1
            raise InputError(str(path), col,
                             f"row {pos + 1} (line {pos + 1 + header_lines}): arrival {float(t[pos])!r} is earlier "
                             f"than the previous row's {float(t[pos - 1])!r} (rows must be sorted by time)",
                             f"sort the file by {col} before loading it")
