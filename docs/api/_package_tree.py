"""The installed package's layout as a tree of symlinks, for tools that read source statically.

setup.py maps the repository's top-level folders into `llmsched` (`sim/` becomes `llmsched.sim`,
`data/` becomes `llmsched.data`, ...). Tools that analyse the source without importing it (the API
reference's mkdocstrings, the type checker mypy) cannot follow that mapping, so this module mirrors
it as `<parent>/llmsched/{sim, policies, ..., data, __init__.py, ...}` -> the repository's files.
The folder names are read from setup.py itself, so the tree cannot drift from the install.

Two users: this file is the MkDocs hook that builds build/docs-src before the API reference is
read (mkdocs.yml: hooks, handlers.python.paths), and tests/contracts/test_typecheck.py builds
build/typecheck with `build_package_tree` and runs mypy there.
"""

from __future__ import annotations

import ast
import contextlib
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "docs-src"


def _mapped_folders() -> dict[str, str]:
    """{subpackage name: repository folder} as setup.py maps them: its `package_dir` literal
    (besides `llmsched` itself) plus one `llmsched.<folder>` per name in `SUBPACKAGES`."""
    mapping: dict[str, str] = {}
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "SUBPACKAGES":
                mapping.update({folder: folder for folder in ast.literal_eval(node.value)})
            elif name == "package_dir":
                mapping.update({pkg.removeprefix("llmsched."): folder
                                for pkg, folder in ast.literal_eval(node.value).items() if pkg != "llmsched"})
    if not mapping:
        raise RuntimeError(f"{ROOT / 'setup.py'}: found neither SUBPACKAGES nor package_dir")
    return mapping


def _wanted() -> dict[str, Path]:
    links = {f.name: f for f in (ROOT / "llmsched").glob("*.py")}
    links.update({name: ROOT / folder for name, folder in _mapped_folders().items()})
    return links


def _complete(pkg: Path, wanted: dict[str, Path]) -> bool:
    """The tree holds exactly the wanted links, each pointing where it should."""
    if not pkg.is_dir():
        return False
    present = {p.name: p for p in pkg.iterdir()}
    return set(present) == set(wanted) and all(
        present[name].is_symlink() and present[name].resolve() == target.resolve()
        for name, target in wanted.items())


def build_package_tree(tree: Path) -> Path:
    """Make `tree/llmsched` the package's layout (if it is not already) and return `tree`.

    The tree is built in a private temporary directory next to `tree` and renamed into place
    whole, so a concurrent build (the test suite runs in parallel workers) never sees a half-made
    tree. Anything else under `tree` (a tool's cache) is lost only when the tree is outdated."""
    wanted = _wanted()
    if _complete(tree / "llmsched", wanted):
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{tree.name}.", dir=tree.parent))
    (tmp / "llmsched").mkdir()
    for name, target in wanted.items():
        (tmp / "llmsched" / name).symlink_to(target, target_is_directory=target.is_dir())
    stale = tree.parent / f"{tmp.name}.stale"
    with contextlib.suppress(OSError):
        tree.rename(stale)  # an outdated tree (modules added or removed since the last build)
    try:
        tmp.rename(tree)
    except OSError:  # another build put a tree in place first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)
    if not _complete(tree / "llmsched", wanted):
        raise RuntimeError(f"could not build the package source tree at {tree}")
    return tree


@event_priority(100)  # before mkdocstrings reads its paths (which must exist by then)
def on_config(config, **_kwargs):
    """MkDocs hook: make build/docs-src whole before mkdocstrings reads it."""
    build_package_tree(TREE)
    return config
