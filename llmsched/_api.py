"""Thin library wrappers for the user API that has no single home function below.

`check` runs a registered checker on a saved run or plan directory; `reproduce` runs registered
reproductions into an output directory. Both delegate to their registries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsched.proofs_check.verdict import Verdict


def check(name: str, run: str | Path, **options: Any) -> Verdict:
    """Run the checker `name` (see `llmsched check --list`) on the run or plan directory `run`."""
    from llmsched.proofs_check.registry import run_checker

    return run_checker(name, Path(run), **options)


def reproduce(name: str | None = None, *, out: str | Path = "results", quick: bool = True,
              seed: int = 0, jobs: int = 1, progress: bool = False) -> list[Any]:
    """Run one registered reproduction (or all, with name=None) into `out`; returns run records."""
    from llmsched.experiments.reproduce import run_reproductions, select

    repros = select([] if name is None else [name], run_all=name is None)
    return run_reproductions(repros, out, quick=quick, seed=seed, jobs=jobs, progress=progress)
