"""The locality reproductions' own pieces: the artifact's A6000 forward-time fit (hand-derived
values) and, marked slow, preble-e2e and d2lpm-fairness end to end in quick mode."""

from __future__ import annotations

import pytest

from llmsched.experiments.reproductions.preble import PrebleA6000Cost
from llmsched.sim.cost.base import BatchShape


def test_a6000_fit_decode_batch():
    # 32 decodes at 20,000 tokens of context each: 32 batched tokens (< 192) -> linear 22 ms;
    # context 32 x 20,000 + 32 = 640,032 -> attention 1.86e-4 x 640,032 + 0.159 = 119.205952 ms
    # (not halved: 20,001 tokens per request > 1,024); no prefill; / 0.9
    t = PrebleA6000Cost().iteration_times(BatchShape.single(0, 0, 0, 32, 32 * 20_000, 32))
    assert t[0] == pytest.approx((22.0 + 1.86e-4 * 640_032 + 0.159) / 0.9 / 1e3, rel=1e-12)


def test_a6000_fit_long_prefill():
    # one 16,384-token prefill from scratch: linear 0.10842571 x 16,384 + 4.209777054806409 ms;
    # attention 1.86e-4 x 16,384 + 0.159 ms; e x s = 16,384^2 > 2^20 -> long-extend term
    # 1.13e-3 x 16,384 + 1.75e-3 x 16,384 + 2.19e-6 x 16,384^2 ms; all / 0.9
    e = 16_384
    expected = (0.10842571 * e + 4.209777054806409 + 1.86e-4 * e + 0.159
                + 1.13e-3 * e + 1.75e-3 * e + 2.19e-6 * e * e) / 0.9 / 1e3
    assert PrebleA6000Cost().iteration_times(BatchShape.prefill_only(e))[0] == pytest.approx(expected, rel=1e-12)


def test_a6000_fit_mid_branch_is_clamped():
    # 370 tokens fall in the fit's 192-383 branch, -118 + 1.25 x 370 - 2.56e-3 x 370^2 = -6.0 ms:
    # clamped to the 22 ms floor (context 370 <= 1024 -> attention 0.32 ms; e x s = 136,900 < 2^20)
    t = PrebleA6000Cost().iteration_times(BatchShape.prefill_only(370))
    assert t[0] == pytest.approx((22.0 + 0.32) / 0.9 / 1e3, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["preble-e2e", "d2lpm-fairness"])
def test_reproduction_quick(tmp_path, name):
    from llmsched.experiments.registry import all_reproductions
    from llmsched.experiments.reproduce import run_reproductions

    (rec,) = run_reproductions([all_reproductions()[name]], tmp_path, quick=True, seed=0, progress=False)
    assert rec.status == "ok", rec.error
    assert (tmp_path / name / "comparisons.csv").exists()
