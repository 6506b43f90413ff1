"""Every notebook in examples/ runs in the default suite, in its quick form
(LLMSCHED_EXAMPLES_QUICK=1), in a fresh kernel; a cell that raises fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_example_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCHED_EXAMPLES_QUICK", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temporary outputs land here
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline) backend
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run the sources, not the stored outputs
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert os.environ["LLMSCHED_EXAMPLES_QUICK"] == "1"
