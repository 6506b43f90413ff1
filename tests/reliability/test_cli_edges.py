"""CLI edges from issue 15: the last-resort handler (item 5), a failed sweep start leaves nothing
(item 13), and damaged run files are bad input (exit 2), never "violated" (exit 1)."""

from __future__ import annotations

import time

import pytest

from llmsched.experiments import cli


def test_unexpected_error_is_one_line_with_a_hint(monkeypatch, capsys):
    mod = cli._load("policies")

    def boom(args):
        raise RuntimeError("something\nbroke inside")

    monkeypatch.setattr(mod, "run", boom)
    code = cli.main(["policies"])
    err = capsys.readouterr().err
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "RuntimeError: something broke inside" in lines[0] and "bug" in lines[0]


def test_traceback_on_request(monkeypatch):
    mod = cli._load("policies")
    monkeypatch.setattr(mod, "run", lambda args: 1 / 0)
    monkeypatch.setenv("LLMSCHED_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["policies"])


def test_os_error_is_exit_2(monkeypatch, capsys):
    mod = cli._load("policies")

    def denied(args):
        raise PermissionError(13, "Permission denied", "/root/x")

    monkeypatch.setattr(mod, "run", denied)
    assert cli.main(["policies"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "/root/x" in err


def test_unreachable_dask_scheduler_leaves_no_directory(tmp_path, monkeypatch, capsys):
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('[sweep]\nname = "t"\n[base.workload]\nsource = "poisson"\nnum_requests = 5\n'
                          '[grid]\n"workload.rate" = [1.0]\n')
    out = tmp_path / "out"
    import llmsched.experiments.sweep as sweep

    monkeypatch.setattr(sweep, "DASK_CONNECT_TIMEOUT", "2s")
    t0 = time.monotonic()
    code = cli.main(["sweep", str(sweep_file), "--out", str(out), "--dask", "tcp://127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert time.monotonic() - t0 < 60


def test_check_on_a_damaged_run_is_exit_2_not_1(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["simulate", "--workload", "poisson", "--num-requests", "20", "--no-progress",
                     "--out", str(out)]) == 0
    data = (out / "service.parquet").read_bytes()
    (out / "service.parquet").write_bytes(data[:100])
    capsys.readouterr()
    for name in ("vtc-2u", "vtc-u", "vtc-4u", "work-conservation", "vtc-latency", "vtc-non-overloaded"):
        assert cli.main(["check", name, str(out)]) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "service.parquet" in err, err
