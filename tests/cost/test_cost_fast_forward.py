"""Fast-forward equals step, bit for bit, with the context-dependent profiled tables (DecodeKV) and the
per-stack / extra overhead terms: the engine advances many decode iterations at once, and these costs
grow with every decoded token."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import llmsched.sim.cost as C
from llmsched.sim.config import ClusterSpec, InstanceSpec
from tests.sim.helpers import fast_equals_step
from tests.sim.strategies import workloads

SPECS = [
    ("profiled:slai-mistral-7b-rtx-6000-ada", "mistral-7b", "rtx-6000-ada", 1),
    ("profiled:helix-llama-2-70b-a100-40gb", "llama-2-70b", "a100-40gb", 1),
    ("profiled:sarathi-yi-34b-a100-80gb", "yi-34b", "a100-80gb", 2),
    ("roofline+stack:slora+extra:0.003", "llama-2-7b", "a10g", 1),
    ("roofline+stack:vllm-llumnix", "llama-2-7b", "a10", 1),
]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SPECS), workloads(max_requests=16, prefixes=False), st.sampled_from(["sarathi", "fcfs", "vtc"]),
       st.sampled_from([1, 10]))
def test_fast_equals_step_with_context_dependent_tables_and_stacks(spec, w, batching, admission_every):
    cost_spec, model, gpu, tp = spec
    inst = InstanceSpec(model=model, gpu=gpu, tp=tp, cost=cost_spec, batching=batching, token_budget=512,
                        max_batch_requests=64, kv_capacity_tokens=8000, admission_interval=admission_every,
                        prefix_cache=False)
    cluster = ClusterSpec(instances=(inst,))
    fast, _ = fast_equals_step(w, cluster, C.build(cost_spec, model, gpu, tp))
    assert len(fast.requests) == len(w)
