"""Li–Dai–Peng counterexamples on the engine: non-work-conserving batching unstable strictly inside
the stability region, the request-cap vertex where only tile-aligned small rounds are stable, and the
two-server Rybko–Stolyar network where work conservation is not enough.

Verdicts come from the stability checker's pure functions (batch-means CI, default 95%, threshold
1% of the arrival rate). Constructions and their derived numbers: `llmsched.theory.constructions`.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.policies import registry
from llmsched.proofs_check.stability import (
    backlog_series,
    backlog_slope,
    stability_verdict,
    work_backlog,
)
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost import LinearCost, StaircaseCost
from llmsched.sim.cost.simple import LDP_A_S, LDP_B0_TOKENS, LDP_C_S
from llmsched.sim.policy_api import PlanBuilder
from llmsched.sim.run import simulate
from llmsched.theory.batch_time import staircase
from llmsched.theory.constructions import (
    VERTEX_C,
    RybkoStolyar,
    ft_overload_rate,
    ldp_capacity_rps,
    poisson_fixed,
    rybko_stolyar_workload,
)
from llmsched.theory.stability import cap_region_capacity, is_stable

T = staircase(LDP_C_S, LDP_A_S, LDP_B0_TOKENS)


def _run(w, policy, budget, params=(), cap=10**6, count=1, cost=None):
    spec = InstanceSpec(batching=policy, batching_params=params, token_budget=budget, max_batch_requests=cap,
                        kv_capacity_tokens=10**8, count=count)
    return simulate(w, ClusterSpec(instances=(spec,)), cost_models=lambda s: cost or StaircaseCost(),
                    record_service=False)


def _verdict(res, metric="tokens", window=None):
    req = res.requests
    a = req.arrival_s.to_numpy()
    t0, t1 = window or ((a.min() + a.max()) / 2, a.max())
    grid = np.linspace(t0, t1, 4000)
    in_win = (a >= t0) & (a <= t1)
    if metric == "tokens":
        y = work_backlog(req, res.timeline, grid)
        rate = float((req.prompt_tokens + req.output_tokens - 1).to_numpy()[in_win].sum()) / (t1 - t0)
    else:
        _, y = backlog_series(req, "requests", grid)
        rate = float(in_win.sum()) / (t1 - t0)
    est = backlog_slope(grid, y, window=(t0, t1))
    return stability_verdict(est, rate, metric), est


# -- FasterTransformer-style: decode-first without mixing ---------------------------------------------

def test_fastertransformer_unstable_inside_region_at_derived_slope():
    # (100, 101) at 0.9 λ* (inside the region) with b_max = 512. Under overload FT completes
    # μ_FT = 5 / (t(500) + 100·t(5)) = 1.0356 requests/s (theory.constructions.ft_overload_rate), so the
    # request backlog grows at λ − μ_FT = 15.04 − 1.04 ≈ 14.0 requests/s.
    lam = 0.9 * ldp_capacity_rps(T, 512, 100, 101)
    assert is_stable(lam, T, 512, 100, 100)
    mu = ft_overload_rate(T, 512, 100, 101)
    assert mu == pytest.approx(5 / (0.15316 + 100 * 0.04675), rel=1e-12)
    w = poisson_fixed(lam, 200.0, 100, 101, seed=1)
    v, est = _verdict(_run(w, "fastertransformer", 512, (("token_budget", 512),)), metric="requests")
    assert not v.details["stable"], v.summary
    assert est.contains(lam - mu), (est, lam - mu)
    # control: Sarathi-Serve on the same arrivals is stable
    v_ok, _ = _verdict(_run(w, "sarathi", 512))
    assert v_ok.details["stable"], v_ok.summary


# -- vLLM-style: prefill-first whole prompts without mixing ------------------------------------------

def test_vllm_unstable_inside_region():
    # Our construction (the paper's own was not readable): tiny prompts (8 tokens), 100 decode
    # rounds, 0.9 λ*. Every arrival forces a prefill-only round of t(8) = 46.75 ms that carries no
    # decode; with λ·t(8) ≈ 1.3 arrivals per such round, decode rounds are starved.
    lam = 0.9 * ldp_capacity_rps(T, 512, 8, 101)
    assert is_stable(lam, T, 512, 8, 100)
    w = poisson_fixed(lam, 200.0, 8, 101, seed=1)
    v, _ = _verdict(_run(w, "vllm", 512, (("token_budget", 512),)))
    assert not v.details["stable"], v.summary
    v_ok, _ = _verdict(_run(w, "sarathi", 512))
    assert v_ok.details["stable"], v_ok.summary


# -- the request-cap vertex: only tile-aligned small rounds are stable --------------------------------

def test_vertex_c_theory():
    vc = VERTEX_C
    # capacity of the capped region for the (290, 990) mix is exactly the vertex rate 1/467.5 ms,
    # whether the budget is 128 or 1024 (a policy may run 128-token rounds under a 1024 budget)
    for budget in (vc.small_budget, vc.large_budget):
        lam = cap_region_capacity(T, budget, vc.k_max, vc.prompt_tokens, vc.output_tokens - 1)
        assert lam == pytest.approx(1 / vc.gap_s, rel=1e-9)


@pytest.mark.parametrize("policy,budget,stable", [
    ("sarathi", 128, True),    # locks into rounds of 29 prefill + 99 decode tokens
    ("rad", 1024, True),       # tile-aware: keeps rounds at one tile while the cap binds
    ("sarathi", 1024, False),  # fills to 1024: 99 decodes per 295 ms round, decodes pile up
])
def test_vertex_c_only_tile_aligned_small_rounds_are_stable(policy, budget, stable):
    w = VERTEX_C.workload(0.9, 400.0)
    v, _ = _verdict(_run(w, policy, budget, cap=VERTEX_C.k_max))
    assert v.details["stable"] == stable, v.summary


# -- two-server Rybko–Stolyar network ----------------------------------------------------------------

class ClassPriority:
    """Sarathi-Serve with strict class priority among prefills (test-only policy)."""

    def __init__(self, rank=()):
        self.rank = dict(rank)

    def plan(self, view):
        b = PlanBuilder(view)
        b.decode_all()

        def key(r):
            return self.rank.get(view.client(r), len(self.rank))

        for rid in sorted(view.prefilling, key=key):
            b.chunk(rid)
        for rid in sorted(view.waiting, key=key):
            if not b.admit(rid):
                break
        return b.plan()


@pytest.fixture
def class_priority():
    registry.load_all()
    registry.register(registry.BATCHING, "_test-class-priority")(ClassPriority)
    yield "_test-class-priority"
    registry.unregister(registry.BATCHING, "_test-class-priority")


def test_rybko_stolyar_theory():
    net = RybkoStolyar()
    # each server's token load is 0.9 (inside the single-server region) but the two exiting classes
    # need 2·λ·544/768 = 2·0.9·544/608 = 1.61 > 1 of one server's time: the virtual station is overloaded
    assert net.rate_per_type(0.9) * net.tokens_per_type * net.round_s / net.budget == pytest.approx(0.9)
    assert net.virtual_station_load(0.9) == pytest.approx(2 * 0.9 * 544 / 608)


@pytest.mark.parametrize("ranks,stable", [("exit_first", False), ("enter_first", True)])
def test_rybko_stolyar_priority(class_priority, ranks, stable):
    net = RybkoStolyar()
    dur = 3.0
    w = rybko_stolyar_workload(net, 0.9, dur, seed=0)
    res = _run(w, class_priority, net.budget, (("rank", getattr(net, ranks)()),), count=2,
               cost=LinearCost(net.round_s, 0.0, 0.0, 0.0))
    v, _ = _verdict(res, metric="requests", window=(dur / 2, dur))
    assert v.details["stable"] == stable, v.summary


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("ranks,stable", [("exit_first", False), ("enter_first", True)])
def test_rybko_stolyar_priority_long(class_priority, ranks, stable, seed):
    net = RybkoStolyar()
    dur = 8.0
    w = rybko_stolyar_workload(net, 0.9, dur, seed=seed)
    res = _run(w, class_priority, net.budget, (("rank", getattr(net, ranks)()),), count=2,
               cost=LinearCost(net.round_s, 0.0, 0.0, 0.0))
    v, _ = _verdict(res, metric="requests", window=(dur / 2, dur))
    assert v.details["stable"] == stable, v.summary


@pytest.mark.slow
@pytest.mark.parametrize("load", [0.9, 0.95])  # at 0.8 Sarathi-1024 and Orca-128 are stable (measured)
@pytest.mark.parametrize("policy,budget,stable", [("sarathi", 128, True), ("rad", 1024, True),
                                                   ("sarathi", 1024, False), ("orca", 128, False)])
def test_vertex_c_long(policy, budget, stable, load):
    w = VERTEX_C.workload(load, 1500.0)
    v, _ = _verdict(_run(w, policy, budget, cap=VERTEX_C.k_max))
    assert v.details["stable"] == stable, v.summary
