"""Parallelism configurations (`llmsched.sim.parallelism`) and the planners that search them
(`llmsched.policies.planning`): hand-derived costs and capacities, the engine invariants and
fast == step on a pipeline deployment, and each planner against a table it cannot cheat on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.planning.base import Measurements
from llmsched.policies.registry import PLANNING, create, names
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import activation_reserve_bytes, get_gpu, get_model
from llmsched.sim.hardware.derived import kv_bytes_per_token, weight_bytes
from llmsched.sim.parallelism import (
    ParallelConfig,
    PipelineCost,
    deployment,
    feasible_configs,
    kv_tokens_per_replica,
)
from llmsched.sim.run import simulate
from llmsched.testing import UnitCost, assert_same_run
from tests.sim.strategies import workloads

MODEL, GPU = "llama-2-13b", "a100-80gb"


class _Const:
    def __init__(self, t: float) -> None:
        self.t = t

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        return np.full(len(shape), self.t)


def test_pipeline_cost_adds_the_hand_offs():
    # 0.01 s base; 4 stages -> 3 hand-offs of (10 us + 100 tokens x 8192 B / 1 GB/s = 819.2 us)
    cost = PipelineCost(_Const(0.01), 4, 8192.0, 1e9, 1e-5)
    shape = BatchShape.single(prefill_tokens=60, prefill_attention_pairs=60 * 61 // 2, prefill_context_tokens=60,
                              decode_tokens=40, decode_context_tokens=400, num_requests=41)
    assert cost.iteration_times(shape)[0] == pytest.approx(0.01 + 3 * (1e-5 + 100 * 8192 / 1e9))
    assert PipelineCost(_Const(0.01), 1, 8192.0, 1e9, 1e-5).iteration_times(shape)[0] == 0.01


def test_kv_tokens_per_replica_by_hand():
    m, g = get_model(MODEL), get_gpu(GPU)
    n = 2 * 2
    usable = 0.9 * g.memory_bytes - weight_bytes(m) / n - activation_reserve_bytes(m, 2)
    assert kv_tokens_per_replica(MODEL, GPU, 2, 2) == math.floor(usable * n / kv_bytes_per_token(m))
    assert kv_tokens_per_replica("llama-2-70b", "a10", 1, 1) == 0  # 140 GB of weights on 24 GB


def test_feasible_space_and_deployment():
    space = feasible_configs(MODEL, GPU, 8)
    assert len(space) == 26 and all(c.gpus <= 8 for c in space)  # 10 (tp, pp) pairs, replicas up to 8/(tp pp)
    d = deployment(MODEL, GPU, ParallelConfig(2, 2, 2), 8)
    (spec,) = d.cluster.instances
    assert spec.count == 4 and spec.tp == 2 and len(d.cost_models) == 4  # replicas x pp virtual engines
    assert spec.kv_capacity_tokens == kv_tokens_per_replica(MODEL, GPU, 2, 2) // 2
    with pytest.raises(InputError, match=r"R3-TP4-PP1: needs 12 GPUs, the pool has 8") as err:
        deployment(MODEL, GPU, ParallelConfig(3, 4, 1), 8)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="does not divide"):
        deployment(MODEL, GPU, ParallelConfig(1, 16, 1), 16)  # 40 heads


@settings(max_examples=20, deadline=None)
@given(workloads(max_requests=12, prefixes=False), st.sampled_from([(1, 1, 2), (2, 2, 1), (1, 2, 4)]))
def test_pipeline_deployments_keep_fast_equal_to_step_and_the_invariants(w, rtp):
    d = deployment(MODEL, GPU, ParallelConfig(*rtp), 8)
    cost = [PipelineCost(UnitCost(), c.pp, c.hidden_bytes_per_token, c.link_bandwidth_Bps, c.link_latency_s)
            for c in d.cost_models]
    fast = simulate(w, d.cluster, cost_models=cost, mode="fast")
    step = simulate(w, d.cluster, cost_models=cost, mode="step")
    assert_same_run(fast, step)
    r = fast.requests
    assert len(r) == w.n and r["finish_s"].notna().all()  # every request finishes once
    assert (r["finish_s"] >= r["first_token_s"]).all() and (r["first_token_s"] >= r["arrival_s"]).all()


def _table(space, f):
    return {c: f(c) for c in space}


@pytest.mark.parametrize("planner", ["exhaustive", "rrl", "bayes-opt"])
def test_planners_measure_each_configuration_once_and_return_the_best_measured(planner):
    space = feasible_configs(MODEL, GPU, 8)
    # a smooth bowl in log2 coordinates with its minimum at R2-TP4-PP1 (known by construction)
    values = _table(space, lambda c: 1 + (math.log2(c.tp) - 2) ** 2 + math.log2(c.pp) ** 2 + (math.log2(c.replicas) - 1) ** 2)
    calls: list = []

    def evaluate(c):
        calls.append(c)
        return values[c]

    res = create(PLANNING, planner, **({} if planner == "exhaustive" else {"seed": 3})).search(space, evaluate)
    assert len(calls) == len(set(calls)) == res.evaluations <= len(space)
    assert res.best_value == min(v for _, v in res.trace) and values[res.best] == res.best_value
    if planner == "exhaustive":
        assert res.best == ParallelConfig(2, 4, 1) and res.evaluations == 26


def test_rrl_on_a_bowl_finds_the_optimum_in_most_runs():
    """Negative control for the search itself: on a bowl RRL must beat its own budget (it would
    need all 26 measurements if it wandered at random to the optimum half the time)."""
    space = feasible_configs(MODEL, GPU, 8)
    values = _table(space, lambda c: 1 + (math.log2(c.tp) - 2) ** 2 + math.log2(c.pp) ** 2 + (math.log2(c.replicas) - 1) ** 2)
    found = [create(PLANNING, "rrl", seed=s).search(space, values.__getitem__) for s in range(10)]
    hits = [r for r in found if r.best == ParallelConfig(2, 4, 1)]
    assert len(hits) >= 7
    assert np.mean([r.evaluations_to_reach(1.0) for r in hits]) < 13


def test_measurements_cache_and_infinite_values():
    m = Measurements(lambda c: math.inf if c.tp == 8 else float(c.tp))
    a, b = ParallelConfig(1, 8, 1), ParallelConfig(1, 2, 1)
    assert m(a) == math.inf and m(b) == 2.0 and m(b) == 2.0 and len(m) == 2
    assert m.result().best == b


def test_planners_are_listed_and_reject_bad_parameters():
    assert {"exhaustive", "rrl", "bayes-opt"} <= set(names(PLANNING))
    with pytest.raises(InputError, match=r"epsilon: RegionRL: 2 is out of range"):
        create(PLANNING, "rrl", epsilon=2)
    with pytest.raises(InputError, match="patience"):
        create(PLANNING, "rrl", patience=0)
