"""Registry of checkers runnable as `llmsched check NAME PATH`.

A checker module under `proofs_check` registers `fn(path: Path, **options) -> Verdict` with
`@checker("name", target="run"|"plan", help=...)` in `CHECKERS`, an instance of the toolkit's one
registry class (`llmsched.sim.registry.Registry`), which imports the package's public modules and
the plugins of the entry-point group `llmsched.checkers` on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.registry import Registry


@dataclass(frozen=True)
class CheckerEntry:
    name: str
    target: str  # "run" (a run directory) or "plan" (a placement plan directory)
    fn: Callable[..., Verdict]
    help: str


CHECKERS: Registry[CheckerEntry] = Registry("checker", ("llmsched.proofs_check",), "llmsched.checkers")


def checker(name: str, target: str = "run", help: str = ""):
    def deco(fn: Callable[..., Verdict]):
        line = help or (fn.__doc__ or "").strip().split("\n")[0]
        CHECKERS.add(name, CheckerEntry(name, target, fn, line), line)
        return fn

    return deco


def load_all() -> None:
    CHECKERS.load()


def checkers() -> dict[str, CheckerEntry]:
    return CHECKERS.items()


def run_checker(name: str, path: Path, **options) -> Verdict:
    entries = checkers()
    if name not in entries:
        raise KeyError(name)
    return entries[name].fn(Path(path), **options)
