"""A sweep file's `point = "module:function"` imports code: only registered point functions are
accepted unless --allow-import (issue 18, item 7)."""

from __future__ import annotations

import pytest

from llmsched.experiments import sweep
from llmsched.experiments.cli import main
from llmsched.sim.errors import InputError

GRID = {"grid": {"seed": [0]}}
UNREGISTERED = "tests.package.point_fixture:echo"  # importable from the repo root, never registered


def test_registered_points_are_accepted_by_name_or_reference():
    by_ref = sweep.parse_spec({"sweep": {"point": sweep.DEFAULT_POINT}, **GRID})
    by_name = sweep.parse_spec({"sweep": {"point": "simulate"}, **GRID})
    assert by_ref.point == by_name.point == sweep.DEFAULT_POINT
    synth = sweep.parse_spec({"sweep": {"point": "synthetic"}, **GRID})
    assert synth.point == "llmsched.experiments.sweep_testing:synthetic_point"


def test_an_unregistered_point_is_refused_without_importing_it(monkeypatch):
    imported = []
    real = sweep.importlib.import_module
    monkeypatch.setattr(sweep.importlib, "import_module", lambda name: imported.append(name) or real(name))
    with pytest.raises(InputError, match="not a registered point function"):
        sweep.parse_spec({"sweep": {"point": UNREGISTERED}, **GRID}, "s.toml")
    assert imported == []  # refused before any import


def test_allow_import_accepts_it_and_still_checks_the_function():
    spec = sweep.parse_spec({"sweep": {"point": UNREGISTERED}, **GRID}, "s.toml", allow_import=True)
    assert sweep.resolve_point_fn(spec.point)({"seed": 3}) == {"seed_echo": 3.0}
    with pytest.raises(InputError, match="no function"):
        sweep.parse_spec({"sweep": {"point": "tests.package.point_fixture:nope"}, **GRID}, allow_import=True)


def test_cli_flag(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(f'[sweep]\npoint = "{UNREGISTERED}"\n[grid]\nseed = [0, 1]\n')
    assert main(["sweep", str(f), "--dry-run"]) == 2
    assert "--allow-import" in capsys.readouterr().err
    assert main(["sweep", str(f), "--dry-run", "--allow-import"]) == 0
    assert "2 points" in capsys.readouterr().out
