"""MkDocs hook: the API reference reads the package as it is installed (`llmsched.sim`, ...), but
the repository keeps the subpackages in top-level folders that setup.py maps. Before the build,
mirror that mapping as a tree of symlinks under build/docs-src/llmsched, which mkdocstrings
analyses statically (mkdocs.yml: handlers.python.paths)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "docs-src"
SUBPACKAGES = ("sim", "policies", "theory", "proofs_check", "experiments")


def _wanted() -> dict[str, Path]:
    links = {f.name: f for f in (ROOT / "llmsched").glob("*.py")}
    links.update({name: ROOT / name for name in SUBPACKAGES})
    return links


def _complete(pkg: Path, wanted: dict[str, Path]) -> bool:
    """The tree holds exactly the wanted links, each pointing where it should."""
    if not pkg.is_dir():
        return False
    present = {p.name: p for p in pkg.iterdir()}
    return set(present) == set(wanted) and all(
        present[name].is_symlink() and present[name].resolve() == target.resolve()
        for name, target in wanted.items())


@event_priority(100)  # before mkdocstrings reads its paths (which must exist by then)
def on_config(config, **kwargs):
    """Make the tree whole before mkdocstrings reads it. It is built in a private temporary
    directory and renamed into place, so a concurrent build (the test suite builds twice, in
    parallel workers) never sees a half-made tree."""
    wanted = _wanted()
    if _complete(TREE / "llmsched", wanted):
        return config
    TREE.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="docs-src.", dir=TREE.parent))
    (tmp / "llmsched").mkdir()
    for name, target in wanted.items():
        (tmp / "llmsched" / name).symlink_to(target, target_is_directory=target.is_dir())
    stale = TREE.parent / f"{tmp.name}.stale"
    with contextlib.suppress(OSError):
        TREE.rename(stale)  # an outdated tree (modules added or removed since the last build)
    try:
        tmp.rename(TREE)
    except OSError:  # another build put a tree in place first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)
    if not _complete(TREE / "llmsched", wanted):
        raise RuntimeError(f"could not build the API source tree at {TREE}")
    return config
