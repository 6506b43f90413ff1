"""Resumption: a sweep killed mid-way and started again loses no point, duplicates none, recomputes
none that were complete, and ignores half-written temp files and unreadable point files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from llmsched.experiments import cli, sweep
from llmsched.experiments.sweep_testing import synthetic_sweep_toml

REPO = Path(__file__).resolve().parents[2]


def _cli(args, env_extra=None, **kw):
    env = dict(os.environ, **(env_extra or {}))
    if not env_extra:
        env.pop("LLMSCHED_SWEEP_TEST_CRASH_AFTER", None)
    return subprocess.run([sys.executable, "-m", "llmsched", "sweep", *args, "-q"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def _reference(tmp_path: Path, toml: Path) -> pd.DataFrame:
    out = sweep.run_sweep(sweep.load_spec(toml), tmp_path / "reference", progress=False)
    assert out.ok and out.ran == out.total
    return out.summary


def test_crash_after_k_points_then_restart(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml())
    out = tmp_path / "out"
    # First start: the point function kills the process when the 5th point starts.
    first = _cli([str(toml), "--out", str(out), "--jobs", "1"], {"LLMSCHED_SWEEP_TEST_CRASH_AFTER": "4"})
    assert first.returncode == 17, first.stderr
    done_before = sweep.completed_points(out)
    assert len(done_before) == 4
    assert not (out / "summary.parquet").exists()
    # What a writer killed mid-write leaves: a temp file; and a torn file under a real point's name.
    points = sweep.expand(sweep.load_spec(toml))
    todo = [p for p in points if p.key not in done_before]
    (out / "points" / f".{todo[0].key}.json.abc123.tmp").write_text('{"key": "' + todo[0].key + '", "metr')
    (out / "points" / f"{todo[1].key}.json").write_text('{"key": "' + todo[1].key + '", "metrics": {"rh')
    # Second start (in this process), no crash: finishes the rest.
    second = sweep.run_sweep(sweep.load_spec(toml), out, progress=False)
    assert second.ok and (second.total, second.skipped, second.ran) == (12, 4, 8)
    summary = pd.read_parquet(out / "summary.parquet")
    # no lost and no duplicated points
    assert sorted(summary["point"]) == sorted(p.key for p in points)
    assert summary["point"].is_unique and list(summary["index"]) == list(range(12))
    # the 4 points completed before the crash were not recomputed (written by the first process)
    after = sweep.completed_points(out)
    for key, rec in done_before.items():
        assert after[key]["pid"] == rec["pid"]
    assert {after[p.key]["pid"] for p in todo} == {os.getpid()}
    # identical to an uninterrupted run
    pd.testing.assert_frame_equal(summary, _reference(tmp_path, toml))
    # a third start has nothing to do
    third = sweep.run_sweep(sweep.load_spec(toml), out, progress=False)
    assert third.ok and (third.skipped, third.ran) == (12, 0)


def test_sigkill_at_an_arbitrary_moment_with_two_workers(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.25, 0.5, 0.75, 1.0), seeds=(0, 1), work_ms=40.0))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSCHED_SWEEP_TEST")}
    proc = subprocess.Popen([sys.executable, "-m", "llmsched", "sweep", str(toml), "--out", str(out),
                             "--jobs", "2", "-q"], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(sweep.completed_points(out)) < 4 and proc.poll() is None:
        time.sleep(0.02)
    finished_early = proc.poll() is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its joblib workers, all started by this test
    assert not finished_early, "the sweep finished before it could be killed; raise work_ms"
    proc.wait(timeout=30)
    n_before = len(sweep.completed_points(out))
    assert 4 <= n_before < 16
    second = sweep.run_sweep(sweep.load_spec(toml), out, progress=False)
    assert second.ok and (second.total, second.skipped, second.ran) == (16, n_before, 16 - n_before)
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(summary) == 16 and summary["point"].is_unique
    pd.testing.assert_frame_equal(summary, _reference(tmp_path, toml))
    # every point file on disk is complete JSON (atomic writes); stray temp files are only ever ignored
    for f in (out / "points").iterdir():
        if not f.name.startswith("."):
            json.loads(f.read_text())


def test_failed_points_are_recorded_and_retried(tmp_path, monkeypatch):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml())
    out = tmp_path / "out"
    spec = sweep.load_spec(toml)
    monkeypatch.setenv("LLMSCHED_SWEEP_TEST_FAIL_RATE", "1.0")
    first = sweep.run_sweep(spec, out, progress=False)
    assert len(first.failed) == 4 and first.ran == 8 and not first.ok  # 2 policies x 2 seeds at rate 1.0
    assert len(list((out / "failed").glob("*.json"))) == 4
    assert len(first.summary) == 8
    monkeypatch.delenv("LLMSCHED_SWEEP_TEST_FAIL_RATE")
    second = sweep.run_sweep(spec, out, progress=False)
    assert second.ok and second.skipped == 8 and second.ran == 4
    assert not list((out / "failed").glob("*.json"))


def test_summary_has_no_timing_columns_and_timings_are_kept_apart(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0,)))
    res = sweep.run_sweep(sweep.load_spec(toml), tmp_path / "o", progress=False)
    assert not [c for c in res.summary.columns if "wall" in c]
    assert "e2e_s.mean" in res.summary and "config.workload.rate" in res.summary
    # e2e = 1/(mu - lambda) with mu = 512/256 = 2 and lambda = 0.5 (M/M/1, see sweep_testing)
    assert res.summary["e2e_s.mean"].tolist() == [1 / 1.5, 1 / 1.5]
    timings = pd.read_csv(tmp_path / "o" / "timings.csv")
    assert list(timings.columns) == ["point", "index", "wall_s", "host", "pid"] and len(timings) == 2


def test_output_dir_of_another_point_function_is_refused(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0,), policies=("vllm",)))
    sweep.run_sweep(sweep.load_spec(toml), tmp_path / "o", progress=False)
    other = tmp_path / "t.toml"
    other.write_text('[sweep]\npoint = "llmsched.experiments.sweep:simulate_point"\n[grid]\nseed = [0]\n')
    assert cli.main(["sweep", str(other), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "point function" in capsys.readouterr().err


def test_rerun_forgets_earlier_results(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0, 1), policies=("vllm",)))
    spec = sweep.load_spec(toml)
    first = sweep.run_sweep(spec, tmp_path / "o", progress=False)
    stale = tmp_path / "o" / "points" / "0123456789abcdef.json"  # a point no longer in the grid
    stale.write_text("{}")
    again = sweep.run_sweep(spec, tmp_path / "o", progress=False, rerun=True)
    assert (again.skipped, again.ran) == (0, 2) and not stale.exists()
    pd.testing.assert_frame_equal(first.summary, again.summary, check_exact=True)
