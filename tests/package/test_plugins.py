"""Plugins through entry points: a fixture distribution (tests/package/fixtures/plugin: a module and
its .dist-info with entry_points.txt) is put on the path of a fresh interpreter, which must then
list its policy, router, checker, reproduction, workload and sweep point and run them. A plugin that fails to
import is reported and skipped; the bundled entries stay. Without the fixture on the path, none of
its names exist (the negative control)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "plugin"


def _run(code: str, path: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    shutil.copytree(FIXTURE, dest, dirs_exist_ok=True)
    return dest


PROBE = """
import json, warnings
import numpy as np
import llmsched
from llmsched.experiments.registry import all_reproductions
from llmsched.experiments.sweep import registered_points
from llmsched.policies import registry
from llmsched.proofs_check.registry import checkers
from llmsched.sim.workload import catalog
out = {
    "workloads": catalog.names(),
    "batching": registry.names(registry.BATCHING),
    "routing": registry.names(registry.ROUTING),
    "checkers": sorted(checkers()),
    "reproductions": sorted(all_reproductions()),
    "points": sorted(registered_points().values()),
}
if "demo-decode-first" in out["batching"]:
    w = llmsched.Workload(arrival_s=np.array([0.0, 0.0, 0.1]), client=np.array([0, 1, 0]),
                          prompt_tokens=np.array([64, 32, 16]), output_tokens=np.array([4, 8, 2]))
    spec = llmsched.InstanceSpec(count=2, kv_capacity_tokens=4096, cost="linear:0.01,0.0001,0.0002,0")
    res = llmsched.simulate(w, spec, batching="demo-decode-first", router="demo-last-instance")
    out["finished"] = int(res.requests["finish_s"].notna().sum())
    out["instances"] = sorted(set(res.requests["instance"].tolist()))
    v = llmsched.check("demo-finished", res)
    out["verdict"] = [v.ok, v.summary]
    spec = llmsched.InstanceSpec(kv_capacity_tokens=4096, cost="linear:0.01,0.0001,0.0002,0")
    by_name = llmsched.simulate(llmsched.WorkloadSpec(source="demo-three-requests", params=(("output_tokens", 7),)),
                                spec, num_requests=2)
    out["plugin_workload_outputs"] = by_name.requests["output_tokens"].tolist()
print(json.dumps(out))
"""


def test_fixture_plugin_registers_everything_and_runs(plugin_path):
    proc = _run(PROBE, plugin_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "demo-decode-first" in out["batching"] and "sarathi" in out["batching"]
    assert "demo-last-instance" in out["routing"] and "round-robin" in out["routing"]
    assert "demo-finished" in out["checkers"] and "vtc-2u" in out["checkers"]
    assert "demo-plugin-repro" in out["reproductions"]
    assert "demo-echo" in out["points"] and "simulate" in out["points"]
    # the plugin's policies ran: all 3 requests finished, all on the last of the 2 instances
    assert out["finished"] == 3 and out["instances"] == [1]
    assert out["verdict"] == [True, "3 of 3 requests finished"]
    # the plugin workload by name, with its parameter, cut to the first 2 requests by the catalogue
    assert "demo-three-requests" in out["workloads"] and "sharegpt" in out["workloads"]
    assert out["plugin_workload_outputs"] == [7, 7]


def test_without_the_plugin_its_names_do_not_exist():
    proc = _run(PROBE, None)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "demo-decode-first" not in out["batching"] and "demo-finished" not in out["checkers"]
    assert "demo-plugin-repro" not in out["reproductions"] and "demo-echo" not in out["points"]
    assert "demo-three-requests" not in out["workloads"]


def test_cli_lists_plugin_policies(plugin_path):
    proc = _run("from llmsched.experiments.cli import main; raise SystemExit(main(['policies']))", plugin_path)
    assert proc.returncode == 0, proc.stderr
    assert "demo-decode-first" in proc.stdout and "demo-last-instance" in proc.stdout


def test_a_broken_plugin_is_reported_and_skipped(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    info = tmp_path / "llmsched_demo_plugin-0.1.dist-info" / "entry_points.txt"
    text = info.read_text().replace("[llmsched.batching]\ndemo = llmsched_demo_plugin",
                                    "[llmsched.batching]\nbroken = no_such_module_xyz")
    info.write_text(text.replace("[llmsched.routing]\ndemo = llmsched_demo_plugin\n", ""))
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from llmsched.policies import registry\nprint(registry.names(registry.BATCHING))")
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "broken = no_such_module_xyz" in proc.stderr and "failed to load" in proc.stderr
    assert "sarathi" in proc.stdout and "demo-decode-first" not in proc.stdout
