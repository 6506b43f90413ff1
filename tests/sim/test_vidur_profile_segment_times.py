"""The Vidur side by side's cost model: `VidurProfileCost.segment_times` (the engine's per-segment
path) gives bit for bit what `iteration_times` gives on the segment's affine `BatchShape`, on its
scalar path (n == 1, Python floats), its per-iteration float path
(short segments) and its array path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import vidur_side_by_side
from benchmarks.vidur_side_by_side import vidur_profile_cost
from llmsched.sim.instance import _affine_shape

COST = vidur_profile_cost()
POINTS = [float(x) for x in COST.linear.xs]


def _layout(chunks: list[tuple[int, int]], k: int, ctx_each: int) -> tuple[int, ...]:
    """The segment layout `Instance._layout` builds for prefill chunks (size, past) and k decodes."""
    sum_c = sum(c for c, _ in chunks)
    return (sum_c, sum(c * c for c, _ in chunks), sum(c * p + c * (c + 1) // 2 for c, p in chunks),
            sum(p + c for c, p in chunks), k, k * ctx_each, k + len(chunks))


def _check(layout: tuple[int, ...], n: int) -> None:
    want = np.asarray(COST.iteration_times(_affine_shape(*layout, n)), dtype=np.float64)
    times = COST.segment_times(*layout, n)
    if n == 1:
        assert isinstance(times, float)
    got = np.atleast_1d(np.asarray(times, dtype=np.float64))
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (layout, n, got - want)
    # negative control: the comparison sees a one-ulp change of any one iteration
    bumped = got.copy()
    bumped[len(bumped) // 2] = np.nextafter(bumped[len(bumped) // 2], np.inf)
    assert bumped.tobytes() != want.tobytes()


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 4096)), max_size=4),
       k=st.integers(0, 2048), ctx_each=st.integers(0, 4096), n=st.integers(1, 40))
def test_segment_times_equal_iteration_times(chunks, k, ctx_each, n):
    """Drawn layouts, token counts from 0 to beyond the curves' last point (4096 tokens)."""
    _check(_layout(chunks, k, ctx_each), n)


@settings(max_examples=200, deadline=None)
@given(x=st.sampled_from(POINTS), split=st.floats(0, 1), past=st.integers(0, 4096), ctx_each=st.integers(0, 4096),
       n=st.integers(1, 40))
def test_segment_times_on_the_measured_points(x, split, past, ctx_each, n):
    """Token counts exactly on a measured point of the curves (np.interp returns the point's y)."""
    pt = int(x * split)
    k = int(x) - pt
    _check(_layout([(pt, past)] if pt else [], k, ctx_each), n)


@pytest.mark.parametrize("small", [(0, 0), (40, 40)], ids=["arrays-only", "floats-only"])
def test_both_segment_paths(monkeypatch, small):
    """Every n from 2 to 40 on the array path alone and on the per-iteration float path alone."""
    monkeypatch.setattr(vidur_side_by_side, "SMALL_SEGMENT", small)
    for chunks, k, ctx_each in (([(512, 0)], 0, 0), ([], 37, 1500), ([(300, 2000), (17, 5)], 90, 700),
                                ([(4000, 3000)], 2000, 4000)):
        for n in range(2, 41):
            _check(_layout(chunks, k, ctx_each), n)
