"""VTC Theorem 4.11 (dispatch latency): calculator, checker, property test and negative control
(issue 15 item 4). Theorem 4.13 is in test_vtc_non_overloaded.py."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.experiments.cli import main
from llmsched.proofs_check._service_log import SavedRun
from llmsched.proofs_check.fairness import check_dispatch_latency
from llmsched.sim.config import RunConfig
from llmsched.sim.run import run
from llmsched.theory import fairness as bounds


def test_calculators_hand_derived():
    s = bounds.ServiceScale(input_weight=1.0, output_weight=2.0, max_input_tokens=100, kv_capacity_tokens=1000)
    # U = max(1·100, 2·1000) = 2000; n = 3 clients: 2(n−1)U = 2·2·2000 = 8000 service units
    assert bounds.dispatch_service_bound(s, 3) == 8000.0
    # at a = 400 service units/s: 8000 / 400 = 20 s
    assert bounds.dispatch_latency_bound(s, 3, 400.0) == 20.0
    # one client: nobody else to wait for
    assert bounds.dispatch_service_bound(s, 1) == 0.0
    # Thm 4.13 threshold on [t, t2) with T = 60000 delivered and n = 3: 60000/3 − 5·2000 = 10000
    assert bounds.non_overloaded_margin(s, 60000.0, 3) == 10000.0
    with pytest.raises(ValueError):
        bounds.dispatch_latency_bound(s, 3, 0.0)


@functools.cache
def _run(policy: str, seed: int, flood: float, light: float, out_mean: int) -> SavedRun:
    cfg = RunConfig.from_dict({
        "seed": seed,
        "workload": {"source": "multi-client", "duration_s": 4.0,
                     "params": {"rates": [flood, light, light], "lengths": "lognormal", "input_tokens": 128,
                                "output_tokens": out_mean, "max_tokens": 1024}},
        "cluster": {"instances": [{"model": "llama-2-7b", "gpu": "a10g", "batching": policy,
                                   "kv_capacity_tokens": 2048, "token_budget": 512}]}})
    res = run(cfg)
    return SavedRun(res.service, res.requests, res.timeline, res.summary["config"], "<mem>",
                    res.summary["policy_params"])


@settings(max_examples=8)
@given(seed=st.integers(0, 1000), flood=st.sampled_from([4.0, 8.0, 16.0]), light=st.sampled_from([0.5, 1.0, 2.0]),
       out_mean=st.sampled_from([64, 256]))
def test_vtc_keeps_the_dispatch_latency_bound(seed, flood, light, out_mean):
    v = check_dispatch_latency(_run("vtc", seed, flood, light, out_mean))
    assert v.ok, v.summary
    assert v.details["hypothesis"]["inside"] is True


def test_fcfs_breaks_it_under_a_flood():
    """Negative control: FCFS makes a light client's request wait behind the flooding client's
    whole queue, so the others' service during the wait exceeds 2(n−1)U."""
    v = check_dispatch_latency(_run("fcfs", 0, 12.0, 0.5, 256))
    assert not v.ok
    assert v.witness["others_service"] > v.witness["service_bound"]
    # the same arrivals under VTC keep it
    assert check_dispatch_latency(_run("vtc", 0, 12.0, 0.5, 256)).ok


def test_cli_lists_and_runs_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", "--workload", "multi-client", "--duration", "3", "--batching", "vtc",
                 "--kv-capacity-tokens", "2048", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["check", "vtc-latency", str(out)]) == 0
    assert "2(n−1)U" in capsys.readouterr().out
