"""The stability guard under "reserve" admission (DLPM's and VTC's), and its cheap skip (`Admitter.none_fits` over the
waiting queue's smallest reservation, `ClientQueues.smallest`).

A plan that stops at a misfit must ask again every iteration when a request left behind fits now:
DLPM's deficits move as running requests decode, so a later iteration may drop the misfit's client
and admit the one behind. The guard is skipped only when even the smallest waiting reservation does
not fit, where `fits` refuses every waiting request. Directed scenarios (UnitCost: one second per
iteration; block size 1, so reservations are token counts):

* t=0: client 0's `a1` (4 prompt, 20 output tokens) is admitted and reserves 24 of 40 tokens;
* t=0.5: client 0's `a2` (30 + 10) arrives: it cannot fit while a1 runs (24 + 40 > 40);
* t=0.6: client 1's `b1` arrives, small enough to fit (4 tokens) or, in the second case, not (20).

With a quantum of 10 service units and 2 per output token, client 0's deficit falls to zero five
iterations after a2's arrival refreshed it, so step mode admits b1 then.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching import _fair_common
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload.core import Workload
from llmsched.testing import UnitCost, fast_equals_step
from tests.policies.test_incremental_order import _QueueView


def _cluster(batching: str, params: dict) -> ClusterSpec:
    spec = InstanceSpec(batching=batching, kv_capacity_tokens=40, block_size=1, token_budget=64,
                        batching_params=freeze_params({**params, "admission": "reserve"}))
    return ClusterSpec(instances=(spec,))


def _case(b1_output_tokens: int) -> tuple[Workload, ClusterSpec]:
    """DLPM: a1, a2 (client 0) and b1 (client 1), as in the module docstring; b1 is request 2."""
    w = Workload(arrival_s=[0.0, 0.5, 0.6], client=[0, 0, 1], prompt_tokens=[4, 30, 2],
                 output_tokens=[20, 10, b1_output_tokens], client_weight=np.ones(2))
    return w, _cluster("dlpm", {"quantum": 10.0})


def _vtc_case() -> tuple[Workload, ClusterSpec]:
    """VTC without counter lift: client 1's earlier b0 (20 + 2 tokens, done by t = 2) leaves its counter at 24; a1 (2 +
    16, client 0) runs from t = 0 to 16; a2 (30 + 10, client 0) arrives at t = 4 and cannot fit; b1
    (2 + 2, client 1, request 3) arrives at t = 4.1 and fits. Client 0's counter (2, plus 2 per
    output token) is the least until it passes 24, some iterations later; step mode then admits b1."""
    w = Workload(arrival_s=[0.0, 0.0, 4.0, 4.1], client=[0, 1, 0, 1], prompt_tokens=[2, 20, 30, 2],
                 output_tokens=[16, 2, 10, 2], client_weight=np.ones(2))
    return w, _cluster("vtc", {"lift": "none"})  # no counter lift: the counters are the service


def _first_token_s(run, rid: int) -> float:
    return float(run.requests.set_index("request_id").loc[rid, "first_token_s"])


def test_a_left_behind_request_that_fits_is_admitted_mid_segment():
    w, cluster = _case(b1_output_tokens=2)
    fast, step = fast_equals_step(w, cluster, UnitCost())
    # b1 goes in while a1 still runs (a1 finishes at 20 s), once client 0's deficit is spent
    assert _first_token_s(step, 2) < float(step.requests["finish_s"].iloc[0]) == 20.0
    assert _first_token_s(fast, 2) == _first_token_s(step, 2)


@pytest.mark.parametrize("batching", ["dlpm", "vtc"])
def test_negative_control_without_the_guard_fast_forward_is_not_step(batching):
    """The guard is what keeps these policies exact: with it a no-op, fast-forward admits b1 only at
    a1's finish while step mode admits it as soon as the counters move (VTC: client 0's counter
    grows past client 1's lifted one; DLPM: client 0's deficit is spent)."""
    w, cluster = _case(b1_output_tokens=2) if batching == "dlpm" else _vtc_case()
    b1 = 2 if batching == "dlpm" else 3
    _fast, step = fast_equals_step(w, cluster, UnitCost())
    a1_finish_s = float(step.requests["finish_s"].iloc[0])
    assert _first_token_s(step, b1) < a1_finish_s  # admitted mid-segment, while a1 still runs
    with mock.patch.object(_fair_common.Admitter, "guard", lambda self, b, view, left_behind: None), \
            pytest.raises(AssertionError):
        fast_equals_step(w, cluster, UnitCost())


def test_nothing_fits_skips_the_guard_and_stays_exact():
    """b1 reserves 22 tokens: with a1's 24 reserved nothing waiting fits, `none_fits` holds (the
    look-ahead is never built) and fast-forward still equals step mode."""
    w, cluster = _case(b1_output_tokens=20)
    calls: list[bool] = []
    real = _fair_common.Admitter.none_fits

    def spy(self, smallest):
        calls.append(real(self, smallest))
        return calls[-1]

    with mock.patch.object(_fair_common.Admitter, "none_fits", spy):
        fast_equals_step(w, cluster, UnitCost())
    assert True in calls  # the skip was taken
    assert _first_token_s(fast_equals_step(w, cluster, UnitCost())[1], 2) > 20  # b1 waits for a1


def test_negative_control_skipping_the_guard_breaks_fast_equals_step():
    """A `none_fits` that always says "nothing fits" drops the guard: fast-forward runs on past
    the iteration where step mode admits b1, and the comparison catches it."""
    w, cluster = _case(b1_output_tokens=2)
    always = mock.patch.object(_fair_common.Admitter, "none_fits", lambda self, smallest: self.mode == "reserve")
    with always, pytest.raises(AssertionError):
        fast_equals_step(w, cluster, UnitCost())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["arrive", "leave", "requeue"]), st.integers(0, 10**6)), max_size=300))
def test_smallest_is_the_least_size_over_the_waiting_requests(ops):
    """`ClientQueues.smallest` against the minimum over `view.waiting`, through arrivals, leaves
    (which compact the heap), requeues at the head and a rebuild; sizes collide often."""
    from llmsched.policies.batching.waiting_queues import ClientQueues

    def size(_view, rid: int) -> int:
        return (rid * 7919) % 13

    view, q, next_rid, left = _QueueView([]), ClientQueues(size), 0, []
    for op, pick in ops:
        if op == "arrive" or not view.waiting:
            view.waiting.append(next_rid)
            q.on_arrival(next_rid, view)  # type: ignore[arg-type]
            next_rid += 1
        elif op == "leave":
            rid = view.waiting.pop(pick % len(view.waiting))
            left.append(rid)
            q.on_leave_queue(rid, view)  # type: ignore[arg-type]
        elif left:
            rid = left.pop()
            view.waiting.insert(0, rid)
            q.on_requeue(rid, view)  # type: ignore[arg-type]
        want = min((size(view, r) for r in view.waiting), default=None)
        assert q.smallest() == want
        assert len(q._by_size) <= 2 * len(view.waiting) + 33  # left requests do not pile up
    q.rebuild(view)  # type: ignore[arg-type]
    assert q.smallest() == min((size(view, r) for r in view.waiting), default=None)
    assert ClientQueues().smallest() is None  # no size kept
