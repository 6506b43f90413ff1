"""The stability guards under "reserve" admission: DLPM's deficit horizon, VTC's generic guard,
and LPM/DFS-weight, which need none.

A plan that stops at a misfit must ask again before the iteration where step mode would decide
differently. DLPM's deficits fall as running requests decode: once the misfit client's deficit
reaches zero, the pass goes past it and may admit a request left behind, or grant quanta
(`DLPM._guard`, `DLPM._deficit_horizon`). VTC asks every iteration while a request left behind
fits (`Admitter.guard`). LPM's and DFS-weight's orders move only at change points. Directed
scenarios (UnitCost: one second per iteration; block size 1, so reservations are token counts):

* t=0: client 0's `a1` (4 prompt, 20 output tokens) is admitted and reserves 24 of 40 tokens;
* t=0.5: client 0's `a2` (30 + 10) arrives: it cannot fit while a1 runs (24 + 40 > 40);
* t=0.6: client 1's `b1` arrives, small enough to fit (4 tokens).

With a quantum of 10 service units and 2 per output token, client 0's deficit falls to zero five
iterations after a2's arrival refreshed it, so step mode admits b1 then.
"""

from __future__ import annotations

from itertools import islice
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching import _fair_common
from llmsched.policies.batching._fair_common import GUARD_LOOKAHEAD
from llmsched.policies.batching.dlpm import DLPM
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload.core import Workload
from llmsched.testing import UnitCost, fast_equals_step


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
    grows past client 1's lifted one; DLPM: client 0's deficit is spent). DLPM's guard here is its
    deficit horizon (`DLPM._guard`): "never falls" makes it a no-op."""
    w, cluster = _case(b1_output_tokens=2) if batching == "dlpm" else _vtc_case()
    b1 = 2 if batching == "dlpm" else 3
    _fast, step = fast_equals_step(w, cluster, UnitCost())
    a1_finish_s = float(step.requests["finish_s"].iloc[0])
    assert _first_token_s(step, b1) < a1_finish_s  # admitted mid-segment, while a1 still runs
    no_guard = mock.patch.object(_fair_common.Admitter, "guard", lambda self, b, view, left_behind: None)
    no_horizon = mock.patch.object(DLPM, "_deficit_horizon", lambda self, b, view, u: None)
    with no_guard, no_horizon, pytest.raises(AssertionError):
        fast_equals_step(w, cluster, UnitCost())


def _count_plans(w: Workload, cluster: ClusterSpec, policy_class: type = DLPM) -> int:
    """Plans `policy_class.plan` makes in a fast-forward run, after checking that the run equals
    step mode."""
    from llmsched.sim.run import simulate

    fast_equals_step(w, cluster, UnitCost())
    calls = 0
    real = policy_class.plan

    def counting(self, view):
        nonlocal calls
        calls += 1
        return real(self, view)

    with mock.patch.object(policy_class, "plan", counting):
        simulate(w, cluster, mode="fast", cost_models=lambda _spec: UnitCost())
    return calls


def test_dlpm_asks_again_at_its_deficit_horizon_not_every_iteration():
    """In the directed case DLPM asks again when client 0's deficit is spent (five iterations
    on) rather than each iteration, and stays equal to step mode; asking every iteration at a
    misfit (sound, and what step mode does) makes more plans for the same run."""
    w, cluster = _case(b1_output_tokens=2)
    sharp = _count_plans(w, cluster)

    def every_iteration(self, b, view, u, admitted, refilled):
        b.replan_each_iteration = True

    with mock.patch.object(DLPM, "_guard", every_iteration):
        every = _count_plans(w, cluster)
    assert sharp < every


def _generic_guard(self, b, view, u, admitted, refilled):
    """What DLPM did before its own guard: `Admitter.guard` (ask every iteration while a request
    left behind fits), the misfit itself included in the look-ahead (it does not fit)."""
    self.admitter.guard(b, view, islice(self.queue.lpm(view, admitted), GUARD_LOOKAHEAD))


def test_dlpm_refills_where_step_mode_does():
    """A regression found by sweeping the overloaded-fairness workload with tight KV memory
    (benchmarks/fairness_overload.py's, seed 5, 30 s of arrivals at 1.5x capacity, 12,000 KV
    tokens): with nothing left behind fitting, step mode still refills every client's quantum at
    the iteration where the last positive deficit reaches zero, and that grant changes later
    admissions. The generic guard never asked again there, so fast-forward granted later, once,
    and admitted differently (negative control); DLPM's horizon asks at that iteration."""
    from benchmarks.fairness_overload import GPU, MODEL, capacity_rps, workload

    w = workload(5, 30.0, 1.5 * capacity_rps(0))
    cluster = ClusterSpec(instances=(InstanceSpec(model=MODEL, gpu=GPU, batching="dlpm", kv_capacity_tokens=12000),))
    from llmsched.sim.run import simulate

    def same(cluster):
        from llmsched.testing import assert_same_run

        assert_same_run(simulate(w, cluster, seed=5, mode="fast"), simulate(w, cluster, seed=5, mode="step"))

    same(cluster)
    with mock.patch.object(DLPM, "_guard", _generic_guard), pytest.raises(AssertionError):
        same(cluster)


@pytest.mark.parametrize("shift", [1, -1])
def test_negative_control_a_horizon_off_by_one_breaks_fast_equals_step(shift):
    """One iteration late, fast-forward admits b1 after step mode does; one early is harmless (an
    extra plan) unless it reaches 0, which the engine refuses. Late must be caught."""
    w, cluster = _case(b1_output_tokens=2)
    real = DLPM._deficit_horizon

    def shifted(self, b, view, u):
        h = real(self, b, view, u)
        return None if h is None else max(1, h + shift)

    with mock.patch.object(DLPM, "_deficit_horizon", shifted):
        if shift > 0:
            with pytest.raises(AssertionError):
                fast_equals_step(w, cluster, UnitCost())
        else:
            fast_equals_step(w, cluster, UnitCost())


class _ServiceView:
    """One client's counters, as `DLPM.deficit` reads them; every decode belongs to client 0."""

    def __init__(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> None:
        self.counters = (input_tokens, cached_tokens, output_tokens)

    def input_service(self, client: int) -> int:
        return self.counters[0]

    def cached_input_service(self, client: int) -> int:
        return self.counters[1]

    def output_service(self, client: int) -> int:
        return self.counters[2]

    def client(self, rid: int) -> int:
        return 0


class _Decodes:
    def __init__(self, n: int) -> None:
        self.decodes = list(range(n))


@settings(max_examples=300, deadline=None)
@given(w_p=st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.7]), w_q=st.sampled_from([0.1, 0.3, 1.0, 2.0, 3.3]),
       decodes=st.integers(1, 6), input_tokens=st.integers(0, 10**9), cached=st.integers(0, 10**9),
       output_tokens=st.integers(0, 10**9), steps=st.integers(0, 300), nudge=st.sampled_from([-1.0, 0.0, 1.0]))
def test_deficit_horizon_is_the_first_iteration_at_or_below_zero(w_p, w_q, decodes, input_tokens, cached,
                                                                 output_tokens, steps, nudge):
    """`_deficit_horizon` against walking the iterations one by one with `deficit`, for grants
    placed on and one ulp either side of an exact multiple of a decode iteration's service."""
    policy = DLPM(quantum=10.0, input_weight=w_p, output_weight=w_q, admission="engine")
    view = _ServiceView(input_tokens, min(cached, input_tokens), output_tokens)
    service = policy.service(view, 0)  # type: ignore[arg-type]
    granted = service + steps * w_q * decodes
    granted = float(np.nextafter(granted, np.inf * nudge)) if nudge else granted
    policy.granted[0] = granted
    if policy.deficit(view, 0) <= 0:  # type: ignore[arg-type]
        return  # DLPM asks only for a client whose deficit is positive
    want = next(j for j in range(1, 10**6) if policy.deficit(view, 0, j * decodes) <= 0)  # type: ignore[arg-type]
    assert policy._deficit_horizon(_Decodes(decodes), view, 0) == want  # type: ignore[arg-type]


def test_deficit_horizon_never_without_decodes_or_an_infinite_quantum():
    policy = DLPM(quantum=10.0, admission="engine")
    view = _ServiceView(100, 0, 50)
    policy.granted[0] = policy.service(view, 0) + 5.0  # type: ignore[arg-type]
    assert policy._deficit_horizon(_Decodes(0), view, 0) is None  # type: ignore[arg-type]
    assert policy._deficit_horizon(_Decodes(1), view, 0) is not None  # type: ignore[arg-type]
    policy.granted[0] = float("inf")
    assert policy._deficit_horizon(_Decodes(1), view, 0) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("batching", ["lpm", "dfs-weight"])
def test_counter_free_orders_need_no_guard(batching):
    """LPM and DFS-weight order by the prefix cache alone, which moves only at change points: at
    a2's misfit, b1 fits but stays behind a2 until a1 finishes (in step mode too), so their plans
    skip the guard and still equal step mode, with fewer plans than the guard's every-iteration
    asking makes."""
    from llmsched.policies import registry
    from llmsched.policies.batching.lpm import _Ordered

    w, _ = _case(b1_output_tokens=2)
    cluster = _cluster(batching, {})
    _fast, step = fast_equals_step(w, cluster, UnitCost())
    assert _first_token_s(step, 2) > float(step.requests["finish_s"].iloc[0])  # b1 waits for a1's finish
    cls = registry.get(registry.BATCHING, batching)
    assert cls.order_moves_only_at_change_points
    without = _count_plans(w, cluster, _Ordered)
    with mock.patch.object(cls, "order_moves_only_at_change_points", False):
        guarded = _count_plans(w, cluster, _Ordered)  # also equal to step mode: the guard changes no decision here
    assert without < guarded
