"""The reproduction registry: every paper figure/table the toolkit regenerates is one entry.

A reproduction is a function `run(ctx: ReproContext) -> ReproOutput` registered with
`@reproduction(name=..., paper=..., target=...)` in a module under `llmsched.experiments.reproductions`,
into `REPRODUCTIONS`, an instance of the toolkit's one registry class (`llmsched.sim.registry.Registry`,
tolerant: a module that fails to import is reported, not fatal), which imports those modules and the
plugins of the entry-point group `llmsched.reproductions` on first use. Writing tables/figures/reports is the runner's job (`llmsched.experiments.reproduce`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsched.sim.registry import Registry


@dataclass(frozen=True)
class Comparison:
    """One published number next to ours.

    relation: how to read it — "ratio" (ours/paper), "direction" (same sign/ordering), "within"
    (ours within `tolerance` relative of paper), or "info".
    How the runner judges agreement when `agrees` is None (`llmsched.experiments.reproduce.judge`):
    "ratio"/"within" need a `tolerance`; "direction" takes either a bound as the paper value
    ("> 1", ">= 0", "< 0.5") that ours must satisfy, or a number whose sign ours must share.

    headline: this comparison carries the paper's headline claim. A reproduction's status is
    judged from its headline comparisons alone (`llmsched.experiments.reproduce.repro_status`).
    direction: for a headline, the bound ours must meet for "direction only" when the magnitude
    misses its tolerance ("> 1": ours is better in the paper's direction).
    """

    metric: str
    paper_value: float | str
    ours: float | str
    unit: str = ""
    relation: str = "ratio"
    tolerance: float | None = None
    note: str = ""
    agrees: bool | None = None
    headline: bool = False
    direction: str | None = None


@dataclass
class ReproOutput:
    tables: dict[str, Any] = field(default_factory=dict)  # name -> pandas.DataFrame (tidy)
    figures: list[Path] = field(default_factory=list)  # files written (PNG + PDF)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: str = ""


@dataclass(frozen=True)
class ReproContext:
    out_dir: Path
    quick: bool
    seed: int = 0

    def path(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name


@dataclass(frozen=True)
class Reproduction:
    name: str
    paper: str
    target: str  # e.g. "Fig. 3" or "Table 2"
    run: Callable[[ReproContext], ReproOutput]
    description: str = ""
    quick_minutes: float = 2.0  # expected wall time of quick mode on a 2-core machine


REPRODUCTIONS: Registry[Reproduction] = Registry(
    "reproduction", ("llmsched.experiments.reproductions",), "llmsched.reproductions", tolerant=True)


def reproduction(name: str, paper: str, target: str, quick_minutes: float = 2.0):
    def deco(fn: Callable[[ReproContext], ReproOutput]):
        doc = (fn.__doc__ or "").strip()
        REPRODUCTIONS.add(name, Reproduction(name, paper, target, fn, doc, quick_minutes), target)
        return fn

    return deco


def unregister(name: str) -> None:
    """Remove a reproduction (tests register throwaway entries and clean up after themselves)."""
    REPRODUCTIONS.unregister(name)


def load_all() -> None:
    """Import every module under `llmsched.experiments.reproductions` so that its decorators run.

    A module that fails to import does not hide the others: its traceback is kept in
    `import_errors()` and the runner reports it as a failure.
    """
    REPRODUCTIONS.load()


def import_errors() -> dict[str, str]:
    """Reproduction modules that failed to import: module name -> traceback."""
    load_all()
    return dict(REPRODUCTIONS.import_errors)


def all_reproductions() -> dict[str, Reproduction]:
    return REPRODUCTIONS.items()
