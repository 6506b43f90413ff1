"""Li–Dai–Peng on the engine: work-conserving schedulers (Orca, Sarathi-Serve, RAD) are stable at 0.9×
capacity and their token backlog grows at the fluid slope λm − C at 1.1× and 1.2× capacity.

Setup: the paper's staircase (CodeLlama-34B/A100), b_max = 512, fixed (100, 101)-token requests
(100 prefill + 100 decode tokens of work), Poisson arrivals, no KV or request-cap limit. Capacity
λ* = 512 / (t(512)·200) = 16.71 requests/s (closed form, `llmsched.theory.stability`). Verdicts come from the
stability checker on the exact token backlog. Tolerance (derived, not tuned): the checker's
batch-means CI, at a Bonferroni-corrected confidence 1 − 0.05/k over the k fluid-slope comparisons
of the module, so the whole module has at most a 5% chance of a false failure.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.proofs_check.stability import backlog_slope, stability_verdict, work_backlog
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost import StaircaseCost
from llmsched.sim.cost.simple import LDP_A_S, LDP_B0_TOKENS, LDP_C_S
from llmsched.sim.run import simulate
from llmsched.theory.batch_time import staircase
from llmsched.theory.constructions import ldp_capacity_rps, poisson_fixed
from llmsched.theory.stability import fluid_backlog_slope

T = staircase(LDP_C_S, LDP_A_S, LDP_B0_TOKENS)
B_MAX = 512
PROMPT, OUTPUT = 100, 101
LAMBDA_STAR = ldp_capacity_rps(T, B_MAX, PROMPT, OUTPUT)
POLICIES = ("orca", "sarathi", "rad")
LOADS = (0.9, 1.1, 1.2)
N_COMPARISONS = len(POLICIES) * len(LOADS)  # default and slow suites each stay within 5% family-wise
CONFIDENCE = 1.0 - 0.05 / N_COMPARISONS


def run_backlog(policy: str, load: float, duration_s: float, seed: int = 1):
    """(grid over the checker's window, exact token backlog W, arrived work A, arrival rate in window)."""
    w = poisson_fixed(load * LAMBDA_STAR, duration_s, PROMPT, OUTPUT, seed=seed)
    spec = InstanceSpec(batching=policy, token_budget=B_MAX, max_batch_requests=10**6, kv_capacity_tokens=10**8)
    res = simulate(w, ClusterSpec(instances=(spec,)), cost_models=lambda s: StaircaseCost(), record_service=False)
    a = np.sort(res.requests.arrival_s.to_numpy())
    t0, t1 = (a[0] + a[-1]) / 2, a[-1]
    grid = np.linspace(t0, t1, 4000)
    work = work_backlog(res.requests, res.timeline, grid)
    arrived = np.searchsorted(a, grid, side="right") * float(PROMPT + OUTPUT - 1)
    rate = float(np.sum((a >= t0) & (a <= t1))) * (PROMPT + OUTPUT - 1) / (t1 - t0)
    return grid, work, arrived, rate, (t0, t1)


def fluid(load: float) -> float:
    return fluid_backlog_slope(load * LAMBDA_STAR, T, B_MAX, PROMPT, OUTPUT - 1).tokens_per_s


def test_capacity_closed_form():
    # 512 / (11.28 + 4·35.47 ms) = 3.3429 tokens/ms; / 200 tokens = 16.71 requests/s
    assert pytest.approx(512 / 0.15316 / 200, rel=1e-12) == LAMBDA_STAR
    assert pytest.approx(16.714, abs=1e-3) == LAMBDA_STAR
    assert fluid(1.1) == pytest.approx(0.1 * 3342.9093758, rel=1e-9)


@pytest.mark.parametrize("policy", POLICIES)
def test_work_conserving_stable_at_0_9(policy):
    grid, work, _, rate, win = run_backlog(policy, 0.9, duration_s=240.0)
    v = stability_verdict(backlog_slope(grid, work, window=win), rate, "tokens/s", fluid_slope=fluid(0.9))
    assert v.ok and v.details["stable"], v.summary


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("load", [1.1, 1.2])
def test_work_conserving_grows_at_fluid_slope(policy, load):
    """Control variate: Y(t) = W(t) − (A(t) − λm·t) has W's expected slope (E[A(t)] = λm·t) without
    the arrival noise; under overload a work-conserving server processes exactly C tokens/s, so the
    slope of Y is λm − C. Its batch-means CI (Bonferroni confidence) must contain the fluid slope and
    exclude 0; the raw backlog W must be called unstable by the checker at its default 95%."""
    grid, work, arrived, rate, win = run_backlog(policy, load, duration_s=240.0)
    lam_m = load * LAMBDA_STAR * (PROMPT + OUTPUT - 1)
    est = backlog_slope(grid, work - (arrived - lam_m * grid), window=win, confidence=CONFIDENCE)
    # In this window the server never idles, so it processes exactly C tokens/s: the CI can shrink to
    # float rounding of the reconstructed series; 1e-9 relative covers that rounding and nothing more.
    tol = 1e-9 * fluid(load)
    assert est.lo > 0 and est.lo - tol <= fluid(load) <= est.hi + tol, (est, fluid(load))
    raw = stability_verdict(backlog_slope(grid, work, window=win), rate, "tokens/s")
    assert not raw.details["stable"], raw.summary
    # negative control: half (or 1.5x) the fluid slope is outside the CI
    assert not est.contains(fluid(load) / 2) and not est.contains(1.5 * fluid(load))


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("seed", [2, 3])
def test_work_conserving_matches_fluid_checker_long(policy, load, seed):
    """The checker alone (raw backlog, fluid slope in its Bonferroni CI) on 900-s runs."""
    grid, work, _, rate, win = run_backlog(policy, load, duration_s=900.0, seed=seed)
    conf = 1.0 - 0.05 / (2 * N_COMPARISONS)
    v = stability_verdict(backlog_slope(grid, work, window=win, confidence=conf), rate, "tokens/s", fluid_slope=fluid(load))
    assert v.ok, v.summary
