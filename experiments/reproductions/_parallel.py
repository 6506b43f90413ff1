"""Run a reproduction's independent simulations in up to two worker processes (full mode only).

Quick mode stays in-process: the README's main command already runs reproductions two at a time
(`--jobs 2`), and nested pools would oversubscribe the 2-core target machine. Results come back in
input order, so tables are identical to a serial run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

JOBS = min(2, os.cpu_count() or 1)


def pmap(fn: Callable[..., Any], calls: Sequence[tuple], parallel: bool) -> list[Any]:
    """[fn(*args) for args in calls], in JOBS worker processes when `parallel`."""
    if not parallel or JOBS < 2 or len(calls) < 2:
        return [fn(*args) for args in calls]
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=JOBS)(delayed(fn)(*args) for args in calls))
