"""The `llmsched simulate` front door: a real run writes the four files; every bad input exits 2
with exactly one line naming the file or flag, the field and the fix, and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from llmsched.sim.results import FILES, load_run

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmsched", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def test_simulate_writes_the_four_files(tmp_path):
    out = tmp_path / "run"
    proc = _cli("simulate", "--workload", "azure-conv-2023", "--num-requests", "300", "--model", "llama-2-7b",
                "--gpu", "a100-80gb", "--instances", "4", "--batching", "sarathi", "--router", "round-robin",
                "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for f in FILES:
        assert (out / f).is_file(), f
    run = load_run(out)
    r = run.requests
    # Llama-2-7B has a 4096-token context: longer requests are rejected (issue 15 item 7), the rest finish
    too_long = (r["prompt_tokens"] + r["output_tokens"]) > 4096
    assert len(r) == 300 and r.loc[~too_long, "finish_s"].notna().all()
    assert (r["rejected"] == too_long).all() and run.summary["num_rejected_context"] == int(too_long.sum())
    assert set(r.loc[~too_long, "instance"]) == {0, 1, 2, 3}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["cluster"]["instances"][0]["count"] == 4
    assert summary["seed"] == 0 and "ttft_s" in summary
    assert "TTFT" in proc.stdout


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'seed = 7\n[workload]\nsource = "poisson"\nrate = 2.0\nnum_requests = 40\n'
        '[cluster]\nrouter = "least-outstanding-tokens"\n'
        '[[cluster.instances]]\nmodel = "llama-2-7b"\ngpu = "a100-80gb"\ncount = 2\nbatching = "orca"\n'
    )
    out = tmp_path / "run"
    proc = _cli("simulate", "--config", str(cfg), "--batching", "sarathi", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 7
    assert summary["config"]["cluster"]["instances"][0]["batching"] == "sarathi"
    assert summary["num_requests"] == 40


def _bad_trace(tmp_path: Path) -> Path:
    p = tmp_path / "trace.csv"
    p.write_text("arrival_s,client_id,input_tokens\n0.0,0,10\n")
    return p


def _bad_toml(tmp_path: Path) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text("[cluster\nrouter = 1\n")
    return p


def _unknown_field_toml(tmp_path: Path) -> Path:
    p = tmp_path / "unknown.toml"
    p.write_text('[cluster]\nrouterr = "random"\n')
    return p


BAD_INPUTS = {
    "unknown workload": (["--workload", "no-such-trace"], "no-such-trace"),
    "unknown model": (["--model", "llama-9-1b"], "model"),
    "unknown gpu": (["--gpu", "tpu-v9"], "gpu"),
    "model does not fit": (["--model", "llama-2-70b", "--gpu", "t4"], "tp"),
    "unknown batching policy": (["--batching", "nope"], "batching"),
    "unknown router": (["--router", "nope"], "router"),
    "negative rate": (["--rate", "-3"], "rate"),
    "zero instances": (["--instances", "0"], "--instances"),
    "bad flag type": (["--instances", "four"], "--instances"),
    "unknown flag": (["--instancez", "4"], "instancez"),
    "bad cost spec": (["--cost", "quadratic:1"], "cost"),
    "bad batching param": (["--batching", "sarathi", "--batching-param", "chunk=3"], "chunk"),
    "bad pd": (["--pd", "2-2"], "--pd"),
    "trace missing column": ("bad_trace", "output_tokens"),
    "malformed toml": ("bad_toml", "bad.toml"),
    "unknown config field": ("unknown_toml", "routerr"),
    "missing config file": (["--config", "/nonexistent/run.toml"], "run.toml"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2(case, tmp_path):
    args, needle = BAD_INPUTS[case]
    if args == "bad_trace":
        args = ["--workload", str(_bad_trace(tmp_path))]
    elif args == "bad_toml":
        args = ["--config", str(_bad_toml(tmp_path))]
    elif args == "unknown_toml":
        args = ["--config", str(_unknown_field_toml(tmp_path))]
    proc = _cli("simulate", "--num-requests", "5", "--no-progress", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0], lines[0]


def test_check_on_missing_run_dir_exits_2(tmp_path):
    proc = _cli("check", "vtc-2u", str(tmp_path / "nope"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_saved_run_round_trips(tmp_path):
    from llmsched.sim.config import RunConfig
    from llmsched.sim.run import run

    res = run(RunConfig.from_dict({"workload": {"source": "poisson", "num_requests": 30},
                                   "cluster": {"instances": [{"kv_capacity_tokens": 20000}]}}))
    res.save(tmp_path)
    back = load_run(tmp_path)
    pd.testing.assert_frame_equal(back.requests, res.requests)
    pd.testing.assert_frame_equal(back.service, res.service)


def test_input_errors_survive_pickling():
    """A worker process's InputError reaches the parent whole (joblib pickles it); before, its
    four-argument constructor made unpickling fail and the pool reported a broken process."""
    import pickle

    from llmsched.sim.errors import InputError

    err = pickle.loads(pickle.dumps(InputError("run.toml", "cluster.router", "unknown router 'x'", "run llmsched policies")))
    assert isinstance(err, InputError) and err.field == "cluster.router"
    assert str(err) == "run.toml: cluster.router: unknown router 'x' (fix: run llmsched policies)"
