"""The one shared matplotlib style, sized for a two-column paper, and the figure writer.

Every figure in the toolkit goes through `figure()` and `save()`. The style is applied as a
context (`context()`, matplotlib's `rc_context`), never globally, and nothing here selects a
backend: figures are `matplotlib.figure.Figure` objects that pyplot does not track, so importing or
plotting leaves a notebook's inline backend and its rcParams as they were. Draw inside
`with style.context():` to get the paper style for fonts, lines and legends (the reproduction
runner wraps every reproduction in it); `figure()` and `save()` apply it themselves.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib as mpl
from matplotlib.figure import Figure

P = ParamSpec("P")
R = TypeVar("R")

# Two-column paper: a column is ~3.33 in wide, the full text width ~7.0 in (ACM/USENIX templates).
COLUMN_WIDTH_IN = 3.33
TEXT_WIDTH_IN = 7.0

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "figure.constrained_layout.use": True,
}


@contextlib.contextmanager
def context() -> Iterator[None]:
    """The paper style for everything drawn inside; the caller's rcParams come back afterwards."""
    with mpl.rc_context(RC):
        yield


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run a plotting function inside `context()`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with context():
            return fn(*args, **kwargs)

    return wrapper


def figure(width: str = "column", height_in: float | None = None, nrows: int = 1, ncols: int = 1, **kw):
    """A figure sized for one column (`width="column"`) or the full text width (`"text"`).

    Returns `(fig, axes)` like `pyplot.subplots`, but the figure is not registered with pyplot (no
    backend is needed; `save()` or a notebook's display renders it)."""
    if width not in ("column", "text"):
        raise ValueError(f"width must be 'column' or 'text', got {width!r}")
    w = COLUMN_WIDTH_IN if width == "column" else TEXT_WIDTH_IN
    h = height_in if height_in is not None else (2.2 if nrows == 1 else 1.8 * nrows)
    subplot_kw = {k: kw.pop(k) for k in ("sharex", "sharey", "squeeze", "subplot_kw", "gridspec_kw",
                                         "width_ratios", "height_ratios") if k in kw}
    with context():
        fig = Figure(figsize=(w, h), **kw)
        axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def save(fig, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `stem.png` and `stem.pdf` under `out_dir` and close the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    with context():
        for p in paths:
            fig.savefig(p)
    return paths
