"""The typed hot path: the roofline's segment layout and the typed run log against their references."""

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


def test_typed_columns_keep_their_types():
    """Int columns take ints and refuse floats (no silent truncation); float columns hold floats;
    a late overwrite lands; arrays() gives int64/float64 copies, float64 when empty."""
    import pytest

    cols = runlog._Columns(("seq", "time_s"))
    for i in range(5):
        cols.columns["seq"].append(i)
        cols.columns["time_s"].append(i)  # an int into a float column is stored as a float
    cols.columns["seq"][1] = 42
    with pytest.raises(TypeError):  # negative control: a float into an int column fails loudly
        cols.columns["seq"].append(2.5)
    got = cols.arrays()
    assert got["seq"].dtype == np.int64 and got["seq"].tolist() == [0, 42, 2, 3, 4]
    assert got["time_s"].dtype == np.float64 and got["time_s"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    cols.columns["seq"].append(5)  # the copies do not pin the columns' buffers
    assert len(cols) == 6 and got["seq"].tolist() == [0, 42, 2, 3, 4]
    assert runlog._Columns(("seq",)).arrays()["seq"].dtype == np.float64


class _ListColumns:
    """The log's columns as plain lists converted with np.asarray at the end (dtype from the values:
    int64 if every value is an int, float64 otherwise): the reference for the typed columns."""

    def __init__(self, names):
        self.columns = {c: [] for c in names}

    def __len__(self):
        return len(next(iter(self.columns.values())))

    def arrays(self):
        return {c: np.asarray(v) for c, v in self.columns.items()}


def test_typed_log_equals_list_log(monkeypatch):
    """A run logged into typed columns records the same tables, values and dtypes, as one logged
    into lists, with several clients and instances (service and timeline rows interleaved)."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec
    from llmsched.sim.run import simulate
    from tests.sim.helpers import assert_same_run, workload

    rng = np.random.default_rng(3)
    n = 60
    w = workload(np.sort(rng.uniform(0, 5, n)), rng.integers(1, 400, n), rng.integers(1, 60, n),
                 clients=rng.integers(0, 3, n))
    cluster = ClusterSpec(instances=(InstanceSpec(model="llama-2-7b", gpu="a100-80gb", batching="sarathi", count=2,
                                                  kv_capacity_tokens=4096),), router="round-robin")
    typed = simulate(w, cluster)
    monkeypatch.setattr(runlog, "_Columns", _ListColumns)
    listed = simulate(w, cluster)
    assert_same_run(typed, listed)
    assert len(typed.service) > 7 and len(typed.timeline) > 7
