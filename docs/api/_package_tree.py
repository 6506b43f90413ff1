"""MkDocs hook: the API reference reads the package as it is installed (`llmsched.sim`, ...), but
the repository keeps the subpackages in top-level folders that setup.py maps. Before the build,
mirror that mapping as a tree of symlinks under build/docs-src/llmsched, which mkdocstrings
analyses statically (mkdocs.yml: handlers.python.paths)."""

from __future__ import annotations

import contextlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "docs-src"
SUBPACKAGES = ("sim", "policies", "theory", "proofs_check", "experiments")


def _link(link: Path, target: Path) -> None:
    """Create the symlink unless it is there already (concurrent builds make the same tree)."""
    with contextlib.suppress(FileExistsError):
        link.symlink_to(target, target_is_directory=target.is_dir())


def on_config(config, **kwargs):
    pkg = TREE / "llmsched"
    pkg.mkdir(parents=True, exist_ok=True)
    for link in pkg.iterdir():  # modules that were removed or renamed since the last build
        if link.is_symlink() and not link.exists():
            link.unlink(missing_ok=True)
    for f in (ROOT / "llmsched").glob("*.py"):
        _link(pkg / f.name, f)
    for name in SUBPACKAGES:
        _link(pkg / name, ROOT / name)
    return config
