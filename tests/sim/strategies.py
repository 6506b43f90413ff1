"""Hypothesis strategies for small but nasty simulator scenarios: ties in time, preemption,
prefix sharing, admission cadence, request caps, disaggregation."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.workload.core import Workload
from tests.sim.helpers import LinearCost, UnitCost


@st.composite
def workloads(draw, max_requests: int = 24, max_clients: int = 4, prefixes: bool | None = None,
              hash_block_tokens: int | None = None) -> Workload:
    n = draw(st.integers(1, max_requests))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.3, 1.0, 2.5]), min_size=n, max_size=n))
    arrivals = np.cumsum(gaps)
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    n_clients = draw(st.integers(1, max_clients))
    clients = draw(st.lists(st.integers(0, n_clients - 1), min_size=n, max_size=n))
    use_prefix = draw(st.booleans()) if prefixes is None else prefixes
    kw = {}
    if use_prefix:
        hb = hash_block_tokens or draw(st.sampled_from([16, 32]))
        offsets, values = [0], []
        for p in prompts:
            k = draw(st.integers(0, -(-p // hb)))
            # small alphabet: prefixes collide often; a block's id depends on its position too
            ids = draw(st.lists(st.integers(0, 2), min_size=k, max_size=k))
            acc = 0
            for pos, x in enumerate(ids):
                acc = acc * 7 + x + 1
                values.append(acc * 100 + pos)
            offsets.append(len(values))
        kw = {"hash_offsets": offsets, "hash_values": values, "hash_block_tokens": hb}
    if n > 1 and draw(st.integers(0, 4)) == 0:  # multi-task requests: some are released by a parent
        parent = [-1] + [draw(st.sampled_from([-1, -1, i - 1, 0])) for i in range(1, n)]
        kw["parent"] = parent
        kw["pin_instance"] = [draw(st.sampled_from([-1, 0])) for _ in range(n)]
    return Workload(arrival_s=arrivals, client=clients, prompt_tokens=prompts, output_tokens=outputs,
                    client_weight=np.ones(n_clients), **kw)


@st.composite
def cost_models(draw):
    if draw(st.integers(0, 3)) == 0:
        return UnitCost()
    return LinearCost(
        a=draw(st.sampled_from([1e-3, 0.01, 0.05])),
        b=draw(st.sampled_from([0.0, 1e-4, 1e-3])),
        c=draw(st.sampled_from([0.0, 2e-4, 5e-3])),
        d=draw(st.sampled_from([0.0, 1e-7, 1e-5])),
    )


@st.composite
def clusters(draw, w: Workload, batching: list[str], routers: list[str], allow_pd: bool = True) -> ClusterSpec:
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    block = draw(st.sampled_from([1, 4, 16]))
    if w.has_prefixes and w.hash_block_tokens % block:
        block = 16
    capacity = biggest + draw(st.sampled_from([0, 16, 100, 400, 5000]))
    capacity = -(-capacity // block) * block
    policy = draw(st.sampled_from(batching))
    common = dict(
        batching=policy,
        token_budget=draw(st.sampled_from([8, 64, 512])),
        max_batch_requests=draw(st.sampled_from([2, 8, 256])),
        block_size=block,
        kv_capacity_tokens=capacity,
        admission_interval=draw(st.sampled_from([1, 1, 3])),
        prefix_cache=draw(st.booleans()),
    )
    if allow_pd and draw(st.integers(0, 5)) == 0:
        instances = (InstanceSpec(role="prefill", count=draw(st.integers(1, 2)), **common),
                     InstanceSpec(role="decode", count=draw(st.integers(1, 2)), **common))
    else:
        instances = (InstanceSpec(count=draw(st.integers(1, 3)), **common),)
    return ClusterSpec(instances=instances, router=draw(st.sampled_from(routers)),
                       kv_link_bandwidth_Bps=1e6, kv_link_latency_s=draw(st.sampled_from([0.0, 0.02])))
