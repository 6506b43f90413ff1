"""The typed hot path: the roofline's segment layout and the chunked run log against their references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim import runlog
from llmsched.sim.cost.roofline import RooflineCost
from llmsched.sim.instance import _affine_shape

COSTS = [RooflineCost.create("llama-2-7b", "a100-80gb", tp) for tp in (1, 2, 4)]


@settings(max_examples=300, deadline=None)
@given(cost=st.sampled_from(COSTS), chunks=st.lists(st.tuples(st.integers(1, 512), st.integers(0, 4096)), max_size=4),
       k=st.integers(0, 256), ctx_each=st.integers(0, 4096), n=st.integers(1, 40))
def test_segment_times_equal_the_vector_path(cost, chunks, k, ctx_each, n):
    """Bit for bit: the segment path computes the same IEEE operations as `components`."""
    sum_c = sum(c for c, _ in chunks)
    layout = (sum_c, sum(c * c for c, _ in chunks), sum(c * p + c * (c + 1) // 2 for c, p in chunks),
              sum(p + c for c, p in chunks), k, k * ctx_each, k + len(chunks))
    want = cost.components(_affine_shape(*layout, n))["total"]
    got = np.atleast_1d(np.asarray(cost.segment_times(*layout, n), dtype=np.float64))
    assert got.tobytes() == want.tobytes()
    # negative control: the comparison sees a one-ulp change
    assert np.nextafter(got, np.inf).tobytes() != want.tobytes()


def test_chunked_columns_equal_one_list(monkeypatch):
    """Rows moved into array chunks come back as one list would: values, dtypes, late overwrites."""
    monkeypatch.setattr(runlog, "CHUNK_ROWS", 3)
    cols = runlog._Columns(("a", "b"))
    ref: dict[str, list] = {"a": [], "b": []}
    for i in range(10):
        for c, v in (("a", i), ("b", i * 0.5 if i == 7 else i)):
            cols.lists[c].append(v)
            ref[c].append(v)
        if len(cols.lists["a"]) >= runlog.CHUNK_ROWS:
            cols.flush()
    cols.set("a", 1, 42)
    ref["a"][1] = 42
    cols.set("a", 2, 2.5)  # a float into an int chunk upcasts, as a list would
    ref["a"][2] = 2.5
    got = cols.arrays()
    for c in ("a", "b"):
        want = np.asarray(ref[c])
        assert got[c].dtype == want.dtype and np.array_equal(got[c], want)
    assert len(cols) == 10


def test_chunked_log_leaves_a_run_unchanged(monkeypatch):
    """A run whose log moves rows into chunks every few rows records the same tables."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec
    from llmsched.sim.run import simulate
    from tests.sim.helpers import assert_same_run, workload

    rng = np.random.default_rng(3)
    n = 60
    w = workload(np.sort(rng.uniform(0, 5, n)), rng.integers(1, 400, n), rng.integers(1, 60, n),
                 clients=rng.integers(0, 3, n))
    cluster = ClusterSpec(instances=(InstanceSpec(model="llama-2-7b", gpu="a100-80gb", batching="sarathi", count=2,
                                                  kv_capacity_tokens=4096),), router="round-robin")
    whole = simulate(w, cluster)
    monkeypatch.setattr(runlog, "CHUNK_ROWS", 7)
    chunked = simulate(w, cluster)
    assert_same_run(whole, chunked)
    assert len(whole.service) > 7 and len(whole.timeline) > 7
