"""Sweep files: parsing, grid expansion, point keys, and one-line exit-2 errors for malformed files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmsched.experiments import cli, sweep
from llmsched.experiments.sweep_testing import synthetic_sweep_toml
from llmsched.sim.config import RunConfig
from llmsched.sim.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def _spec(text: str, tmp_path: Path) -> sweep.SweepSpec:
    f = tmp_path / "s.toml"
    f.write_text(text)
    return sweep.load_spec(f)


def test_expand_is_the_cartesian_product_in_file_order(tmp_path):
    spec = _spec(synthetic_sweep_toml(), tmp_path)
    points = sweep.expand(spec)
    # 2 policies x 3 rates x 2 seeds, last key fastest
    assert len(points) == 12
    assert [p.params["seed"] for p in points[:4]] == [0, 1, 0, 1]
    assert [p.params["workload.rate"] for p in points[:4]] == [0.5, 0.5, 1.0, 1.0]
    assert {p.params["cluster.instances.0.batching"] for p in points[:6]} == {"sarathi"}
    for p in points:
        assert p.config["cluster"]["instances"][0]["batching"] == p.params["cluster.instances.0.batching"]
        assert p.config["workload"]["rate"] == p.params["workload.rate"]
        assert p.config["seed"] == p.params["seed"]
        # the stored config is the resolved one: parsing it again gives the same dict
        assert RunConfig.from_dict(p.config).to_dict() == p.config
    assert len({p.key for p in points}) == 12


def test_point_key_depends_on_resolved_config_only(tmp_path):
    # Writing a default explicitly, or reordering keys, must not change the key.
    a = _spec('[base]\nseed = 3\n[grid]\n"workload.rate" = [2.0]\n', tmp_path)
    b_text = '[base]\nmode = "fast"\nseed = 3\n[base.cluster]\nrouter = "round-robin"\n[grid]\n"workload.rate" = [2]\n'
    (tmp_path / "b").mkdir()
    b = _spec(b_text, tmp_path / "b")
    ka, kb = sweep.expand(a)[0].key, sweep.expand(b)[0].key
    assert ka == kb
    c = _spec('[base]\nseed = 4\n[grid]\n"workload.rate" = [2.0]\n', tmp_path)
    assert sweep.expand(c)[0].key != ka
    # independent computation of the key
    import hashlib
    import json

    cfg = RunConfig.from_dict({"seed": 3, "workload": {"rate": 2.0}}).to_dict()
    want = hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert ka == want


def test_nested_grid_tables_and_params_keys(tmp_path):
    spec = _spec('[grid]\nworkload.rate = [1.0, 2.0]\nworkload.params.cv = [0.5]\n', tmp_path)
    pts = sweep.expand(spec)
    assert [k for k, _ in spec.grid] == ["workload.rate", "workload.params.cv"]
    assert pts[1].config["workload"]["params"] == {"cv": 0.5}


MALFORMED = {
    "bad_toml": ("[grid\nseed = [0]\n", "not valid TOML"),
    "unknown_top_key": ("[grids]\nseed = [0]\n", "unknown top-level key"),
    "unknown_sweep_key": ('[sweep]\nnmae = "x"\n[grid]\nseed = [0]\n', "unknown key"),
    "unknown_grid_key": ('[grid]\n"workload.rat" = [1.0]\n', "unknown config key 'workload.rat'"),
    "unknown_base_key": ("[base]\nsed = 1\n[grid]\nseed = [0]\n", "unknown field"),
    "index_out_of_range": ('[grid]\n"cluster.instances.3.batching" = ["vllm"]\n', "index out of range"),
    "no_grid": ("[base]\nseed = 1\n", "grid: missing"),
    "empty_grid": ("[grid]\n", "grid: is empty"),
    "empty_values": ("[grid]\nseed = []\n", "has no values"),
    "scalar_values": ("[grid]\nseed = 1\n", "must be a list"),
    "wrong_type": ('[grid]\n"workload.rate" = ["fast"]\n', "expected float"),
    "wrong_type_int": ("[grid]\nseed = [0.5]\n", "expected int"),
    "invalid_value": ('[grid]\n"workload.rate" = [-1.0]\n', "must be a positive number"),
    "duplicate_points": ('[grid]\n"workload.rate" = [1, 1.0]\n', "same config"),
    "bad_metrics": ('[sweep]\nmetrics = "ttft_s"\n[grid]\nseed = [0]\n', "non-empty list of metric names"),
    "bad_point_fn": ('[sweep]\npoint = "llmsched.experiments.sweep:nope"\n[grid]\nseed = [0]\n', "not a registered point function"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_sweep_file_is_one_line_exit_2(case, tmp_path, capsys):
    text, expect = MALFORMED[case]
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError):
        sweep.expand(sweep.load_spec(f))
    rc = cli.main(["sweep", str(f), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(f) in lines[0] and expect in lines[0], lines[0]
    assert not (tmp_path / "out" / "points").exists()


def test_missing_file_and_negative_control(tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "absent.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    # negative control: a well-formed file passes the same path with exit 0
    f = tmp_path / "ok.toml"
    f.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0,), policies=("vllm",)))
    assert cli.main(["sweep", str(f), "--out", str(tmp_path / "out"), "-q"]) == 0


def test_malformed_file_exit_code_from_a_real_process(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[grid]\n"workload.rate" = ["fast"]\n')
    proc = subprocess.run([sys.executable, "-m", "llmsched", "sweep", str(f)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_dry_run_lists_points(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(synthetic_sweep_toml())
    assert cli.main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 13 and out[-1].startswith("12 points, 0 done")
    # --jobs makes no sense with Dask
    assert cli.main(["sweep", str(f), "--dask-local", "2", "--jobs", "2"]) == 2


def test_metrics_filter_keeps_only_the_named_prefixes(tmp_path):
    text = synthetic_sweep_toml(rates=(0.5,), seeds=(0,), policies=("vllm",))
    text = text.replace('point = "llmsched.experiments.sweep_testing:synthetic_point"\n',
                        'point = "llmsched.experiments.sweep_testing:synthetic_point"\nmetrics = ["e2e_s", "rho"]\n')
    out = sweep.run_sweep(_spec(text, tmp_path), tmp_path / "o", progress=False)
    metric_cols = [c for c in out.summary.columns if not c.startswith("config.") and c not in ("point", "index")]
    assert metric_cols == ["e2e_s.mean", "e2e_s.noise", "rho"]


def test_unreachable_dask_scheduler_is_exit_2(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(sweep, "DASK_CONNECT_TIMEOUT", "1s")
    f = tmp_path / "s.toml"
    f.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0,), policies=("vllm",)))
    assert cli.main(["sweep", str(f), "--dask", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the scheduler" in err[0]
