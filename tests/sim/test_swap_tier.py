"""The host KV swap tier (`preemption = "swap"`): a hand-derived timeline, the recompute control,
the full-tier fallback, config errors, and fast == step on generated workloads.

Hand derivation (UnitCost: every iteration takes 1 s; Llama-2-7B, 524,288 KV bytes per token per
GPU = 2 (K, V) x 32 layers x 32 heads x 128 dims x 2 bytes; swap bandwidth 524,288e3 B/s, so a
token's KV crosses the host link in 1 ms). KV pool 64 tokens = 4 blocks of 16. r0 and r1 arrive at
t = 0 with 16-token prompts and 40 output tokens each.
- Iteration 1 (0 -> 1 s) prefills both: 1 block each, first tokens at t = 1.
- Iterations 2..17 decode both; at the start of iteration 2 each needs its 2nd block (4 held).
- At the start of iteration 18 (t = 17) each holds 32 tokens in 2 blocks and needs a 3rd: 0 free.
  The latest admitted, r1, is preempted: swap mode copies its 32 tokens (2 blocks) to host, so
  iteration 18 takes 1 s + 32 ms. r1 has generated 17 tokens.
- r0 runs alone to its 40th token: iterations 18..40, finishing at 17 + 1.032 + 22 = 40.032 s.
  Meanwhile r1 needs 3 blocks (33 tokens) and only 1 is free.
- At t = 40.032 r1 swaps back in (32 ms added to its first iteration) and decodes its remaining
  23 tokens: 40.032 + 1.032 + 22 = 63.064 s.
Recompute mode: r1's KV is dropped at t = 17; it recomputes 33 tokens in one 1 s iteration at
t = 40 and decodes 22 more: r0 finishes at 40 and r1 at 40 + 1 + 22 = 63 s.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig
from llmsched.sim.errors import InputError
from llmsched.sim.run import simulate
from tests.sim.helpers import UnitCost, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads

KV_BYTES_PER_TOKEN = 2 * 32 * 32 * 128 * 2  # Llama-2-7B per GPU at TP 1
ONE_MS_PER_TOKEN_BPS = KV_BYTES_PER_TOKEN * 1e3


def _cluster(preemption: str, swap_space_tokens: int = 64) -> ClusterSpec:
    # admission="engine": the preempting admission (the fairness policies default to "reserve",
    # which never preempts, issue 15)
    spec = InstanceSpec(model="llama-2-7b", gpu="a100-80gb", batching="fcfs",
                        batching_params=(("admission", "engine"),), token_budget=512,
                        max_batch_requests=8, block_size=16, kv_capacity_tokens=64,
                        preemption=preemption, swap_space_bytes=swap_space_tokens * KV_BYTES_PER_TOKEN,
                        swap_bandwidth_Bps=ONE_MS_PER_TOKEN_BPS)
    return ClusterSpec(instances=(spec,))


def _two_requests():
    return workload([0.0, 0.0], [16, 16], [40, 40])


def test_swap_timeline_is_the_hand_derived_one():
    fast, _ = fast_equals_step(_two_requests(), _cluster("swap"), UnitCost())
    req = fast.requests.set_index("request_id")
    assert req.loc[0, "finish_s"] == pytest.approx(40.032, abs=1e-9)
    assert req.loc[1, "finish_s"] == pytest.approx(63.064, abs=1e-9)
    assert list(req["preemptions"]) == [0, 1]
    assert fast.summary["swap_out_tokens"] == 32 and fast.summary["swap_in_tokens"] == 32


def test_recompute_control_drops_the_kv_instead():
    fast, _ = fast_equals_step(_two_requests(), _cluster("recompute"), UnitCost())
    req = fast.requests.set_index("request_id")
    assert req.loc[0, "finish_s"] == pytest.approx(40.0, abs=1e-9)
    assert req.loc[1, "finish_s"] == pytest.approx(63.0, abs=1e-9)
    assert "swap_out_tokens" not in fast.summary


def test_a_full_host_tier_falls_back_to_recompute():
    # 16 tokens of swap space cannot hold r1's 2 blocks: the run is exactly the recompute run
    full, _ = fast_equals_step(_two_requests(), _cluster("swap", swap_space_tokens=16), UnitCost())
    recompute = simulate(_two_requests(), _cluster("recompute"), cost_models=lambda s: UnitCost())
    assert list(full.requests["finish_s"]) == list(recompute.requests["finish_s"])
    assert full.summary["swap_out_tokens"] == 0


@pytest.mark.parametrize("field, value", [
    ("preemption", "page-out"), ("swap_space_bytes", -1.0), ("swap_bandwidth_Bps", 0.0),
    ("swap_bandwidth_Bps", float("inf")),
])
def test_bad_swap_settings_are_input_errors(field, value):
    spec = dataclasses.replace(InstanceSpec(), **{field: value})
    cfg = RunConfig(cluster=ClusterSpec(instances=(spec,)))
    with pytest.raises(InputError, match=field):
        cfg.validate("run.toml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fast_equals_step_with_swapping(data):
    w = data.draw(workloads(max_requests=16))
    cluster = data.draw(clusters(w, ["fcfs", "sarathi", "vllm", "vtc"], ["round-robin", "least-outstanding-tokens"],
                                 allow_pd=False))
    space_tokens = data.draw(st.sampled_from([0, 64, 4096]))
    bandwidth = data.draw(st.sampled_from([1e6, 1e9]))
    base = cluster.instances[0]
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    # memory pressure: room for the biggest request plus 0-2 blocks, so decodes preempt often
    capacity = (-(-biggest // base.block_size) + data.draw(st.integers(0, 2))) * base.block_size
    spec = dataclasses.replace(base, preemption="swap", model="llama-2-7b", gpu="a100-80gb",
                               kv_capacity_tokens=capacity, swap_space_bytes=space_tokens * KV_BYTES_PER_TOKEN,
                               swap_bandwidth_Bps=bandwidth)
    cluster = dataclasses.replace(cluster, instances=(spec,))
    fast, _ = fast_equals_step(w, cluster, data.draw(cost_models()))
    assert (fast.requests["finish_s"].notna()).all()  # every request finishes, swapped or not
