"""Registry of checkers runnable as `llmsched check NAME PATH`.

A checker module under `proofs_check` registers `fn(path: Path, **options) -> Verdict` with
`@checker("name", target="run"|"plan", help=...)`; `load_all()` imports all modules of the package, then the plugins of the entry-point group
`llmsched.checkers` (`llmsched.sim.registry.load_plugins`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmsched.proofs_check.verdict import Verdict


@dataclass(frozen=True)
class CheckerEntry:
    name: str
    target: str  # "run" (a run directory) or "plan" (a placement plan directory)
    fn: Callable[..., Verdict]
    help: str


_CHECKERS: dict[str, CheckerEntry] = {}
_loaded = False


def checker(name: str, target: str = "run", help: str = ""):
    def deco(fn: Callable[..., Verdict]):
        _CHECKERS[name] = CheckerEntry(name, target, fn, help or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    pkg = importlib.import_module("llmsched.proofs_check")
    for mod in pkgutil.walk_packages(pkg.__path__, prefix="llmsched.proofs_check."):
        if mod.name.rsplit(".", 1)[-1].startswith("_") or mod.name in ("llmsched.proofs_check.registry",):
            continue
        importlib.import_module(mod.name)
    _loaded = True
    from llmsched.sim.registry import load_plugins

    load_plugins("llmsched.checkers")


def checkers() -> dict[str, CheckerEntry]:
    load_all()
    return dict(sorted(_CHECKERS.items()))


def run_checker(name: str, path: Path, **options) -> Verdict:
    entries = checkers()
    if name not in entries:
        raise KeyError(name)
    return entries[name].fn(Path(path), **options)
