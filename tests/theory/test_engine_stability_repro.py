"""Smoke and hand checks for the two reproductions of issue 5 (`slai-vs-sarathi`, `stability-region`):
the capacity rule on hand-made curves, and one tiny simulated point of each."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.experiments.registry import all_reproductions
from llmsched.experiments.reproductions import slai as slai_repro
from llmsched.experiments.reproductions import stability as stab_repro


def test_registered():
    names = all_reproductions()
    assert "slai-vs-sarathi" in names and "stability-region" in names


def test_capacity_rule_by_hand():
    rates = np.array([1.0, 2.0, 3.0, 4.0])
    # median TTFT crosses 0.5 s between 2 (0.4) and 3 (0.6): linear interpolation gives 2.5
    assert slai_repro.capacity(rates, np.array([0.3, 0.4, 0.6, 0.2]), np.ones(4, bool)) == pytest.approx(2.5)
    # a TBT failure at 3 stops the scan at 2 (no interpolation across a TBT failure)
    assert slai_repro.capacity(rates, np.array([0.3, 0.4, 0.45, 0.6]), np.array([1, 1, 0, 1], bool)) == 2.0
    # an unstable verdict counts as a failure; later passing loads do not count (scan stops)
    assert slai_repro.capacity(rates, np.full(4, 0.1), np.ones(4, bool), np.array([1, 0, 1, 1], bool)) == 1.0
    assert slai_repro.capacity(rates, np.full(4, 0.1), np.ones(4, bool)) == 4.0
    assert slai_repro.capacity(rates, np.full(4, 0.9), np.ones(4, bool)) == 0.0


def test_slai_point_runs():
    row = slai_repro.run_point("slai", 1.0, 30, seed=0)
    assert row["num_finished"] == 30 and row["ttft_p50_s"] > 0 and 0.0 <= row["tbt_miss_fraction"] <= 1.0


def test_stability_point_matches_theory_line_when_overloaded():
    # Sarathi at 1.3 λ* for 60 s: processed tokens/s over the window equals C = 3342.9 (full rounds)
    row = stab_repro.run_point("sarathi", 1.3, 60.0, seed=0)
    assert row["throughput_tokens_per_s"] == pytest.approx(row["theory_throughput_tokens_per_s"], rel=1e-6)
    assert row["slope_lo"] > 0
