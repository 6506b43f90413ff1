"""Declarative policy parameters (`llmsched.sim.params`): every registered policy declares exactly
the parameters its constructor takes, its defaults satisfy its declarations, and every invalid
value a declaration forbids is rejected when a config is read, with one line naming the field and
the fix."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest

from llmsched.sim.config import RunConfig
from llmsched.sim.errors import InputError
from llmsched.sim.params import (
    Param,
    check_params,
    declares_params,
    integer,
    number,
    numbers,
    one_of,
    param_specs,
    signature_params,
)
from llmsched.sim.registry import BATCHING, PLANNING, POLICIES, ROUTING


def _removed(factory) -> set[str]:
    out: set[str] = set()
    for cls in inspect.getmro(factory):
        out.update(k for k, v in cls.__dict__.get("PARAMS", {}).items() if v is None)
    return out


def _policies(families: tuple[str, ...] = (BATCHING, ROUTING, PLANNING)) -> list[tuple[str, str]]:
    return [(fam, name) for fam in families for name in POLICIES[fam].names()]


@pytest.mark.parametrize(("family", "name"), _policies())
def test_every_policy_declares_exactly_its_parameters(family, name):
    factory = POLICIES[family].get(name)
    assert declares_params(factory), f"{family} {name} declares no PARAMS"
    declared = set(param_specs(factory))
    taken = signature_params(factory) - _removed(factory)
    assert declared == taken, f"{family} {name}: declared {sorted(declared)} vs constructor {sorted(taken)}"


@pytest.mark.parametrize(("family", "name"), _policies())
def test_defaults_satisfy_the_declarations(family, name):
    factory = POLICIES[family].get(name)
    defaults = {}
    for cls in reversed(inspect.getmro(factory)):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for pname, prm in inspect.signature(init).parameters.items():
            if prm.default is not prm.empty:
                defaults[pname] = prm.default
    specs = param_specs(factory)
    for pname, value in defaults.items():
        if pname in specs:
            assert specs[pname].problem(value) is None, f"{name}.{pname} default {value!r} rejected"


def _invalid_values(spec: Param) -> list:
    """Values the declaration forbids (derived from the declaration, not from the policy)."""
    bad: list = {"number": ["fast", True], "integer": ["fast", True, 1.5], "flag": ["yes", 1],
                 "text": [3], "choice": ["no-such-choice"], "numbers": ["fast", ["a"]],
                 "list": ["fast"], "mapping": [3]}[spec.kind]
    if spec.kind in ("number", "integer", "numbers"):
        wrap = (lambda v: [v]) if spec.kind == "numbers" else (lambda v: v)
        if spec.low is not None:
            bad.append(wrap(spec.low if spec.low_open else spec.low - 1))
        if spec.high is not None:
            bad.append(wrap(spec.high if spec.high_open else spec.high + 1))
        if spec.finite and spec.kind != "numbers":
            bad.append(math.inf)
        if spec.kind != "numbers":
            bad.append(math.nan)
    return bad  # (None, "omit it", has no TOML spelling; test_param_unit checks `optional`)


def _cases():
    for family, name in _policies((BATCHING, ROUTING)):  # planners are not named by a run config
        for pname, spec in sorted(param_specs(POLICIES[family].get(name)).items()):
            for value in _invalid_values(spec):
                yield pytest.param(family, name, pname, value, id=f"{name}.{pname}={value!r}")


def _config(family: str, name: str, params: dict) -> dict:
    inst = {"model": "llama-2-7b", "gpu": "a100-80gb", "batching": "sarathi"}
    cluster: dict = {"instances": [inst], "router": "round-robin"}
    if family == BATCHING:
        inst["batching"], inst["batching_params"] = name, params
    else:
        cluster["router"], cluster["router_params"] = name, params
    return {"cluster": cluster}


@pytest.mark.parametrize(("family", "name", "pname", "value"), list(_cases()))
def test_invalid_values_are_rejected_with_one_line(family, name, pname, value):
    with pytest.raises(InputError) as err:
        RunConfig.from_dict(_config(family, name, {pname: value}), "run.toml").validate("run.toml")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("run.toml: ")
    assert f"_params.{pname}" in msg and "(fix: " in msg


def test_unknown_parameter_names_the_accepted_ones():
    with pytest.raises(InputError, match=r"router_params\.windows_s: unknown parameter .* accepted: .*window_s"):
        RunConfig.from_dict(_config(ROUTING, "preble", {"windows_s": 10}), "run.toml").validate("run.toml")


def test_param_unit():
    """Hand-derived: each constructor's boundary and type rules."""
    positive = number(0, low_open=True)
    assert positive.problem(1e-9) is None and positive.problem(0) and positive.problem(-1)
    assert positive.problem(True)  # a bool is not a number
    assert positive.problem(math.inf) and number(0, finite=False).problem(math.inf) is None
    assert integer(1).problem(2) is None and integer(1).problem(2.0) is None and integer(1).problem(2.5)
    assert integer(1, optional=True).problem(None) is None and integer(1).problem(None)
    unit = number(0, 1, high_open=True)
    assert unit.problem(0) is None and unit.problem(0.999) is None and unit.problem(1)
    assert one_of("a", "b").problem("a") is None and one_of("a", "b").problem("c")
    assert one_of("a", callable_ok=True).problem(len) is None
    assert numbers(0).problem([1, 2]) is None and numbers(0).problem(3) is None and numbers(0).problem([1, -2])
    assert positive.expects() == "a number > 0"
    with pytest.raises(ValueError):
        Param("colour")


def test_direct_check_params_names_policy_and_field():
    factory = POLICIES[BATCHING].get("vllm")
    with pytest.raises(InputError, match=r"cfg: x\.token_budget: vllm: 0 is out of range \(fix: use a whole number >= 1\)"):
        check_params(factory, {"token_budget": 0}, policy="vllm", source="cfg", field="x")


def test_cli_exit_2_on_a_bad_policy_parameter(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[workload]\nsource = "sharegpt"\nnum_requests = 5\n\n[cluster]\nrouter = "preble"\n'
                   'router_params = { window_s = -1.0 }\n\n[[cluster.instances]]\nmodel = "llama-2-7b"\n'
                   'gpu = "a100-80gb"\nbatching = "sarathi"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "llmsched", "simulate", "--config", str(cfg), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "router_params.window_s" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
