"""MkDocs hook: the API reference reads the package as it is installed (`llmsched.sim`, ...), but
the repository keeps the subpackages in top-level folders that setup.py maps. Before the build,
mirror that mapping as a tree of symlinks under build/docs-src/llmsched, which mkdocstrings
analyses statically (mkdocs.yml: handlers.python.paths)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "docs-src"
SUBPACKAGES = ("sim", "policies", "theory", "proofs_check", "experiments")


def on_config(config, **kwargs):
    pkg = TREE / "llmsched"
    if TREE.exists():
        shutil.rmtree(TREE)
    pkg.mkdir(parents=True)
    for f in (ROOT / "llmsched").glob("*.py"):
        (pkg / f.name).symlink_to(f)
    for name in SUBPACKAGES:
        (pkg / name).symlink_to(ROOT / name, target_is_directory=True)
    return config
