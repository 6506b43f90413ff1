"""MuxServe ADBS as an engine batching policy (`muxserve-adbs`): quotas bind, adaptation moves
quota from an idle client (LLM) to a saturated one, FCFS lets a flooding client starve the other
where ADBS does not, fast-forward equals step, and the shared quota rule agrees with the mesh
simulator's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies import registry
from llmsched.policies.batching.muxserve_adbs import MuxServeADBS
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.run import simulate
from llmsched.theory.kv_quota import adapt_quotas, initial_quotas
from tests.sim import test_invariants as _invariants
from tests.sim.helpers import UnitCost, assert_same_run, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads


def _cluster(batching: str, params: dict | None = None, **kw) -> ClusterSpec:
    spec = dict(batching=batching, batching_params=freeze_params(params or {}), token_budget=2048,
                max_batch_requests=256, block_size=16, kv_capacity_tokens=1600, prefix_cache=False)
    spec.update(kw)
    return ClusterSpec(instances=(InstanceSpec(**spec),))


def _dispatched_by(res, t: float) -> dict[int, int]:
    req = res.requests
    got = req[req["dispatch_s"] <= t].groupby("client").size()
    return {c: int(got.get(c, 0)) for c in (0, 1)}


# Flooding example. KV: 1600 tokens / 16 = 100 blocks; equal shares -> quotas 50 | 50.
# Every request: prompt 144 + output 16 = 160 tokens = 10 quota blocks (9 blocks held at admission).
# Client 0 sends 20 requests at t = 0, client 1 sends 3 at t = 0.5. UnitCost: iterations last 1 s.
FLOOD = workload([0.0] * 20 + [0.5] * 3, [144] * 23, [16] * 23, clients=[0] * 20 + [1] * 3)


def test_quotas_bind_one_flooding_client_cannot_take_the_others_quota():
    """Hand derivation (adaptive=False, fixed quotas 50 | 50):
    t=0: client 0 admits while used + 10 <= 50 -> 5 requests (the 6th would need 60 > 50);
         the token budget (2048 >= 5 x 144) and memory (5 x 9 = 45 of 100 blocks) do not bind.
    t=0.5: client 1's 3 requests arrive mid-iteration; the plan at t=1 admits all 3 (30 <= 50),
         and client 0 stays at 5 (its quota is full until one of its requests finishes).
    So by t=1: 5 of client 0 and 3 of client 1 dispatched; by t=1.5 still 5 | 3."""
    res = simulate(FLOOD, _cluster("muxserve-adbs", {"adaptive": False}), cost_models=lambda s: UnitCost())
    assert _dispatched_by(res, 0.0) == {0: 5, 1: 0}
    assert _dispatched_by(res, 1.0) == {0: 5, 1: 3}
    assert _dispatched_by(res, 1.5) == {0: 5, 1: 3}
    assert res.requests["finish_s"].notna().all()


def test_negative_control_fcfs_lets_the_flooding_client_starve_the_other():
    """Same workload under FCFS: at t=0 client 0 fills memory (admits while its 9 held blocks per
    request fit: 11 x 9 = 99 <= 100), and client 1, queued behind client 0's remaining 9 requests,
    gets nothing by t=1.5 (ADBS gave it 3)."""
    res = simulate(FLOOD, _cluster("fcfs"), cost_models=lambda s: UnitCost())
    by = _dispatched_by(res, 1.5)
    assert by[1] == 0 and by[0] >= 10
    adbs = simulate(FLOOD, _cluster("muxserve-adbs", {"adaptive": False}), cost_models=lambda s: UnitCost())
    req_f, req_a = res.requests, adbs.requests
    ttft_f = (req_f["first_token_s"] - req_f["arrival_s"])[req_f["client"] == 1].mean()
    ttft_a = (req_a["first_token_s"] - req_a["arrival_s"])[req_a["client"] == 1].mean()
    assert ttft_a < ttft_f


def test_adaptation_moves_quota_from_the_idle_client_to_the_saturated_one():
    """Client 0 floods (20 requests of 144 + 16 tokens = 10 blocks at t=0), client 1 sends nothing
    until t=30. Hand derivation with the shared rule, interval 8 s, UnitCost (1 s iterations):
    quotas start 50 | 50; from t=0 client 0 runs 5 requests = 50 blocks (util 1.0 >= 0.9) with a
    backlog of 15 x 10 = 150 blocks; they finish at t=16 (first token at t=1, 15 more), so at the
    tick t=8 client 1 holds 0 (util 0 < 0.9) and gives int(min(50 - 0, (0.95 - 0) x 50)) =
    int(47.5) = 47 blocks, all to client 0 (the only taker) -> 97 | 3. The plan at t=8 then admits
    4 more of client 0 (90 <= 97; 100 > 97; memory: 5 x 10 + 4 x 9 = 86 <= 100 blocks)."""
    wl = workload([0.0] * 20 + [30.0], [144] * 21, [16] * 21, clients=[0] * 20 + [1])
    res = simulate(wl, _cluster("muxserve-adbs"), cost_models=lambda s: UnitCost())
    assert _dispatched_by(res, 7.9) == {0: 5, 1: 0}
    assert _dispatched_by(res, 8.0) == {0: 9, 1: 0}
    fixed = simulate(wl, _cluster("muxserve-adbs", {"adaptive": False}), cost_models=lambda s: UnitCost())
    assert _dispatched_by(fixed, 15.9) == {0: 5, 1: 0}  # control: without adaptation nothing moves
    assert res.requests["finish_s"].notna().all()


def test_negative_control_without_the_wake_fast_forward_misses_the_tick(monkeypatch):
    """The adaptation test's workload in both modes. With the policy's wake request removed, fast
    mode runs the decode segment t=1..16 without asking again, so the tick at t=8 is applied only
    at t=16: step mode admits 4 more at t=8, fast mode none before t=16, and the modes disagree. With
    the wake (the real policy) they agree bit for bit."""
    wl = workload([0.0] * 20 + [30.0], [144] * 21, [16] * 21, clients=[0] * 20 + [1])
    cluster = _cluster("muxserve-adbs")
    unit = lambda s: UnitCost()  # noqa: E731
    assert_same_run(simulate(wl, cluster, mode="fast", cost_models=unit),
                    simulate(wl, cluster, mode="step", cost_models=unit))
    real = MuxServeADBS.plan

    def no_wake(self, view):
        plan = real(self, view)
        plan.replan_each_iteration, plan.retry_at_s = False, None
        return plan

    monkeypatch.setattr(MuxServeADBS, "plan", no_wake)
    fast = simulate(wl, cluster, mode="fast", cost_models=unit)
    step = simulate(wl, cluster, mode="step", cost_models=unit)
    assert _dispatched_by(step, 8.0) == {0: 9, 1: 0}
    assert _dispatched_by(fast, 15.9) == {0: 5, 1: 0}  # nothing more until the completions at t=16


def test_adapted_unit_rule_and_spare_blocks():
    """`MuxServeADBS.adapted` on the state of the test above: 50 | 50, used 50 | 0, backlog 150 | 0
    -> 97 | 3 with nothing lost; with three clients the rounding loss goes to the biggest taker."""
    p = MuxServeADBS(instance_spec=InstanceSpec(kv_capacity_tokens=1600, block_size=16))
    p.quota, p.spare = {0: 50, 1: 50}, 0
    assert p.adapted({0: 50, 1: 0}, {0: 150}) == ({0: 97, 1: 3}, 0)
    assert p.adapted({0: 20, 1: 0}, {0: 150}) is None  # no taker: client 0 uses 40% of its quota
    # three clients 33 | 33 | 33 (+1 spare): donors 1 and 2 give int(min(33, 0.95 x 33)) = 31 each,
    # pool 62 split 2:1 by backlog -> int(41.33) = 41 and int(20.67) = 20; 1 lost + 1 spare -> client 0
    p.quota, p.spare = {0: 33, 1: 33, 2: 33}, 1
    new, spare = p.adapted({0: 33, 1: 0, 2: 0}, {0: 200})
    assert spare == 0 and new == {0: 33 + 62 + 1, 1: 2, 2: 2}
    assert sum(new.values()) == 100


def test_shared_rule_matches_a_hand_example_and_the_mesh_simulator():
    # initial split 3:1 of 1000 blocks (MuxServe: rate x blocks per token)
    assert initial_quotas({"a": 30.0, "b": 10.0}, 1000) == {"a": 750, "b": 250}
    # b saturated with a backlog, a at 100/750: gives int(min(650, (0.95 - 0.1333) x 750)) = 612
    assert adapt_quotas({"a": 750, "b": 250}, {"a": 100, "b": 250}, {"b": 640}) == {"a": 138, "b": 862}
    from llmsched.theory.placement.muxserve import LLM, AdaptiveKVQuota

    s = AdaptiveKVQuota([LLM("a", 6.7, 30.0, 32, 4096), LLM("b", 6.7, 10.0, 32, 4096)], total_blocks=1000)
    assert s.quota == {"a": 750, "b": 250}
    s.adapt(10.0, {"a": 100, "b": 250}, {"a": 0, "b": 20}, {"a": 32, "b": 32})
    assert s.quota == {"a": 138, "b": 862}


def test_runs_through_simulate_on_a_two_client_workload_with_every_request_finishing():
    rng = np.random.default_rng(0)
    n = 300
    arrivals = np.sort(rng.uniform(0, 60, n))
    clients = (rng.uniform(size=n) < 0.2).astype(int)  # client 1 is the less popular LLM
    wl = workload(arrivals, rng.integers(16, 400, n), rng.integers(4, 200, n), clients=clients)
    cluster = _cluster("muxserve-adbs", {"shares": [4, 1], "adapt_interval_s": 2.0}, kv_capacity_tokens=16384,
                       token_budget=512)
    from tests.sim.helpers import LinearCost

    fast = simulate(wl, cluster, mode="fast", cost_models=lambda s: LinearCost())
    step = simulate(wl, cluster, mode="step", cost_models=lambda s: LinearCost())
    assert_same_run(fast, step)
    req = fast.requests
    assert req["finish_s"].notna().all()
    assert (req["generated_tokens"] == req["output_tokens"]).all()
    assert (fast.timeline["kv_blocks_used"] <= fast.timeline["kv_blocks_total"]).all()


def test_bad_parameters_are_rejected():
    spec = InstanceSpec(kv_capacity_tokens=1600)
    for bad in ({"shares": [1, -1]}, {"shares": [0, 0]}, {"adapt_interval_s": 0.0}, {"adapt_interval_s": 1e-4},
                {"shares": "1;2"}, {"adaptive": "maybe"}, {"adaptive": 1}):
        with pytest.raises(ValueError):
            MuxServeADBS(instance_spec=spec, **bad)
    # the CLI's KEY=VALUE parser turns shares=1,2 into (1, 2) and shares=3 into 3: both accepted
    from llmsched.experiments.commands.simulate import _kv

    assert MuxServeADBS(instance_spec=spec, **_kv(["shares=1,2"], "--batching-param")).shares == (1.0, 2.0)
    assert MuxServeADBS(instance_spec=spec, **_kv(["shares=3"], "--batching-param")).shares == (3.0,)
    with pytest.raises(ValueError):
        MuxServeADBS()
    with pytest.raises(ValueError, match="shares"):  # fewer shares than clients: InputError at the first plan
        simulate(FLOOD, _cluster("muxserve-adbs", {"shares": [1]}), cost_models=lambda s: UnitCost())


def test_registered():
    assert "muxserve-adbs" in registry.names(registry.BATCHING)


@st.composite
def _scenarios(draw):
    w = draw(workloads())
    cluster = draw(clusters(w, ["muxserve-adbs"], ["round-robin", "least-outstanding-tokens"]))
    params = {"adapt_interval_s": draw(st.sampled_from([0.05, 0.5, 3.0, 8.0])),
              "adaptive": draw(st.sampled_from([True, True, False]))}
    if draw(st.booleans()):
        params["shares"] = draw(st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=4, max_size=4).filter(any))
    inst = tuple(dataclasses.replace(i, batching_params=freeze_params(params)) for i in cluster.instances)
    return w, dataclasses.replace(cluster, instances=inst), draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=150)
@given(_scenarios())
def test_fast_forward_equals_step_and_every_request_finishes(scenario):
    w, cluster, cost, seed = scenario
    fast, _ = fast_equals_step(w, cluster, cost, seed)
    req = fast.requests
    served = ~req["rejected"]
    assert (req.loc[served, "finish_s"].notna()).all()
    assert (req.loc[served, "generated_tokens"] == req.loc[served, "output_tokens"]).all()
    assert (fast.timeline["kv_blocks_used"] <= fast.timeline["kv_blocks_total"]).all()


@settings(max_examples=60)
@given(_invariants.runs(batching=["muxserve-adbs"]))
def test_engine_invariants_hold(run):
    """The engine invariants of tests/sim/test_invariants.py, with more examples for this policy than
    that file's draw over every registered policy gives it."""
    _invariants.test_each_request_finishes_once_with_all_its_tokens.hypothesis.inner_test(run)
    _invariants.test_kv_never_exceeds_capacity_and_clock_is_monotone.hypothesis.inner_test(run)


@settings(max_examples=60)
@given(_invariants.runs(batching=["muxserve-adbs"], allow_pd=False))
def test_service_log_and_littles_law_hold(run):
    _invariants.test_service_log_accounts_for_every_token.hypothesis.inner_test(run)
    _invariants.test_littles_law.hypothesis.inner_test(run)


@settings(max_examples=200)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 5), min_size=n, max_size=n).filter(lambda w: sum(w) > 0),
    st.lists(st.tuples(st.lists(st.integers(0, 120), min_size=n, max_size=n),
                       st.lists(st.integers(0, 300), min_size=n, max_size=n)), min_size=1, max_size=8))))
def test_adaptation_conserves_blocks_and_never_takes_held_blocks(case):
    """Quotas + spare always sum to the capacity; a donor keeps at least the blocks it holds."""
    weights, steps = case
    p = MuxServeADBS(instance_spec=InstanceSpec(kv_capacity_tokens=16 * 257, block_size=16))
    p.quota = initial_quotas(dict(enumerate(weights)), p.total_blocks)
    p.spare = p.total_blocks - sum(p.quota.values())
    for used_l, backlog_l in steps:
        used, backlog = dict(enumerate(used_l)), dict(enumerate(backlog_l))
        before = dict(p.quota)
        step = p.adapted(used, backlog)
        if step is None:
            continue
        p.quota, p.spare = step
        assert sum(p.quota.values()) + p.spare == p.total_blocks
        assert all(q >= 0 for q in p.quota.values())
        for u, q in before.items():
            if p.quota[u] < q:  # gave blocks: only free ones
                assert p.quota[u] >= used[u]
