"""Fairness policies default to the admission under which their theorems hold (issue 15 item 3), and
the VTC/DLPM checkers say when a run is outside the theorems' hypothesis."""

from __future__ import annotations

import functools

import pytest

from llmsched.proofs_check._service_log import SavedRun
from llmsched.proofs_check.fairness import (
    check_backlogged_pair,
    check_backlogged_vs_any,
    check_counter_gap,
    check_dlpm_bound,
)
from llmsched.sim.config import RunConfig
from llmsched.sim.run import run

FAIR = ["vtc", "vtc-weighted", "lcf", "vtc-nolift", "vtc-predict", "vtc-oracle", "vtc-h", "dlpm", "lpm",
        "fcfs", "rpm"]


@functools.cache
def _cached(policy: str, params: tuple, seed: int):
    # a flooding client (rate 6/s) and two light ones on a 2048-token KV pool: engine admission
    # (admit while the prompt fits now) runs out of memory for decodes and preempts
    cfg = RunConfig.from_dict({
        "seed": seed,
        "workload": {"source": "multi-client", "duration_s": 5.0,
                     "params": {"rates": [6.0, 0.5, 0.5], "lengths": "lognormal", "input_tokens": 256,
                                "output_tokens": 384, "max_tokens": 1024}},
        "cluster": {"instances": [{"model": "llama-2-7b", "gpu": "a10g", "batching": policy,
                                   "kv_capacity_tokens": 2048, "token_budget": 512,
                                   "batching_params": dict(params)}]}})
    res = run(cfg)
    return res, SavedRun(res.service, res.requests, res.timeline, res.summary["config"], "<mem>",
                         res.summary["policy_params"])


def _run(policy: str, params: dict | None = None, seed: int = 0):
    return _cached(policy, tuple(sorted((params or {}).items())), seed)


@pytest.mark.parametrize("policy", FAIR)
def test_default_admission_is_reserve_and_recorded(policy):
    res, _ = _run(policy)
    params = res.summary["policy_params"]["batching"][0]["params"]
    assert params["admission"] == "reserve"
    assert int(res.requests["preemptions"].sum()) == 0  # non-preemptive, as the theorems assume


def test_engine_admission_preempts_on_the_same_workload():
    """Negative control: the workload does stress memory; engine admission preempts on it."""
    res, _ = _run("vtc", {"admission": "engine"})
    assert int(res.requests["preemptions"].sum()) > 0


@pytest.mark.parametrize("check", [check_counter_gap, check_backlogged_pair, check_backlogged_vs_any])
def test_checker_flags_a_run_outside_the_hypothesis(check):
    _, engine = _run("vtc", {"admission": "engine"})
    v = check(engine)
    assert v.details["hypothesis"]["inside"] is False
    assert "outside the theorem's hypothesis" in v.summary and "admission=engine" in v.summary
    _, reserve = _run("vtc")
    v = check(reserve)
    assert v.details["hypothesis"]["inside"] is True and "NOTE" not in v.summary


def test_dlpm_bound_runs_on_a_default_run_and_states_the_hypothesis():
    """Item 2: `check dlpm-bound` used to refuse a run made with DLPM's default quantum."""
    _, saved = _run("dlpm")
    v = check_dlpm_bound(saved)
    assert v.details["quantum"] == 1024.0  # DLPM's default, read from the run's resolved parameters
    assert v.details["hypothesis"]["inside"] is True


def test_older_run_without_recorded_admission_is_unknown():
    res, _ = _run("vtc")
    saved = SavedRun(res.service, res.requests, res.timeline, res.summary["config"], "<mem>")
    v = check_backlogged_pair(saved)
    assert v.details["hypothesis"]["inside"] is None and "not recorded" in v.summary
