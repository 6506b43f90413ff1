"""The linter is clean: `ruff check .` with the rules in pyproject.toml (including C90 at
complexity 15, ARG, SLF and BLE) reports nothing. The negative control lints a file that breaks
each added rule once and expects every one of them named."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                                reason="ruff is not installed (it is in the dev extra)")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    proc = _ruff(".")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_each_added_rule_is_enforced(tmp_path):
    """Negative control: one violation of C901, ARG001, SLF001 and BLE001, linted with the
    project's configuration."""
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(16))
    bad = tmp_path / "bad_module.py"
    bad.write_text(
        f"def complex_function(x):\n{branches}\n    return -1\n\n\n"
        "def unused_argument(a, b):\n    return a\n\n\n"
        "def private_access(obj):\n    return obj._secret\n\n\n"
        "def blind_except():\n    try:\n        return 1\n    except Exception:\n        return 0\n")
    proc = _ruff("--config", str(REPO / "pyproject.toml"), str(bad))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for code in ("C901", "ARG001", "SLF001", "BLE001"):
        assert code in proc.stdout, f"{code} not reported:\n{proc.stdout}"
