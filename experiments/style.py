"""The one shared matplotlib style, sized for a two-column paper, and the figure writer.

Every figure in the toolkit goes through `figure()` and `save()`; nothing else sets rcParams.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

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


def apply() -> None:
    plt.rcParams.update(RC)


def figure(width: str = "column", height_in: float | None = None, nrows: int = 1, ncols: int = 1, **kw):
    """A figure sized for one column (`width="column"`) or the full text width (`"text"`)."""
    apply()
    w = COLUMN_WIDTH_IN if width == "column" else TEXT_WIDTH_IN
    h = height_in if height_in is not None else (2.2 if nrows == 1 else 1.8 * nrows)
    return plt.subplots(nrows, ncols, figsize=(w, h), **kw)


def save(fig, out_dir: str | Path, stem: str) -> list[Path]:
    """Write `stem.png` and `stem.pdf` under `out_dir` and close the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths
