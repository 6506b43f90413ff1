"""Public test helpers: hypothesis strategies for workloads, clusters and cost models, two tiny
cost models, and the fast-equals-step comparison.

A theorist property-tests a policy with these::

    from hypothesis import given
    from llmsched import simulate, testing

    @given(testing.scenarios(batching=["my-policy"]))
    def test_my_policy_keeps_2u(s):
        result = simulate(s.workload, s.cluster, seed=s.seed, cost_models=lambda spec: s.cost)
        assert llmsched.check("vtc-2u", result).ok

The strategies draw small but nasty scenarios: ties in time, preemption (KV capacity barely above
the largest request), shared prefixes from a small alphabet, admission cadence, request caps,
prefill/decode disaggregation and parent/child tasks. Everything here is deterministic given
hypothesis' draws; nothing imports pytest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.workload.core import Workload

__all__ = [
    "LinearCost",
    "Scenario",
    "UnitCost",
    "assert_same_run",
    "client_workloads",
    "clusters",
    "cost_models",
    "fast_equals_step",
    "finished_requests",
    "scenarios",
    "workloads",
]


# ------------------------------------------------------------------------------ cost models
@dataclass(frozen=True)
class LinearCost:
    """Iteration time a + b*prefill + c*decode + d*context seconds: a transparent stand-in for the
    catalogue's cost models in tests (hand-derivable clocks)."""

    name: str = "test-linear"
    a: float = 0.01
    b: float = 1e-4
    c: float = 2e-4
    d: float = 1e-7

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        ctx = s.decode_context_tokens + s.prefill_context_tokens
        return self.a + self.b * s.prefill_tokens + self.c * s.decode_tokens + self.d * ctx


@dataclass(frozen=True)
class UnitCost:
    """Every iteration takes one second: rounds are easy to read off the clock."""

    name: str = "unit"

    def iteration_times(self, s: BatchShape) -> np.ndarray:
        return np.ones(len(s), dtype=np.float64)


# ------------------------------------------------------------------------------ strategies
@st.composite
def workloads(draw: st.DrawFn, max_requests: int = 24, max_clients: int = 4, prefixes: bool | None = None,
              hash_block_tokens: int | None = None, tasks: bool = True) -> Workload:
    """A small workload: 1..max_requests requests of 1..max_clients clients, arrivals with ties,
    prompts of 1-300 tokens, outputs of 1-40 tokens; optionally shared prefix blocks (`prefixes`:
    None = drawn) and, with `tasks`, parent/child tasks in about one draw in five."""
    n = draw(st.integers(1, max_requests))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.3, 1.0, 2.5]), min_size=n, max_size=n))
    arrivals = np.cumsum(gaps)
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    n_clients = draw(st.integers(1, max_clients))
    clients = draw(st.lists(st.integers(0, n_clients - 1), min_size=n, max_size=n))
    use_prefix = draw(st.booleans()) if prefixes is None else prefixes
    kw: dict[str, Any] = {}
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
    if tasks and n > 1 and draw(st.integers(0, 4)) == 0:  # some requests are released by a parent
        parent = [-1] + [draw(st.sampled_from([-1, -1, i - 1, 0])) for i in range(1, n)]
        kw["parent"] = parent
        kw["pin_instance"] = [draw(st.sampled_from([-1, 0])) for _ in range(n)]
    return Workload(arrival_s=arrivals, client=clients, prompt_tokens=prompts, output_tokens=outputs,
                    client_weight=np.ones(n_clients), **kw)


@st.composite
def client_workloads(draw: st.DrawFn, max_clients: int = 3, max_per_client: int = 10, max_prompt_tokens: int = 96,
                     max_output_tokens: int = 48) -> Workload:
    """A multi-client workload for fairness properties: 2..max_clients clients, each starting at
    its own time (0 to 5 s, so latecomers meet a backlog) with 1..max_per_client requests whose
    gaps range from simultaneous (a burst) to 2 s; prompts 1..max_prompt_tokens (the longest is
    L_input of the VTC bounds), outputs 1..max_output_tokens. Every draw is a hypothesis draw,
    so failing examples shrink to few requests, short lengths and aligned times."""
    n_clients = draw(st.integers(2, max_clients))
    rows: list[tuple[float, int, int, int]] = []
    for c in range(n_clients):
        n = draw(st.integers(1, max_per_client))
        start = draw(st.sampled_from([0.0, 0.0, 0.5, 2.0, 5.0]))
        gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.5, 2.0]), min_size=n, max_size=n))
        prompts = draw(st.lists(st.integers(1, max_prompt_tokens), min_size=n, max_size=n))
        outputs = draw(st.lists(st.integers(1, max_output_tokens), min_size=n, max_size=n))
        t = start + np.cumsum(gaps)
        rows.extend((float(t[i]), c, prompts[i], outputs[i]) for i in range(n))
    rows.sort(key=lambda r: (r[0], r[1]))
    return Workload(arrival_s=[r[0] for r in rows], client=[r[1] for r in rows],
                    prompt_tokens=[r[2] for r in rows], output_tokens=[r[3] for r in rows],
                    client_weight=np.ones(n_clients))


@st.composite
def cost_models(draw: st.DrawFn) -> LinearCost | UnitCost:
    """`UnitCost` (one draw in four) or a `LinearCost` with coefficients from small grids."""
    if draw(st.integers(0, 3)) == 0:
        return UnitCost()
    return LinearCost(
        a=draw(st.sampled_from([1e-3, 0.01, 0.05])),
        b=draw(st.sampled_from([0.0, 1e-4, 1e-3])),
        c=draw(st.sampled_from([0.0, 2e-4, 5e-3])),
        d=draw(st.sampled_from([0.0, 1e-7, 1e-5])),
    )


@st.composite
def clusters(draw: st.DrawFn, w: Workload, batching: Sequence[str], routers: Sequence[str],
             allow_pd: bool = True, min_instances: int = 1, max_instances: int = 3) -> ClusterSpec:
    """A cluster for workload `w`: KV capacity from exactly the largest request up to +5000 tokens
    (so preemption is common), block sizes 1/4/16, token budgets 8-512, batch caps 2-256, admission
    every 1 or 3 iterations, prefix cache on/off, and (with `allow_pd`, one draw in six) separate
    prefill and decode pools; otherwise one pool of `min_instances`..`max_instances` instances.
    `batching` and `routers` are registered names to draw from."""
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    block = draw(st.sampled_from([1, 4, 16]))
    if w.has_prefixes and w.hash_block_tokens % block:
        block = 16
    capacity = biggest + draw(st.sampled_from([0, 16, 100, 400, 5000]))
    capacity = -(-capacity // block) * block
    policy = draw(st.sampled_from(list(batching)))
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
        instances: tuple[InstanceSpec, ...] = (
            InstanceSpec(role="prefill", count=draw(st.integers(1, 2)), **common),
            InstanceSpec(role="decode", count=draw(st.integers(1, 2)), **common))
    else:
        instances = (InstanceSpec(count=draw(st.integers(min_instances, max_instances)), **common),)
    return ClusterSpec(instances=instances, router=draw(st.sampled_from(list(routers))),
                       kv_link_bandwidth_Bps=1e6, kv_link_latency_s=draw(st.sampled_from([0.0, 0.02])))


@dataclass(frozen=True)
class Scenario:
    """One drawn simulation input: run it with
    `simulate(s.workload, s.cluster, seed=s.seed, cost_models=lambda spec: s.cost)`."""

    workload: Workload
    cluster: ClusterSpec
    cost: LinearCost | UnitCost
    seed: int


@st.composite
def scenarios(draw: st.DrawFn, batching: Sequence[str] = ("sarathi",),
              routers: Sequence[str] = ("round-robin",), allow_pd: bool = False,
              **workload_kw: Any) -> Scenario:
    """A workload, a cluster for it, a cost model and a seed (keyword arguments go to `workloads`)."""
    w = draw(workloads(**workload_kw))
    return Scenario(w, draw(clusters(w, batching, routers, allow_pd=allow_pd)), draw(cost_models()),
                    draw(st.integers(0, 5)))


# ------------------------------------------------------------------------------ comparisons
def assert_same_run(a: Any, b: Any) -> None:
    """Two RunResults agree on every recorded number, bit for bit."""
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.service, b.service, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)


def finished_requests(requests: Any) -> Any:
    """Assert every request either finished, with all its output tokens, or was rejected (never
    both, never neither); return the finished rows."""
    finished = requests["finish_s"].notna()
    assert (finished == ~requests["rejected"]).all()
    done = requests[finished]
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    return done


def fast_equals_step(w: Workload, cluster: ClusterSpec, cost: Any, seed: int = 0) -> tuple[Any, Any]:
    """Run `w` on `cluster` in fast-forward and in step mode, assert the runs agree bit for bit, and
    return (fast, step)."""
    from llmsched.sim.run import simulate

    fast = simulate(w, cluster, seed=seed, mode="fast", cost_models=lambda _spec: cost)
    step = simulate(w, cluster, seed=seed, mode="step", cost_models=lambda _spec: cost)
    assert_same_run(fast, step)
    return fast, step
