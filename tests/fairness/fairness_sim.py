"""Small fairness scenarios for the property tests: a hypothesis strategy over multi-client
workloads (every arrival process of `llmsched.sim.workload.arrivals`), instance shapes and a helper that
simulates one and hands the checkers an in-memory `SavedRun`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from llmsched.proofs_check._service_log import SavedRun
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, freeze_params
from llmsched.sim.cost.simple import LinearCost
from llmsched.sim.run import simulate
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload

PROCESSES = ("poisson", "gamma", "uniform", "onoff", "ramp", "burst")
COST = LinearCost(0.01, 2e-4, 2e-4, 1e-7)  # seconds; any positive affine cost will do


@dataclass(frozen=True)
class Scenario:
    workload: Workload
    kv_capacity_tokens: int
    block_size: int
    token_budget: int
    admission_interval: int


def _arrivals(rng: np.random.Generator, process: str, rate: float, n: int) -> np.ndarray:
    if process == "poisson":
        t = arrivals.poisson(rng, rate, n=n)
    elif process == "gamma":
        t = arrivals.gamma(rng, rate, 3.0, n=n)
    elif process == "uniform":
        t = arrivals.uniform(rng, rate, n=n)
    elif process == "onoff":
        t = arrivals.onoff(rng, rate * 2, 1.0, 1.0, n=n)
    elif process == "ramp":
        t = arrivals.ramp(rng, rate / 4, rate * 2, 2.0, n=n)
    else:  # everything at once, the Thm 4.8 flood shape
        t = np.zeros(n)
    return np.asarray(t, dtype=np.float64)[:n]


@st.composite
def scenarios(draw, max_clients: int = 8, max_per_client: int = 6, prefixes: bool = False):
    """2–8 clients, each with its own arrival process and rate; prompts 1..L_input, outputs 1..O,
    KV capacity M from one request's worth to four times that."""
    n_clients = draw(st.integers(2, max_clients))
    L_input = draw(st.sampled_from([8, 32, 96]))
    max_out = draw(st.sampled_from([4, 16, 48]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_clients):
        n = draw(st.integers(1, max_per_client))
        t = _arrivals(rng, draw(st.sampled_from(PROCESSES)), draw(st.sampled_from([1.0, 5.0, 30.0])), n)
        rows.extend((float(x), c) for x in t)
    rows.sort()
    n = len(rows)
    prompts = rng.integers(1, L_input + 1, n)
    prompts[rng.integers(n)] = L_input  # the longest prompt is exactly L_input
    outputs = rng.integers(1, max_out + 1, n)
    kw = {}
    if prefixes:
        hb = 4
        offs, vals = [0], []
        for p in prompts:
            k = int(rng.integers(0, p // hb + 1))
            family = int(rng.integers(0, 3))
            vals.extend(family * 1000 + j for j in range(k))
            offs.append(len(vals))
        kw = {"hash_offsets": offs, "hash_values": vals, "hash_block_tokens": hb}
    w = Workload(arrival_s=[r[0] for r in rows], client=[r[1] for r in rows], prompt_tokens=prompts,
                 output_tokens=outputs, client_weight=np.ones(n_clients), **kw)
    block = 1 if not prefixes else draw(st.sampled_from([1, 4]))
    biggest = int((w.prompt_tokens + w.output_tokens).max())
    M = draw(st.integers(biggest, 4 * biggest))
    M = -(-M // block) * block
    return Scenario(w, M, block, draw(st.sampled_from([8, 64, 512])), draw(st.sampled_from([1, 1, 3])))


def run_saved(sc: Scenario, batching: str, mode: str = "fast", **params) -> tuple[SavedRun, object]:
    spec = InstanceSpec(batching=batching, batching_params=freeze_params(params),
                        kv_capacity_tokens=sc.kv_capacity_tokens, block_size=sc.block_size,
                        token_budget=sc.token_budget, admission_interval=sc.admission_interval)
    cluster = ClusterSpec(instances=(spec,))
    cfg = RunConfig(cluster=cluster).to_dict()
    res = simulate(sc.workload, cluster, cost_models=[COST], config=cfg, mode=mode)
    return SavedRun(res.service, res.requests, res.timeline, cfg, f"<{batching}>"), res
