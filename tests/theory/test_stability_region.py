"""Stability region of one batching server (theory.stability): closed forms, tiling, request-cap vertices."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsched.theory.batch_time import linear, staircase
from llmsched.theory.stability import (
    ClassLoad,
    best_token_rate,
    cap_region_capacity,
    cap_region_vertices,
    fluid_backlog_slope,
    in_cap_region,
    is_stable,
    multiclass_capacity_scale,
    multiclass_fluid_slope,
    multiclass_token_load,
    request_capacity,
    token_capacity,
)

# Li–Dai–Peng staircase for CodeLlama-34B / A100 (third-party reproduction of arXiv 2504.07347 §2.3)
C_S, A_S, B0 = 11.28e-3, 35.47e-3, 128
T = staircase(C_S, A_S, B0)


def test_token_capacity_matches_hand_computation():
    # t(512) = 11.28 + 4·35.47 = 153.16 ms  ->  512 / 0.15316 s = 3342.909... tokens/s
    assert token_capacity(T, 512) == pytest.approx(512 / 0.15316, rel=1e-12)
    # (v_p, v_d) = (100, 100): λ* = 3342.909 / 200 = 16.7145 req/s (the notes' "16.71")
    assert request_capacity(T, 512, 100, 100) == pytest.approx(512 / 0.15316 / 200, rel=1e-12)


def test_stability_condition_is_strict_and_two_sided():
    lam_star = request_capacity(T, 512, 100, 100)
    assert is_stable(0.9 * lam_star, T, 512, 100, 100)
    assert not is_stable(1.1 * lam_star, T, 512, 100, 100)
    assert not is_stable(lam_star, T, 512, 100, 100)


def test_fluid_slope_above_capacity():
    lam_star = request_capacity(T, 512, 100, 100)
    cap = token_capacity(T, 512)
    for factor in (1.1, 1.2):
        s = fluid_backlog_slope(factor * lam_star, T, 512, 100, 100)
        # λ·200 − C = (factor − 1)·C tokens/s; requests: (factor − 1)·λ*
        assert s.tokens_per_s == pytest.approx((factor - 1) * cap, rel=1e-9)
        assert s.requests_per_s == pytest.approx((factor - 1) * lam_star, rel=1e-9)
    # notes: fluid slopes 0.334 and 0.669 tokens/ms at 1.1λ*, 1.2λ*
    assert fluid_backlog_slope(1.1 * lam_star, T, 512, 100, 100).tokens_per_s / 1e3 == pytest.approx(0.334, abs=5e-4)
    assert fluid_backlog_slope(1.2 * lam_star, T, 512, 100, 100).tokens_per_s / 1e3 == pytest.approx(0.669, abs=5e-4)
    assert fluid_backlog_slope(0.9 * lam_star, T, 512, 100, 100).tokens_per_s == 0.0


def test_untiled_budget_loses_capacity():
    # notes §1.2: budget 520 gives 520/(11.28+5·35.47) ms = 2.757 tok/ms < 3.343 at 512
    assert token_capacity(T, 520) == pytest.approx(520 / (C_S + 5 * A_S), rel=1e-12)
    b_star, rate = best_token_rate(T, 520)
    assert b_star == 512
    assert rate == pytest.approx(token_capacity(T, 512))
    assert token_capacity(T, 520) < rate


@given(c=st.floats(1e-4, 0.05), a=st.floats(1e-4, 0.05), b0=st.sampled_from([16, 64, 128, 256]),
       b_max=st.integers(1, 3000))
def test_best_budget_is_tile_aligned(c, a, b0, b_max):
    """Closed form (ours): within a step the rate b/t grows with b, and across full steps
    k·b0/(c + a·k) grows with k, so b* ∈ {b0·⌊b_max/b0⌋, b_max}; the partial last step wins iff its
    extra j = b_max − K·b0 tokens exceed K·b0·a/(c + a·K). Checked against the brute-force argmax."""
    t = staircase(c, a, b0)
    b_star, rate = best_token_rate(t, b_max)
    k = b_max // b0
    cands = [b_max] + ([k * b0] if k >= 1 else [])
    expected = max(b / (c + a * math.ceil(b / b0)) for b in cands)
    assert rate == pytest.approx(expected, rel=1e-12)
    j = b_max - k * b0
    if k >= 1 and j > 0 and j * (c + a * k) < k * b0 * a * (1 - 1e-9):
        assert b_star == k * b0  # tile-aligned budget strictly better


def test_linear_cost_best_budget_is_the_budget():
    t = linear(0.01, 1e-4)
    assert best_token_rate(t, 700)[0] == 700
    assert token_capacity(t, 700) == pytest.approx(700 / (0.01 + 0.07))


def test_vertex_c_of_the_request_cap_region():
    # b_max = b0 = 128, k_max = 100: a prefill round carries ≤ 99 decodes, so the region has vertex
    # ((128 − 99)/t(128), 99/t(128)) with t(128) = 46.75 ms; decode-only rounds give (0, 100/t(128)).
    v = cap_region_vertices(T, 128, 100)
    t128 = C_S + A_S
    expect = np.array([[0, 100], [29, 99], [128, 0]]) / t128
    np.testing.assert_allclose(v, expect, rtol=1e-12)


def test_vertex_c_workload_is_exactly_critical():
    # (290, 990) every 467.5 ms puts (λ_p, λ_d) = (29, 99)/46.75 ms at vertex C: capacity 1/0.4675 s.
    assert cap_region_capacity(T, 128, 100, 290, 990) == pytest.approx(1 / 0.4675, rel=1e-9)
    assert not in_cap_region(290 / 0.4675, 990 / 0.4675, T, 128, 100)
    assert in_cap_region(0.99 * 290 / 0.4675, 0.99 * 990 / 0.4675, T, 128, 100)


def test_cap_region_on_a_face_hand_derived():
    # mix (m_p, m_d) = (1, 1000) lands on the face between (0,100)/t and (29,99)/t: y = 100 − x/29 (per t).
    # λ·1000 = 100 − λ/29  ⇒  λ = 100 / (1000 + 1/29) per t(128).
    lam = cap_region_capacity(T, 128, 100, 1, 1000)
    assert lam == pytest.approx(100 / (1000 + 1 / 29) / (C_S + A_S), rel=1e-9)


def test_without_a_binding_cap_the_region_is_the_token_triangle():
    v = cap_region_vertices(T, 512, 10_000)
    cap = token_capacity(T, 512)
    np.testing.assert_allclose(v, [[0, cap], [cap, 0]], rtol=1e-12)
    assert cap_region_capacity(T, 512, 10_000, 100, 100) == pytest.approx(cap / 200, rel=1e-9)


@given(p=st.floats(1, 5000), d=st.floats(1, 2000), b_max=st.integers(64, 700), b0=st.sampled_from([32, 64, 128]))
def test_cap_region_never_exceeds_best_token_rate(p, d, b_max, b0):
    t = staircase(0.01, 0.03, b0)
    lam_cap = cap_region_capacity(t, b_max, 16, p, d)
    lam_free = best_token_rate(t, b_max)[1] / (p + d)
    assert lam_cap <= lam_free * (1 + 1e-9)


def test_multiclass_load_and_scale():
    classes = [ClassLoad(2.0, 100, 50), ClassLoad(1.0, 1000, 10)]
    # 2·150 + 1·1010 = 1310 tokens/s
    assert multiclass_token_load(classes) == pytest.approx(1310)
    theta = multiclass_capacity_scale(classes, T, 512)
    assert theta == pytest.approx(token_capacity(T, 512) / 1310)
    scaled = [ClassLoad(1.05 * theta * c.rate_rps, c.mean_prefill_tokens, c.mean_decode_tokens) for c in classes]
    s = multiclass_fluid_slope(scaled, T, 512)
    assert s.tokens_per_s == pytest.approx(0.05 * token_capacity(T, 512), rel=1e-9)
    assert multiclass_fluid_slope(classes, T, 512).tokens_per_s == 0.0


def test_scalar_only_callable_is_accepted():
    def t_scalar(b: float) -> float:
        return 0.01 + 0.03 * math.ceil(b / 128)

    assert token_capacity(t_scalar, 512) == pytest.approx(512 / 0.13)


def test_bad_budget_rejected():
    with pytest.raises(ValueError):
        token_capacity(T, 0)
    with pytest.raises(ValueError):
        cap_region_vertices(T, 128, 0)


def test_cost_model_is_accepted_as_batch_time():
    """A `CostModel` (here a staircase test double over BatchShape) gives the same capacity as t(b)."""
    from dataclasses import dataclass

    from llmsched.sim.cost.base import BatchShape

    @dataclass(frozen=True)
    class StairModel:
        name: str = "stair"

        def iteration_times(self, s: BatchShape) -> np.ndarray:
            return C_S + A_S * np.ceil(s.total_tokens / B0)

    assert token_capacity(StairModel(), 512) == pytest.approx(token_capacity(T, 512), rel=1e-15)
    assert best_token_rate(StairModel(), 520) == best_token_rate(T, 520)
    np.testing.assert_allclose(cap_region_vertices(StairModel(), 128, 100), cap_region_vertices(T, 128, 100))
