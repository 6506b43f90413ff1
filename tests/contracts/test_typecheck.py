"""The type checker holds the code to its declared types: mypy over `llmsched.sim` and
`llmsched.policies` (and, by following their imports, every module they reach) reports nothing.

mypy reads source statically and cannot follow setup.py's folder mapping, so it runs in the
symlink tree that docs/api/_package_tree.py builds (the same builder the API reference uses),
with the settings in pyproject.toml `[tool.mypy]` and a cache under build/ that makes a rerun
take seconds. The negative control copies one module with an added type error into a private
tree and expects mypy to name it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (it is in the dev extra)")

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "pyproject.toml"
CHECKED = ("llmsched.sim", "llmsched.policies")


def _package_tree_module():
    spec = importlib.util.spec_from_file_location("_package_tree", REPO / "docs" / "api" / "_package_tree.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mypy(tree: Path, cache: Path, monkeypatch) -> tuple[str, int]:
    """mypy on CHECKED with the project's config, run from `tree` (where `llmsched` resolves)."""
    monkeypatch.chdir(tree)
    args = ["--config-file", str(CONFIG), "--cache-dir", str(cache), "--no-error-summary"]
    for package in CHECKED:
        args += ["-p", package]
    stdout, stderr, status = mypy_api.run(args)
    return stdout + stderr, status


def test_mypy_is_clean(monkeypatch):
    tree = _package_tree_module().build_package_tree(REPO / "build" / "typecheck")
    report, status = _mypy(tree, REPO / "build" / "mypy-cache", monkeypatch)
    assert status == 0, f"mypy found type errors:\n{report}"


def test_an_added_type_error_is_reported(tmp_path, monkeypatch):
    """Negative control: a private tree whose `llmsched.sim` has one module more, with a type
    error in it that an imported checked module would call."""
    builder = _package_tree_module()
    tree = tmp_path / "tree"
    pkg = tree / "llmsched"
    pkg.mkdir(parents=True)
    for name, target in builder._wanted().items():
        if name != "sim":
            (pkg / name).symlink_to(target, target_is_directory=target.is_dir())
    (pkg / "sim").mkdir()
    for entry in (REPO / "sim").iterdir():
        if entry.name != "__pycache__":
            (pkg / "sim" / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (pkg / "sim" / "_broken.py").write_text(
        "def prefill_tokens() -> int:\n"
        "    return 'not a number'\n")
    # the shared cache would be written under other paths; a private one keeps it clean
    cache = tmp_path / "cache"
    if (REPO / "build" / "mypy-cache").is_dir():
        # a warm start; a file that a concurrent run replaces mid-copy only costs a recheck
        with contextlib.suppress(OSError):
            shutil.copytree(REPO / "build" / "mypy-cache", cache, dirs_exist_ok=True)
    report, status = _mypy(tree, cache, monkeypatch)
    assert status == 1, report
    assert f"llmsched{os.sep}sim{os.sep}_broken.py:2: error" in report, report
    assert "return-value" in report, report
