"""The fairness reproductions run end to end in quick mode and write their tables and figures
(slow: about 1.5 minutes together on two cores)."""

from __future__ import annotations

import pytest

from llmsched.experiments.registry import all_reproductions
from llmsched.experiments.reproduce import run_reproductions


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vtc-table2", "vtc-figures", "vtc-weighted", "dlpm-quantum-sweep"])
def test_reproduction_quick(tmp_path, name):
    (rec,) = run_reproductions([all_reproductions()[name]], tmp_path, quick=True, seed=0,
                               progress=False)
    assert rec.status == "ok", rec.error
    out = tmp_path / name
    assert list(out.glob("*.png")) and list(out.glob("*.parquet"))
    assert (out / "comparisons.csv").exists()
