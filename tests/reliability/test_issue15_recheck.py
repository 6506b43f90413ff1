"""Issue 15 re-checked as a new user (items 1-10): the defects that re-check found, each with a
test that fails before its fix.

- fairness checker options: a bad value (`-o M=abc`) was an internal error (exit 3), `-o M=1.5`
  was truncated to 1, and an option another checker reads (`vtc-2u -o lift=x`) was silently ignored;
- a workload that `--duration` cuts to zero requests ran and exited 0 (item 8's header-only trace,
  reached another way);
- `--out` under a file, or in a place where nothing can be created, failed only after the whole
  simulation (item 9);
- policy-parameter messages printed Python list/tuple reprs (item 10);
- `admission="peak"` stalled VTC's queue behind a request that exactly fills memory, and let
  decodes outgrow memory (preemptions) because it counted tokens, not blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmsched.sim.run as sim_run
from llmsched.experiments.cli import main
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, freeze_params
from llmsched.sim.errors import InputError
from llmsched.sim.run import simulate
from llmsched.sim.workload.catalog import load
from llmsched.sim.workload.core import Workload
from tests.fairness.fairness_sim import COST


@pytest.fixture(scope="module")
def vtc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "vtc"
    assert main(["simulate", "--workload", "multi-client", "--duration", "5", "--batching", "vtc",
                 "--kv-capacity-tokens", "2048", "--no-progress", "--out", str(out)]) == 0
    return out


def _one_line_exit_2(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("checker, option, expect", [
    ("vtc-2u", "M=abc", "M: expected a whole number"),
    ("vtc-2u", "M=1.5", "M: expected a whole number"),
    ("vtc-2u", "M=-5", "M: expected a whole number"),
    ("vtc-4u", "L_input=x", "L_input"),
    ("vtc-u", "input_weight=x", "input_weight: expected a number"),
    ("vtc-latency", "output_weight=inf", "output_weight"),
    ("vtc-non-overloaded", "instance=x", "instance"),
    ("vtc-2u", "instance=7", "no instance 7"),
    ("dlpm-bound", "quantum=x", "quantum: expected a number"),
    ("vtc-2u", "lift=x", "lift: unknown option"),          # vtc-u's option: was silently ignored
    ("vtc-4u", "weights=1,2", "weights: unknown option"),  # vtc-2u's option: was silently ignored
    ("work-conservation", "reserve_output=maybe", "reserve_output: expected 1/0"),
])
def test_bad_checker_options_are_one_line_exit_2(vtc_run, capsys, checker, option, expect):
    err = _one_line_exit_2(capsys, ["check", checker, str(vtc_run), "-o", option])
    assert expect in err, err


def test_good_checker_options_still_work(vtc_run, capsys):
    assert main(["check", "vtc-2u", str(vtc_run), "-o", "M=4096", "-o", "instance=0"]) == 0
    assert main(["check", "work-conservation", str(vtc_run), "-o", "reserve_output=1"]) == 0


def test_a_workload_cut_to_nothing_is_bad_input(tmp_path, capsys):
    trace = tmp_path / "late.csv"
    trace.write_text("arrival_s,client_id,input_tokens,output_tokens\n5,0,10,5\n")
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["simulate", "--workload", str(trace), "--duration", "1", "--no-progress",
                                    "--out", str(out)])
    assert "keeps none of the 1 requests" in err and "first arrives at 5 s" in err
    assert not out.exists()
    with pytest.raises(InputError, match="no request"):
        load(RunConfig.from_dict({"workload": {"source": "poisson", "rate": 1.0, "duration_s": 1e-4}}).workload, 0)


@pytest.mark.parametrize("where", ["file/sub", "file/sub/deeper", "/proc/llmsched-out"])
def test_out_that_cannot_be_created_is_refused_before_the_run(tmp_path, capsys, monkeypatch, where):
    (tmp_path / "file").write_text("not a directory")
    out = where if where.startswith("/") else str(tmp_path / where)

    def no_run(*a, **k):
        raise AssertionError("the simulation ran before --out was validated")

    monkeypatch.setattr(sim_run, "run", no_run)
    err = _one_line_exit_2(capsys, ["simulate", "--workload", "poisson", "--num-requests", "5", "--no-progress",
                                    "--out", out])
    assert "--out" in err, err
    assert (tmp_path / "file").read_text() == "not a directory"


def test_policy_parameter_messages_have_no_python_reprs(capsys):
    base = ["simulate", "--workload", "poisson", "--num-requests", "5", "--batching", "vtc", "--no-progress"]
    for param in ("bogus=1", "admission=bogus", "lift=bogus"):
        err = _one_line_exit_2(capsys, [*base, "--batching-param", param])
        assert "['" not in err and "('" not in err, err
    err = _one_line_exit_2(capsys, [*base, "--batching-param", "bogus=1"])
    assert "unknown parameter 'bogus' for 'vtc'" in err and "accepted: admission, input_weight" in err


def _peak_run(w: Workload, M: int, block: int, policy: str = "vtc"):
    spec = InstanceSpec(batching=policy, batching_params=freeze_params({"admission": "peak"}),
                        kv_capacity_tokens=M, block_size=block, token_budget=512)
    cluster = ClusterSpec(instances=(spec,))
    return simulate(w, cluster, cost_models=[COST], config=RunConfig(cluster=cluster).to_dict())


def test_peak_admits_a_request_that_exactly_fills_memory(capsys):
    """Request 0 needs prompt 1024 + output 1024 = M = 2048 tokens (the largest request the engine
    accepts). The artifact's strict test (peak < M) refused it forever, and VTC, which never skips
    the head of the least-counter client, stalled: the run ended with every request after it unserved."""
    n = 6
    w = Workload(arrival_s=np.arange(n) * 0.1, client=np.array([0, 1, 0, 1, 0, 1]),
                 prompt_tokens=np.array([1024, 8, 8, 8, 8, 8]), output_tokens=np.array([1024, 8, 8, 8, 8, 8]))
    for block in (1, 16):
        res = _peak_run(w, 2048, block)
        assert res.summary["num_finished"] == n, block
        assert int(res.requests["preemptions"].sum()) == 0


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), block=st.sampled_from([1, 4, 16]), n=st.integers(2, 30),
       policy=st.sampled_from(["vtc", "fcfs", "dlpm"]))
def test_peak_admission_never_stalls_or_preempts(seed, block, n, policy):
    """Property: under admission="peak" every request finishes and none is preempted (the test is
    non-preemptive only when it counts the engine's blocks; in tokens, rounding let decodes outgrow
    memory: 108-116 preemptions on the flooding runs of docs/theory/fairness.md)."""
    rng = np.random.default_rng(seed)
    M = 256
    prompt = rng.integers(1, M // 2 + 1, n)
    output = rng.integers(1, M // 2 + 1, n)
    w = Workload(arrival_s=np.sort(rng.uniform(0, 2.0, n)), client=rng.integers(0, 3, n),
                 prompt_tokens=prompt, output_tokens=output)
    res = _peak_run(w, M, block, policy)
    assert res.summary["num_finished"] == n
    assert int(res.requests["preemptions"].sum()) == 0


def test_a_run_that_leaves_requests_unfinished_says_so(capsys):
    """The summary no longer lets a stalled run pass silently: unfinished requests are a warning."""
    from llmsched.experiments.commands.simulate import print_summary

    w = Workload(arrival_s=[0.0, 0.1], client=[0, 1], prompt_tokens=[8, 8], output_tokens=[4, 4])
    summary = dict(_peak_run(w, 256, 1).summary)
    print_summary(summary)
    assert "never finished" not in capsys.readouterr().err
    summary["num_finished"] -= 1  # as the stalled peak run did (52 of 215)
    print_summary(summary)
    assert "1 of 2 requests never finished" in capsys.readouterr().err


def test_hypothesis_note_on_a_policy_without_admission_mode(tmp_path, capsys):
    """A new run of a policy with no admission mode (the default Sarathi) was reported as an old
    run whose mode was "not recorded"; it is a run outside VTC's hypothesis, and says why."""
    out = tmp_path / "run"
    assert main(["simulate", "--workload", "multi-client", "--duration", "3", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    main(["check", "vtc-2u", str(out)])
    text = capsys.readouterr().out
    assert "has no admission mode" in text and "not recorded" not in text, text


def test_a_long_read_error_is_cut_at_a_word(vtc_run, tmp_path, capsys):
    """pyarrow's message was cut mid-word at 160 characters ("... this is not a parquet )")."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(vtc_run, bad)
    data = (bad / "service.parquet").read_bytes()
    (bad / "service.parquet").write_bytes(data[:100])
    err = _one_line_exit_2(capsys, ["check", "vtc-2u", str(bad)])
    assert "parquet )" not in err and " …)" in err, err
