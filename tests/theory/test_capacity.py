"""llmsched.theory.capacity and `llmsched capacity`: every binding constraint on hand-derived cases."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost.base import BatchShape, CostModel
from llmsched.theory.capacity import capacity
from llmsched.theory.fluid import LinearRoundTime, fluid_capacity, mixed_class
from llmsched.theory.workload_stats import WorkloadStats


@dataclass(frozen=True)
class Stair:
    """Test double: t = c + a⌈tokens/b0⌉ (Li–Dai–Peng constants by default)."""

    c: float = 11.28e-3
    a: float = 35.47e-3
    b0: int = 128
    name: str = "stair-test"

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        return self.c + self.a * np.ceil(s.total_tokens / self.b0)


@dataclass(frozen=True)
class Lin:
    """Test double: t = c0 + c1·tokens."""

    c0: float = 0.01
    c1: float = 1e-4
    name: str = "lin-test"

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        return self.c0 + self.c1 * s.total_tokens.astype(float)


ST = WorkloadStats.deterministic(100, 101)  # 100 prompt + 100 decode tokens = 200 tokens of work


def test_test_doubles_satisfy_the_protocol():
    assert isinstance(Stair(), CostModel) and isinstance(Lin(), CostModel)


def test_compute_bound_matches_li_dai_peng():
    r = capacity(InstanceSpec(token_budget=512, max_batch_requests=10**6), Stair(), ST, use_catalogue=False)
    assert r.binding_constraint == "compute"
    assert r.requests_per_s == pytest.approx(512 / 0.15316 / 200, rel=1e-12)  # 16.71 req/s


def test_untiled_budget_reports_the_better_tile():
    r = capacity(InstanceSpec(token_budget=520, max_batch_requests=10**6), Stair(), ST, use_catalogue=False)
    assert r.requests_per_s == pytest.approx(520 / (11.28e-3 + 5 * 35.47e-3) / 200, rel=1e-12)
    g = r.details["groups"][0]
    assert g["better_budget_tokens"] == 512
    assert g["better_budget_requests_per_s"] == pytest.approx(512 / 0.15316 / 200, rel=1e-12)


def test_kv_memory_bound_matches_the_fluid_lp():
    """Little's law: rounds carry at most b_kv = M·m/E[g] tokens. With E[g] = 100·100 + (100² + 100)/2
    + 100 = 15150 and M = 2·15150, b_kv = 400, so λ = 400/(t(400)·200). The Charnes–Cooper LP of
    theory.fluid is an independent computation of the same number."""
    M = 2 * 15150
    r = capacity(InstanceSpec(token_budget=512, max_batch_requests=10**6, kv_capacity_tokens=M), Lin(), ST)
    assert r.binding_constraint == "kv_memory"
    assert r.requests_per_s == pytest.approx(400 / ((0.01 + 1e-4 * 400) * 200), rel=1e-9)
    chunk = r.details["groups"][0]["chunk_tokens"]
    lp = fluid_capacity([mixed_class(ST, 1.0, chunk)], LinearRoundTime(0.01, 1e-4), token_budget=512,
                        kv_capacity_tokens=M)
    assert lp.total_rps == pytest.approx(r.requests_per_s, rel=1e-6)
    # negative control: with plenty of memory the binding limit is compute again
    r2 = capacity(InstanceSpec(token_budget=512, max_batch_requests=10**6, kv_capacity_tokens=10**8), Lin(), ST)
    assert r2.binding_constraint == "compute"


def test_request_cap_binds_on_decode_heavy_work():
    # b_max = 128, k_max = 100, (p, d) = (1, 1000): the face y = 100 − x/29 of the capped region
    # gives λ = 100/(1000 + 1/29)/t(128) < compute 128/(t(128)·1001)
    st = WorkloadStats.deterministic(1, 1001)
    r = capacity(InstanceSpec(token_budget=128, max_batch_requests=100), Stair(), st, use_catalogue=False)
    t128 = 11.28e-3 + 35.47e-3
    assert r.binding_constraint == "request_cap"
    assert r.requests_per_s == pytest.approx(100 / (1000 + 1 / 29) / t128, rel=1e-9)


def test_disaggregated_pools_and_link():
    cl = ClusterSpec(instances=(
        InstanceSpec(role="prefill", token_budget=512, count=1, kv_capacity_tokens=10**7),
        InstanceSpec(role="decode", token_budget=512, max_batch_requests=128, count=3, kv_capacity_tokens=10**7),
    ), kv_link_bandwidth_Bps=1e6)
    st = WorkloadStats.deterministic(1000, 101)
    r = capacity(cl, Stair(), st)
    prefill = 512 / 0.15316 / 1000  # prefill pool: 3.34 req/s
    decode = 3 * 128 / (11.28e-3 + 35.47e-3) / 100  # 3 instances × 128 decodes per 46.75 ms round / 100
    assert r.details["limits_requests_per_s"]["prefill_pool"] == pytest.approx(prefill, rel=1e-12)
    assert r.details["limits_requests_per_s"]["decode_pool"] == pytest.approx(decode, rel=1e-12)
    assert r.binding_constraint == "prefill_pool:compute"
    r_link = capacity(cl, Stair(), st, kv_bytes_per_token=1000.0)  # 1 MB/s / (1000 tokens · 1 kB) = 1 req/s
    assert r_link.binding_constraint == "kv_link"
    assert r_link.requests_per_s == pytest.approx(1.0)


def test_heterogeneous_groups_add_up_with_per_group_cost_models():
    cl = ClusterSpec(instances=(InstanceSpec(gpu="a100-80gb", count=2, max_batch_requests=10**6),
                                InstanceSpec(gpu="h100-80gb", count=1, max_batch_requests=10**6)))
    costs = {"a100-80gb": Stair(), "h100-80gb": Stair(c=5e-3, a=20e-3)}
    r = capacity(cl, lambda spec: costs[spec.gpu], ST, use_catalogue=False)
    expect = 2 * 512 / 0.15316 / 200 + 512 / (5e-3 + 4 * 20e-3) / 200
    assert r.requests_per_s == pytest.approx(expect, rel=1e-12)
    assert r.binding_constraint == "compute"


def test_cli_capacity_json(capsys):
    from llmsched.experiments.cli import main

    rc = main(["capacity", "--workload", "means:100,101", "--cost", "staircase", "--max-batch-requests", "1000000",
               "--kv-capacity-tokens", "100000000", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["binding_constraint"] == "compute"
    assert out["requests_per_s"] == pytest.approx(512 / 0.15316 / 200, rel=1e-9)


def test_cli_capacity_bad_input(capsys):
    from llmsched.experiments.cli import main

    assert main(["capacity", "--workload", "means:1"]) == 2
    assert main(["capacity", "--workload", "means:100,101", "--prefill-instances", "1"]) == 2
    assert main(["capacity", "--workload", "means:100,101", "--token-budget", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_capacity_accepts_a_workload_and_gives_fluid_slopes():
    from llmsched.sim.workload import Workload
    from llmsched.theory.capacity import fluid_slopes

    w = Workload(arrival_s=np.arange(50) * 0.1, client=np.zeros(50, int), prompt_tokens=np.full(50, 100),
                 output_tokens=np.full(50, 101))
    r = capacity(InstanceSpec(token_budget=512, max_batch_requests=10**6), Stair(), w, use_catalogue=False)
    assert r.requests_per_s == pytest.approx(512 / 0.15316 / 200, rel=1e-12)
    s = fluid_slopes(r.requests_per_s, 1.1 * r.requests_per_s, ST)
    # 1.1λ*: 0.1·16.71 req/s and 0.1·3342.9 tokens/s (= the notes' 0.334 tokens/ms)
    assert s.requests_per_s == pytest.approx(0.1 * r.requests_per_s)
    assert s.tokens_per_s == pytest.approx(0.1 * 512 / 0.15316, rel=1e-9)
    assert fluid_slopes(r.requests_per_s, 0.9 * r.requests_per_s, ST).tokens_per_s == 0.0


@settings(max_examples=25)
@given(m1=st.integers(2_000, 400_000), m2=st.integers(2_000, 400_000), b=st.integers(16, 1024),
       p=st.integers(1, 3000), o=st.integers(2, 1000))
def test_capacity_is_monotone_in_memory(m1, m2, b, p, o):
    """More KV capacity never lowers the predicted capacity (linear cost, fixed budget)."""
    lo, hi = sorted((m1, m2))
    s = WorkloadStats.deterministic(p, o)
    c_lo = capacity(InstanceSpec(token_budget=b, max_batch_requests=10**6, kv_capacity_tokens=lo), Lin(), s)
    c_hi = capacity(InstanceSpec(token_budget=b, max_batch_requests=10**6, kv_capacity_tokens=hi), Lin(), s)
    assert c_hi.requests_per_s >= c_lo.requests_per_s * (1 - 1e-12)
    assert c_lo.requests_per_s <= b / ((0.01 + 1e-4 * b) * (p + o - 1)) * (1 + 1e-12)
