"""VTC Theorem 4.13 (a non-overloaded client is served): calculator, checker `vtc-non-overloaded`
on a hand-computed log, property test on generated workloads, negative controls (FCFS under a
flood; VTC with the lift deleted) and the CLI (issue 15 item 4)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.experiments.cli import main
from llmsched.proofs_check._service_log import SavedRun
from llmsched.proofs_check.fairness import check_non_overloaded
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, freeze_params
from llmsched.sim.run import run, simulate
from llmsched.sim.workload.core import Workload
from llmsched.theory import fairness as bounds
from tests.fairness.fairness_sim import COST, run_saved, scenarios


def test_calculator_hand_derived():
    s = bounds.ServiceScale(input_weight=1.0, output_weight=2.0, max_input_tokens=100, kv_capacity_tokens=1000)
    # U = max(1·100, 2·1000) = 2000, so the slack is 5U = 10000
    assert bounds.non_overloaded_slack(s) == 10000.0
    # T = 60000 over n = 3 clients: 60000/3 − 10000 = 10000; elementwise on arrays
    assert bounds.non_overloaded_margin(s, 60000.0, 3) == 10000.0
    got = bounds.non_overloaded_margin(s, np.array([60000.0, 30000.0]), np.array([3, 1]))
    assert got.tolist() == [10000.0, 20000.0]
    with pytest.raises(ValueError):
        bounds.non_overloaded_margin(s, 1.0, 0)


def _hand_log() -> SavedRun:
    """Three clients on one instance (w_p = 1, w_q = 2). Client 0's request 0 (prompt 4) is
    dispatched at t = 0 and decodes: 10 output tokens by t = 2, 20 by t = 3. Client 1's request 1
    (prompt 2, output 1) arrives at t = 1 to an empty own queue and waits until t = 3. Client 2
    only shows up at t = 5 (request 2, arrives and is dispatched at once)."""
    rows = [  # time_s, seq, client, input, output, waiting, running
        (0.0, 0, 0, 0, 0, 1, 0), (0.0, 1, 0, 4, 0, 0, 1),
        (1.0, 2, 1, 0, 0, 1, 0),
        (2.0, 3, 0, 4, 10, 0, 1),
        (3.0, 4, 0, 4, 20, 0, 1), (3.0, 5, 1, 2, 0, 0, 1),
        (5.0, 6, 2, 0, 0, 1, 0), (5.0, 7, 2, 3, 0, 0, 1),
    ]
    svc = pd.DataFrame(rows, columns=["time_s", "seq", "client", "input_tokens", "output_tokens", "waiting", "running"])
    svc["instance"] = 0
    svc["cached_input_tokens"] = 0
    svc["service"] = svc["input_tokens"] + 2.0 * svc["output_tokens"]
    req = pd.DataFrame({"request_id": [0, 1, 2], "client": [0, 1, 2], "instance": [0, 0, 0],
                        "prefill_instance": [0, 0, 0], "arrival_s": [0.0, 1.0, 5.0],
                        "dispatch_s": [0.0, 3.0, 5.0], "prompt_tokens": [4, 2, 3], "output_tokens": [30, 1, 1],
                        "preemptions": [0, 0, 0], "migrations": [0, 0, 0], "rejected": [False] * 3})
    cfg = {"input_weight": 1.0, "output_weight": 2.0,
           "cluster": {"instances": [{"batching": "vtc", "batching_params": {"admission": "reserve"}}]}}
    return SavedRun(svc, req, pd.DataFrame(), cfg, "<hand>")


def test_checker_on_a_hand_computed_log():
    # Client 1 is the only client that waits: backlog from t1 = 1 to 3. Its request asks for
    # R = w_p·2 + w_q·1 = 4. Service on [1, t2) (prompts charged in [1, t2), outputs up to t2):
    #   t2 = 2: client 0 gets 2·10 = 20; T = 20, n = 2 (client 2 unserved is not counted) -> 20/2 − 4 = 6
    #   t2 = 3: client 0 gets 2·20 = 40 (client 1's own dispatch at 3 is outside [1, 3)): 40/2 − 4 = 16
    # With M = 2, L_input = 2: U = max(1·2, 2·2) = 4, 5U = 20 >= 16: holds.
    run_ = _hand_log()
    v = check_non_overloaded(run_, M=2, L_input=2)
    assert v.ok, v.summary
    w = v.details["worst"]
    assert (w["client"], w["t1_s"], w["t2_s"]) == (1, 1.0, 3.0)
    assert (w["total_service"], w["n_clients"], w["requested_service"]) == (40.0, 2, 4.0)
    assert w["fair_share_minus_requested"] == 16.0 and w["bound"] == 20.0
    assert v.details["checked"] == 2 and v.details["backlog_periods"] == 1
    # With M = 1, L_input = 1: U = 2, 5U = 10 < 16: violated, witnessed by request 1.
    # (Counting all three clients, n = 3, would give 40/3 − 4 = 9.33 <= 10 and miss it.)
    v = check_non_overloaded(run_, M=1, L_input=1)
    assert not v.ok
    assert v.witness["request_id"] == 1 and v.witness["dispatch_s"] == 3.0
    assert v.witness["threshold"] == 40.0 / 2 - 10.0


@settings(max_examples=60)
@given(scenarios(max_clients=6, max_per_client=8))
def test_vtc_keeps_it_on_generated_workloads(sc):
    saved, res = run_saved(sc, "vtc", admission="reserve")
    v = check_non_overloaded(saved)
    assert v.ok, v.summary
    assert int(res.requests["preemptions"].sum()) == 0


@functools.cache
def _flood(policy: str, seed: int, flood: float, out_mean: int, duration_s: float = 10.0) -> SavedRun:
    """A client flooding at `flood` req/s next to two light clients at 0.5 req/s each."""
    cfg = RunConfig.from_dict({
        "seed": seed,
        "workload": {"source": "multi-client", "duration_s": duration_s,
                     "params": {"rates": [flood, 0.5, 0.5], "lengths": "lognormal", "input_tokens": 128,
                                "output_tokens": out_mean, "max_tokens": 1024}},
        "cluster": {"instances": [{"model": "llama-2-7b", "gpu": "a10g", "batching": policy,
                                   "kv_capacity_tokens": 1024, "token_budget": 512}]}})
    res = run(cfg)
    return SavedRun(res.service, res.requests, res.timeline, res.summary["config"], "<mem>",
                    res.summary["policy_params"])


@settings(max_examples=6)
@given(seed=st.integers(0, 1000), flood=st.sampled_from([8.0, 12.0, 16.0]), out_mean=st.sampled_from([64, 256]))
def test_vtc_keeps_it_under_a_flood(seed, flood, out_mean):
    v = check_non_overloaded(_flood("vtc", seed, flood, out_mean))
    assert v.ok, v.summary
    assert v.details["hypothesis"]["inside"] is True


def test_fcfs_breaks_it_under_a_flood():
    """Negative control: under FCFS a light client's one request waits behind the flood while the
    flooding client takes far more than the light client's fair share plus 5U."""
    v = check_non_overloaded(_flood("fcfs", 0, 12.0, 256))
    assert not v.ok
    w = v.witness
    assert w["client"] != 0 and w["fair_share_minus_requested"] > w["bound"]
    assert w["requested_service"] < w["threshold"]  # asked for less than T/n − 5U ...
    assert w["dispatch_s"] is None or w["dispatch_s"] >= w["t2_s"]  # ... and still waited at t2
    assert check_non_overloaded(_flood("vtc", 0, 12.0, 256)).ok  # VTC on the same arrivals keeps it


def _returning_client(policy: str) -> SavedRun:
    """Client 0 is served alone for a while (its counter grows), then client 1 floods from an
    empty queue and client 0 comes back with one small request. Without the lift, client 1's
    counter starts far below client 0's and client 1 is served alone until it catches up."""
    n0, n1 = 100, 100
    arr = np.concatenate([np.zeros(n0), np.full(n1, 20.0), [20.001]])
    cl = np.concatenate([np.zeros(n0, int), np.ones(n1, int), [0]])
    n = len(arr)
    w = Workload(arrival_s=arr, client=cl, prompt_tokens=np.full(n, 8), output_tokens=np.full(n, 8))
    spec = InstanceSpec(batching=policy, batching_params=freeze_params({"admission": "reserve"}),
                        kv_capacity_tokens=64, block_size=1, token_budget=2048)
    cluster = ClusterSpec(instances=(spec,))
    cfg = RunConfig(cluster=cluster).to_dict()
    res = simulate(w, cluster, cost_models=[COST], config=cfg)
    assert res.requests["dispatch_s"].iloc[:n0].max() < 20.0  # client 0's first phase is over by t = 20
    return SavedRun(res.service, res.requests, res.timeline, cfg, f"<{policy}>")


def test_vtc_without_the_lift_breaks_it():
    """Negative control, a deliberately wrong VTC: `vtc-nolift` (the lift line deleted) makes the
    returning client's one request (R = 8 + 2·8 = 24) wait while client 1 catches up."""
    bad = check_non_overloaded(_returning_client("vtc-nolift"))
    assert not bad.ok
    assert bad.witness["client"] == 0 and bad.witness["request_id"] == 200
    assert bad.witness["requested_service"] == 24.0
    assert check_non_overloaded(_returning_client("vtc")).ok


def test_cli_exit_codes_and_witness(tmp_path, capsys):
    base = ["simulate", "--workload", "multi-client", "--workload-param", "rates=12,0.5,0.5",
            "--workload-param", "output_tokens=256", "--duration", "10", "--kv-capacity-tokens", "1024",
            "--no-progress"]
    good, bad, engine = tmp_path / "vtc", tmp_path / "fcfs", tmp_path / "engine"
    assert main([*base, "--batching", "vtc", "--out", str(good)]) == 0
    assert main([*base, "--batching", "fcfs", "--out", str(bad)]) == 0
    capsys.readouterr()
    assert main(["check", "vtc-non-overloaded", str(good)]) == 0
    assert "5U" in capsys.readouterr().out
    assert main(["check", "vtc-non-overloaded", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    for key in ("request_id", "client", "t1_s", "t2_s", "requested_service", "threshold", "bound"):
        assert key in out["witness"], key
    assert main([*base, "--batching", "vtc", "--batching-param", "admission=engine", "--out", str(engine)]) == 0
    capsys.readouterr()
    main(["check", "vtc-non-overloaded", str(engine)])
    assert "outside the theorem's hypothesis" in capsys.readouterr().out
