"""SCLS slice-level scheduling: the engine's generation slices, the DP batcher, the estimator, SLS's
reservation, the offloader, parameter validation, invariants and fast == step with slices."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching.scls import SCLS, SliceTimeModel, dp_batches, ils_request_cap
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.errors import InputError
from llmsched.sim.run import simulate
from tests.sim.helpers import LinearCost, UnitCost, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads


def _one(batching="scls", params=(), kv=10_000, block=1, count=1, router="round-robin", router_params=()):
    return ClusterSpec(instances=(InstanceSpec(batching=batching, batching_params=params, kv_capacity_tokens=kv,
                                               block_size=block, count=count, prefix_cache=False),),
                       router=router, router_params=router_params)


# ------------------------------------------------------------------ the engine's generation slices
def test_slices_drop_kv_and_recompute_prompt_plus_generated():
    """One request, prompt 10, output 10, slice 4, every iteration 1 s (UnitCost).
    Slice 1: prefill (10 tokens) ends t=1 with token 1; decodes end t=2,3,4 -> 4 tokens: slice over.
    Slice 2 (routed again at t=4, KV dropped): prefill of 10 + 4 = 14 tokens ends t=5 (token 5),
    decodes t=6,7,8 -> 8 tokens. Slice 3: prefill of 18 tokens ends t=9 (token 9), decode t=10
    -> 10 tokens = output: finished at t=10 (finishing wins over the slice end at 12)."""
    w = workload([0.0], [10], [10])
    fast, _ = fast_equals_step(w, _one(params=(("slice_tokens", 4),)), UnitCost())
    req = fast.requests.iloc[0]
    assert req["first_token_s"] == 1.0 and req["finish_s"] == 10.0
    assert req["generated_tokens"] == 10 and req["preemptions"] == 0
    assert fast.summary["slices_ended"] == 2
    prefills = fast.timeline.loc[fast.timeline["prefill_tokens"] > 0, ["time_s", "prefill_tokens"]]
    assert prefills.values.tolist() == [[0.0, 10], [4.0, 14], [8.0, 18]]
    assert req["tbt_max_s"] == 1.0  # the re-prefill is one iteration after the slice's last token


def test_a_static_batch_admits_nobody_mid_slice_and_returns_go_to_the_tail():
    """A (prompt 5, out 2) and B (5, 6) at t=0, C (5, 1) at t=0.5; slice 3; UnitCost.
    UnitCost makes every batch cost the same, so the DP puts A and B in one batch.
    t=1: A, B prefilled (token 1 each). C arrives mid-slice and waits (static batch).
    t=2: A's 2nd token: A done; B at 2. t=3: B at 3 = its slice: B leaves, KV dropped.
    At t=3 the instance plans before B is routed back (a later event at the same time): C alone.
    t=4: C prefilled, done (1 token). t=4..: B's 2nd slice: prefill of 5 + 3 = 8 tokens -> token 4
    at t=5, decodes t=6 (5), t=7 (6 = output): B done at 7."""
    w = workload([0.0, 0.0, 0.5], [5, 5, 5], [2, 6, 1])
    fast, _ = fast_equals_step(w, _one(params=(("slice_tokens", 3),)), UnitCost())
    assert fast.requests["finish_s"].tolist() == [2.0, 7.0, 4.0]
    assert fast.summary["slices_ended"] == 1
    rows = fast.timeline[["time_s", "prefill_tokens", "batch_requests"]].values.tolist()
    assert rows[0] == [0.0, 10, 2] and [3.0, 5, 1] in rows and [4.0, 8, 1] in rows


def test_one_token_slices_end_with_their_prefill():
    """slice_tokens=1: every slice is a prefill; output 3 takes three prefills of 4, 5, 6 tokens
    (UnitCost: tokens at t=1, 2, 3)."""
    w = workload([0.0], [4], [3])
    fast, _ = fast_equals_step(w, _one(params=(("slice_tokens", 1),)), UnitCost())
    assert fast.requests["finish_s"].tolist() == [3.0]
    assert fast.timeline["prefill_tokens"].tolist() == [4, 5, 6]
    assert fast.summary["slices_ended"] == 2


def test_sls_reserves_the_maximal_generation():
    """SLS with max generation 100, KV 400 tokens in blocks of 4 (100 blocks): a request of 50
    prompt tokens reserves ceil((50 + 100) / 4) = 38 blocks, so 100 // 38 = 2 per batch; the third
    request waits for the whole batch (run to completion, longest output 5): UnitCost, batch 1
    runs t=0..5, batch 2 prefills at t=5."""
    w = workload([0.0, 0.0, 0.0], [50, 50, 50], [3, 5, 2])
    fast, _ = fast_equals_step(w, _one("sls", (("max_generation_tokens", 100),), kv=400, block=4), UnitCost())
    assert fast.requests["finish_s"].tolist() == [3.0, 5.0, 7.0]
    assert fast.timeline["batch_requests"].iloc[0] == 2
    assert "slices_ended" not in fast.summary


# ------------------------------------------------------------------ invalid tokens of static batches
def test_finished_requests_decode_invalid_tokens_until_the_batch_ends():
    """SLS batch of A (prompt 4, output 2) and B (4, 5); LinearCost t = 1 + decodes + 0.5 x context.
    t=0: both prefill (context 4 + 4): 1 + 4 = 5. t=5: decodes A, B at context 4 + 4: 1 + 2 + 4 = 7
    -> t=12, A has 2 tokens: done. B needs 3 more decodes. With decode_until_batch_ends A's slot
    keeps decoding at context 5, 6, 7 beside B's 5, 6, 7: 1 + 2 + 5 = 8, 9, 10 -> B done at 39, and
    3 invalid tokens. Without it (negative control): 1 + 1 + 2.5 = 4.5, 5, 5.5 -> B done at 27."""
    w = workload([0.0, 0.0], [4, 4], [2, 5])
    cost = LinearCost(a=1.0, b=0.0, c=1.0, d=0.5)
    base = _one("sls", (("max_generation_tokens", 100),))
    held = dataclasses.replace(base, instances=(dataclasses.replace(base.instances[0], decode_until_batch_ends=True),))
    fast, _ = fast_equals_step(w, held, cost)
    assert fast.requests["finish_s"].tolist() == [12.0, 39.0]
    assert fast.summary["invalid_tokens"] == 3
    free, _ = fast_equals_step(w, base, cost)
    assert free.requests["finish_s"].tolist() == [12.0, 27.0]
    assert "invalid_tokens" not in free.summary


def test_invalid_tokens_end_with_the_slice():
    """The slice example above (A 2 tokens, B 6, C 1 arriving mid-slice; slice 3; UnitCost) with
    decode_until_batch_ends: A's slot decodes one invalid token (B's 3rd token at t=3), and the
    batch ends with B's slice, so C's batch and B's second slice carry none: 1 invalid token.
    UnitCost prices every iteration alike, so the finish times are the ones without it."""
    w = workload([0.0, 0.0, 0.5], [5, 5, 5], [2, 6, 1])
    base = _one(params=(("slice_tokens", 3),))
    held = dataclasses.replace(base, instances=(dataclasses.replace(base.instances[0], decode_until_batch_ends=True),))
    fast, _ = fast_equals_step(w, held, UnitCost())
    assert fast.requests["finish_s"].tolist() == [2.0, 7.0, 4.0]
    assert fast.summary["invalid_tokens"] == 1


# ------------------------------------------------------------------ the batcher and the estimator
def test_dp_batches_hand_example():
    """slice_time(n, L) = 10 + n*L (a fixed cost per batch plus padded work), lengths 1, 2, 100:
    {1,2,100}: 10 + 300 = 310; {1,2}{100}: 14 + 110 = 124; {1}{2}{100}: 11 + 12 + 110 = 133;
    {1}{2,100}: 11 + 210 = 221. Best: [0, 2) and [2, 3)."""
    cost = lambda n, length: 10.0 + n * length  # noqa: E731
    assert dp_batches(np.array([1, 2, 100]), np.array([3, 3, 3]), cost) == [(0, 2), (2, 3)]
    # a KV bound of 1 request per batch forces singletons
    assert dp_batches(np.array([1, 2, 100]), np.array([1, 1, 1]), cost) == [(0, 1), (1, 2), (2, 3)]
    assert dp_batches(np.array([], dtype=np.int64), np.array([], dtype=np.int64), cost) == []


def test_estimator_recovers_an_affine_cost_exactly():
    """LinearCost a + b·prefill + c·decode + d·context. A prefill of N prompts of L tokens has
    prefill = N·L and context = N·L: a + (b + d)·N·L, so p = (b + d, 0, 0, a). N decodes at context
    l: a + c·N + d·N·l, so d = (d, c, 0, a)."""
    c = LinearCost(a=0.01, b=1e-4, c=2e-4, d=1e-7)
    m = SliceTimeModel.fit(c)
    np.testing.assert_allclose(m.p, (1e-4 + 1e-7, 0, 0, 0.01), atol=1e-12)
    np.testing.assert_allclose(m.d, (1e-7, 2e-4, 0, 0.01), atol=1e-12)
    # the closed-form slice time equals the explicit sum: prefill + decodes at L+1 .. L+S-1
    n, length, s = 7, 40, 5
    explicit = m.prefill_s(n, length) + sum(m.decode_s(n, length + i) for i in range(1, s))
    assert m.slice_s(n, length, s) == pytest.approx(explicit, rel=1e-12)
    one = c.iteration_times(BatchShape.single(decode_tokens=n, decode_context_tokens=n * length))[0]
    assert m.decode_s(n, length) == pytest.approx(one, rel=1e-9)


def test_ils_cap():
    # 100,000 KV tokens / (1,024 input + 1,024 generation) = 48.8 -> 48 requests
    assert ils_request_cap(100_000, 1024, 1024) == 48
    assert ils_request_cap(10, 1024, 1024) == 1


# ------------------------------------------------------------------ the offloader
def test_offloader_sends_work_where_it_is_expected_to_finish_first():
    """Requests at t=0 of 2,000 then 20 input tokens go to instances 0 and 1 (both idle, ties to the
    lowest index, then the one with the earlier expected completion). A third of 20 tokens goes to
    instance 1: its expected completion (one short request's share) is earlier than instance 0's
    (one long request's share). Round-robin would send it to instance 0 (negative control)."""
    w = workload([0.0, 0.0, 0.0], [2000, 20, 20], [5, 5, 5])  # one slice each: no re-routing
    c = _one(params=(("slice_tokens", 8),), count=2, router="scls", router_params=(("slice_tokens", 8),))
    fast, _ = fast_equals_step(w, c, LinearCost())
    assert fast.requests["instance"].tolist() == [0, 1, 1]
    rr, _ = fast_equals_step(w, _one(params=(("slice_tokens", 8),), count=2), LinearCost())
    assert rr.requests["instance"].tolist() != [0, 1, 1]


# ------------------------------------------------------------------ bad parameters
@pytest.mark.parametrize("family,name,param,value", [
    ("batching", "scls", "slice_tokens", "-5"), ("batching", "scls", "slice_tokens", "0"),
    ("batching", "scls", "slice_tokens", "2.5"), ("batching", "scls", "batcher", "lifo"),
    ("batching", "sls", "max_generation_tokens", "0"), ("router", "scls", "slice_tokens", "-1"),
])
def test_bad_parameters_are_one_line_exit_2(family, name, param, value):
    proc = subprocess.run([sys.executable, "-m", "llmsched", "simulate", "--workload", "poisson", "--num-requests",
                           "3", "--no-progress", f"--{family}", name, f"--{family}-param", f"{param}={value}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and param in lines[0] and "Traceback" not in proc.stderr


def test_bad_plan_slice_is_refused_by_the_engine():
    class Broken(SCLS):
        def plan_slice_tokens(self):
            return 0

    from llmsched.policies import registry
    registry.register(registry.BATCHING, "test-broken-slice")(Broken)
    try:
        with pytest.raises(ValueError, match="slice_tokens must be >= 1"):
            simulate(workload([0.0], [4], [3]), _one("test-broken-slice"), cost_models=lambda s: UnitCost())
    finally:
        registry.unregister(registry.BATCHING, "test-broken-slice")


def test_constructor_validation_names_the_field():
    with pytest.raises(ValueError, match="slice_tokens"):
        SCLS(slice_tokens=True, cost_model=UnitCost())
    with pytest.raises(ValueError, match="cost model"):
        SCLS()
    with pytest.raises(InputError):
        simulate(workload([0.0], [4], [3]), _one(params=(("slice_tokens", -3),)), cost_models=lambda s: UnitCost())


# ------------------------------------------------------------------ invariants and fast == step
@st.composite
def slice_scenarios(draw):
    w = draw(workloads())
    cluster = draw(clusters(w, ["scls", "sls"], ["scls", "round-robin", "least-outstanding-tokens"]))
    s = draw(st.sampled_from([1, 2, 3, 8, 64]))
    batcher = draw(st.sampled_from(["dp", "fcfs"]))
    insts = tuple(dataclasses.replace(i, batching_params=(("batcher", batcher), ("slice_tokens", s)))
                  if i.batching == "scls" else
                  dataclasses.replace(i, batching_params=(("max_generation_tokens", draw(st.sampled_from([1, 40]))),))
                  for i in cluster.instances)
    router_params = (("slice_tokens", s),) if cluster.router == "scls" else ()
    held = draw(st.booleans())  # static batches' invalid tokens (decode_until_batch_ends)
    insts = tuple(dataclasses.replace(i, decode_until_batch_ends=held) for i in insts)
    cluster = dataclasses.replace(cluster, instances=insts, router_params=router_params)
    return w, cluster, draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(slice_scenarios())
def test_fast_forward_equals_step_with_slices(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)


@settings(max_examples=100, deadline=None)
@given(slice_scenarios())
def test_invariants_with_slices(scenario):
    """Each request finishes exactly once with all its tokens, KV stays within capacity, and the
    clock never goes backwards, with requests leaving and coming back every slice."""
    w, cluster, cost, seed = scenario
    res = simulate(w, cluster, seed=seed, cost_models=lambda s: cost)
    req = res.requests
    finished = req["finish_s"].notna()
    assert (finished == ~req["rejected"]).all()
    assert (req.loc[finished, "generated_tokens"] == req.loc[finished, "output_tokens"]).all()
    assert req["request_id"].is_unique
    done = req[finished]
    assert (done["first_token_s"] > done["dispatch_s"]).all() and (done["finish_s"] >= done["first_token_s"]).all()
    tl = res.timeline
    assert (tl["kv_blocks_used"] <= tl["kv_blocks_total"]).all()
    for _, g in tl.groupby("instance"):
        assert (np.diff(g["time_s"].to_numpy()) >= 0).all()
        assert (g["run_end_s"].to_numpy() >= g["time_s"].to_numpy()).all()
    # slices end only under scls; an sls-only cluster never ends one
    if all(i.batching == "sls" for i in cluster.instances):
        assert "slices_ended" not in res.summary
