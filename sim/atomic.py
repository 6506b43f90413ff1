"""Crash-safe file writes: write to a temp file in the same directory, fsync, then `os.replace`.

A reader therefore sees either the old file or the complete new one, never a torn write; temp files
left by a killed writer start with `.` and end with `.tmp`, so result scanners can ignore them.
Owns nothing but bytes on disk; the one atomic-write helper (run directories, tables, reports, sweeps).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for a temp file this module may have left behind after a crash."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(directory: Path) -> None:
    """fsync a file or directory (a directory: persists a rename in it; POSIX, best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call `writer(tmp_path)` to produce the file, then atomically move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; honour the umask like open()
        finally:
            os.close(fd)
        writer(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(path.parent)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Stable JSON (sorted keys, indent 1, exact float repr) written atomically."""
    return write_text(path, json.dumps(obj, sort_keys=True, indent=1, allow_nan=True) + "\n")
