"""Bad input across every subcommand: exit 2, exactly one line on stderr, no traceback, and no
existing file changed (issue 15, acceptance).

Each case runs `llmsched.experiments.cli.main(argv)` in-process inside a scratch directory that
holds a valid run, a valid plan and a few broken files; before and after, every file's bytes are
hashed and the set of paths is compared (a case may create nothing either). A handful of cases also
run as real processes (`python -m llmsched`) to hold the same contract end to end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmsched.experiments.cli import main

RUN = "run"  # a valid run directory inside the scratch directory
PLAN = "plan"  # a plan directory (written by hand: cut.json broken on purpose per case)

CASES: list[tuple[str, list[str]]] = [
    # -- simulate
    ("simulate: unknown flag", ["simulate", "--bogus"]),
    ("simulate: unknown workload name", ["simulate", "--workload", "no-such-trace", "--no-progress"]),
    ("simulate: missing trace file", ["simulate", "--workload", "missing.csv", "--no-progress"]),
    ("simulate: header-only trace", ["simulate", "--workload", "header_only.csv", "--no-progress"]),
    ("simulate: unknown CSV column", ["simulate", "--workload", "typo.csv", "--no-progress"]),
    ("simulate: unknown JSONL key", ["simulate", "--workload", "typo.jsonl", "--no-progress"]),
    ("simulate: binary JSONL", ["simulate", "--workload", "binary.jsonl", "--no-progress"]),
    ("simulate: binary CSV", ["simulate", "--workload", "binary.csv", "--no-progress"]),
    ("simulate: JSONL not JSON", ["simulate", "--workload", "notjson.jsonl", "--no-progress"]),
    ("simulate: unsorted arrivals", ["simulate", "--workload", "unsorted.csv", "--no-progress"]),
    ("simulate: negative tokens", ["simulate", "--workload", "negative.csv", "--no-progress"]),
    ("simulate: infinite arrival", ["simulate", "--workload", "inf.csv", "--no-progress"]),
    ("simulate: huge rate x duration", ["simulate", "--workload", "poisson", "--rate", "1e9",
                                        "--duration", "1e9", "--no-progress"]),
    ("simulate: infinite duration", ["simulate", "--workload", "poisson", "--duration", "inf", "--no-progress"]),
    ("simulate: negative rate", ["simulate", "--rate", "-1", "--no-progress"]),
    ("simulate: 100000 instances", ["simulate", "--instances", "100000", "--no-progress"]),
    ("simulate: 0 instances", ["simulate", "--instances", "0", "--no-progress"]),
    ("simulate: --pd 0:2", ["simulate", "--pd", "0:2", "--no-progress"]),
    ("simulate: --pd 1:x", ["simulate", "--pd", "1:x", "--no-progress"]),
    ("simulate: --pd with --instances", ["simulate", "--pd", "1:1", "--instances", "2", "--no-progress"]),
    ("simulate: --out is a file", ["simulate", "--workload", "poisson", "--num-requests", "5",
                                   "--out", "a_file.txt", "--no-progress"]),
    ("simulate: --out holds a run", ["simulate", "--workload", "poisson", "--num-requests", "5",
                                     "--out", RUN, "--no-progress"]),
    ("simulate: missing config", ["simulate", "--config", "missing.toml", "--no-progress"]),
    ("simulate: config not TOML", ["simulate", "--config", "broken.toml", "--no-progress"]),
    ("simulate: config unknown field", ["simulate", "--config", "unknown_field.toml", "--no-progress"]),
    ("simulate: config binary", ["simulate", "--config", "binary.csv", "--no-progress"]),
    ("simulate: unknown batching", ["simulate", "--batching", "nope", "--num-requests", "3", "--no-progress"]),
    ("simulate: param without =", ["simulate", "--batching-param", "quantum", "--no-progress"]),
    ("simulate: bad DLPM quantum", ["simulate", "--batching", "dlpm", "--batching-param", "quantum=-1",
                                    "--num-requests", "3", "--no-progress"]),
    ("simulate: unknown batching param", ["simulate", "--batching-param", "nope=1", "--num-requests", "3",
                                          "--no-progress"]),
    ("simulate: token budget 0", ["simulate", "--token-budget", "0", "--no-progress"]),
    ("simulate: unknown model", ["simulate", "--model", "nope", "--num-requests", "3", "--no-progress"]),
    ("simulate: unknown gpu", ["simulate", "--gpu", "nope", "--num-requests", "3", "--no-progress"]),
    ("simulate: unknown cost", ["simulate", "--cost", "nope", "--num-requests", "3", "--no-progress"]),
    ("simulate: unknown router", ["simulate", "--router", "nope", "--num-requests", "3", "--no-progress"]),
    ("simulate: seed not int", ["simulate", "--seed", "x"]),
    ("simulate: unknown mode", ["simulate", "--mode", "slow"]),
    # -- workloads / policies
    ("workloads: unknown name", ["workloads", "--params", "no-such-trace"]),
    ("workloads: unknown flag", ["workloads", "--bogus"]),
    ("policies: unknown flag", ["policies", "--bogus"]),
    # -- check
    ("check: unknown checker", ["check", "no-such-checker", RUN]),
    ("check: missing path", ["check", "stability"]),
    ("check: path does not exist", ["check", "stability", "nowhere"]),
    ("check: not a run directory", ["check", "stability", "empty_dir"]),
    ("check: truncated parquet", ["check", "stability", "corrupt_run"]),
    ("check: truncated parquet (fairness)", ["check", "vtc-2u", "corrupt_run"]),
    ("check: summary.json not JSON", ["check", "vtc-2u", "bad_summary_run"]),
    ("check: unknown metric", ["check", "stability", RUN, "-o", "metric=nope"]),
    ("check: unknown option", ["check", "stability", RUN, "-o", "nope=1"]),
    ("check: option without =", ["check", "stability", RUN, "-o", "metric"]),
    ("check: placement on a broken cut.json", ["check", "placement", PLAN]),
    # -- capacity
    ("capacity: unknown model", ["capacity", "--model", "nope"]),
    ("capacity: bad means", ["capacity", "--workload", "means:x"]),
    ("capacity: 0 requests", ["capacity", "--num-requests", "0"]),
    ("capacity: missing trace", ["capacity", "--workload", "missing.csv"]),
    # -- place
    ("place: unknown cluster", ["place", "--cluster", "no-such-cluster", "--out", "p_out", "--quiet"]),
    ("place: unknown method", ["place", "--cluster", "single24", "--method", "nope"]),
    ("place: negative time limit", ["place", "--cluster", "single24", "--time-limit", "-1"]),
    ("place: missing --cluster", ["place"]),
    # -- reproduce / sweep / report
    ("reproduce: unknown name", ["reproduce", "no-such-reproduction", "--out", "r_out", "--no-report"]),
    ("sweep: missing file", ["sweep", "missing.toml"]),
    ("sweep: unknown top-level key", ["sweep", "bad_sweep.toml", "--out", "s_out"]),
    ("sweep: bad --plot", ["sweep", "good_sweep.toml", "--out", "s_out", "--plot", "nonsense"]),
    ("sweep: --plot of an unknown column", ["sweep", "good_sweep.toml", "--out", "s_out", "--jobs", "1",
                                            "--plot", "workload.rate:no_such_metric"]),
    ("sweep: --jobs with --dask", ["sweep", "good_sweep.toml", "--dask", "tcp://127.0.0.1:9", "--jobs", "2"]),
    ("report: missing results directory", ["report", "nowhere", "--output", "rep.md"]),
    ("top level: unknown command", ["no-such-command"]),
]


def _write_scratch(root: Path, run_src: Path) -> None:
    shutil.copytree(run_src, root / RUN)
    (root / "a_file.txt").write_text("keep me\n")
    (root / "empty_dir").mkdir()
    (root / "header_only.csv").write_text("arrival_s,client_id,input_tokens,output_tokens\n")
    (root / "typo.csv").write_text("arrival_s,client_id,input_tokens,output_tokens,ttft_slo\n0,0,10,5,0.1\n")
    (root / "typo.jsonl").write_text('{"arrival_s": 0, "client_id": 0, "input_tokens": 10, '
                                     '"output_tokens": 5, "tbt_slo": 0.1}\n')
    (root / "binary.jsonl").write_bytes(bytes(range(256)) * 3)
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 64)
    (root / "notjson.jsonl").write_text("{not json}\n")
    (root / "unsorted.csv").write_text("arrival_s,client_id,input_tokens,output_tokens\n1,0,10,5\n0,0,10,5\n")
    (root / "negative.csv").write_text("arrival_s,client_id,input_tokens,output_tokens\n0,0,-10,5\n")
    (root / "inf.csv").write_text("arrival_s,client_id,input_tokens,output_tokens\ninf,0,10,5\n")
    (root / "broken.toml").write_text("[workload\nsource = 1\n")
    (root / "unknown_field.toml").write_text("[workload]\nsorce = 'poisson'\n")
    corrupt = root / "corrupt_run"
    shutil.copytree(run_src, corrupt)
    for name in ("requests.parquet", "service.parquet"):
        data = (corrupt / name).read_bytes()
        (corrupt / name).write_bytes(data[: len(data) // 2])  # truncated mid-file
    bad_summary = root / "bad_summary_run"
    shutil.copytree(run_src, bad_summary)
    (bad_summary / "summary.json").write_text('{"config": ')
    plan = root / PLAN
    plan.mkdir()
    (plan / "plan.json").write_text("{}")
    (plan / "flow.csv").write_text("src,dst,capacity_tok_s,flow_tok_s\n")
    (plan / "cut.json").write_text("{broken")
    (root / "bad_sweep.toml").write_text("[base]\nseed = 0\n[grid]\nseed = [0]\n[nonsense]\nx = 1\n")
    (root / "good_sweep.toml").write_text(
        '[sweep]\nname = "t"\n[base.workload]\nsource = "poisson"\nnum_requests = 5\n[grid]\n"workload.rate" = [1.0]\n')


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        if not files and not _dirs:
            out[str(Path(dirpath).relative_to(root)) + "/"] = "dir"
    return out


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("src") / "run"
    assert main(["simulate", "--workload", "poisson", "--rate", "4", "--num-requests", "40", "--no-progress",
                 "--out", str(out)]) == 0
    return out


def test_the_table_is_big_enough_and_covers_every_subcommand():
    from llmsched.experiments.cli import SUBCOMMANDS

    assert len(CASES) >= 40
    covered = {argv[0] for _, argv in CASES}
    assert set(SUBCOMMANDS) <= covered, set(SUBCOMMANDS) - covered


@pytest.mark.parametrize("label,argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(label, argv, tmp_path, valid_run, monkeypatch, capsys):
    _write_scratch(tmp_path, valid_run)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit through SystemExit
        code = exc.code
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, f"{label}: exit {code}, stderr {captured.err!r}"
    assert len(lines) == 1, f"{label}: stderr has {len(lines)} lines: {captured.err!r}"
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    for leak in ("np.float64(", "PosixPath(", "llmsched llmsched"):
        assert leak not in lines[0], f"{label}: message leaks {leak!r}: {lines[0]}"
    after = _snapshot(tmp_path)
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    assert not changed, f"{label}: changed {changed}"
    assert set(after) == set(before), f"{label}: created/removed {sorted(set(after) ^ set(before))}"


SUBPROCESS_CASES = [
    ["check", "stability", "corrupt_run"],
    ["simulate", "--workload", "binary.jsonl", "--no-progress"],
    ["simulate", "--bogus"],
    ["sweep", "missing.toml"],
]


@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=[" ".join(a) for a in SUBPROCESS_CASES])
def test_bad_input_as_a_real_process(argv, tmp_path, valid_run):
    _write_scratch(tmp_path, valid_run)
    before = _snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "llmsched", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert _snapshot(tmp_path) == before
