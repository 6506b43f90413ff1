"""The notebook API and packaging hygiene: `llmsched.simulate` over names and objects, `check` on an
in-memory run, the backend left alone at import, the style as a context, one version, and pytest
out of the runtime requirements."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

import llmsched
from llmsched.experiments import style
from llmsched.sim.errors import InputError
from llmsched.testing import LinearCost


def _tiny():
    # two clients; 3 requests at t = 0, 0, 0.1 s
    return llmsched.Workload(arrival_s=np.array([0.0, 0.0, 0.1]), client=np.array([0, 1, 0]),
                             prompt_tokens=np.array([64, 32, 16]), output_tokens=np.array([4, 8, 2]))


def test_simulate_objects_with_policy_overrides():
    spec = llmsched.InstanceSpec(count=2, kv_capacity_tokens=4096, batching="sarathi")
    res = llmsched.simulate(_tiny(), spec, batching="vllm", router="round-robin",
                            cost_models=lambda s: LinearCost())
    assert isinstance(res, llmsched.RunResult)
    assert list(res.requests["instance"]) == [0, 1, 0]  # round robin over 2 instances
    cfg = res.summary["config"]
    assert [g["batching"] for g in cfg["cluster"]["instances"]] == ["vllm"]  # the override was used
    assert res.summary["num_finished"] == 3
    for table in (res.requests, res.service, res.timeline):
        assert len(table) > 0


def test_simulate_catalogue_name_is_the_same_as_run_config():
    spec = llmsched.InstanceSpec(kv_capacity_tokens=20000)
    a = llmsched.simulate("sharegpt", spec, num_requests=30, seed=3)
    b = llmsched.run(llmsched.RunConfig(workload=llmsched.WorkloadSpec(source="sharegpt", num_requests=30),
                                        cluster=llmsched.ClusterSpec(instances=(spec,)), seed=3))
    assert a.requests.equals(b.requests) and a.service.equals(b.service)
    assert a.summary["config"] == b.summary["config"]


def test_simulate_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="cluster"):
        llmsched.simulate(_tiny(), "not a cluster")
    with pytest.raises(InputError, match="rate"):
        llmsched.simulate(_tiny(), None, rate=2.0)
    with pytest.raises(InputError, match="batching"):
        llmsched.simulate(_tiny(), llmsched.InstanceSpec(kv_capacity_tokens=4096), batching="no-such-policy")


def test_check_accepts_a_run_in_memory_and_on_disk(tmp_path):
    res = llmsched.simulate(_tiny(), llmsched.InstanceSpec(kv_capacity_tokens=4096),
                            cost_models=lambda s: LinearCost())
    in_memory = llmsched.check("work-conservation", res)
    on_disk = llmsched.check("work-conservation", res.save(tmp_path / "run"))
    assert in_memory.ok and on_disk.ok and in_memory.summary == on_disk.summary
    with pytest.raises(InputError, match="unknown checker"):
        llmsched.check("no-such-checker", res)


# ------------------------------------------------------------------ matplotlib
def _probe(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the platform's own default
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_leaves_the_backend_unselected():
    # The acceptance command prints the platform default; in addition no backend may have been
    # *selected* (matplotlib.use or rcParams["backend"]) by importing and using the API.
    default = _probe("import matplotlib; print(matplotlib.get_backend())")
    probe = ("import llmsched, matplotlib; llmsched.simulate; import llmsched.experiments.style;"
             "import llmsched.experiments.reproduce;"
             "print(matplotlib.rcParams._get_backend_or_none()); print(matplotlib.get_backend())")
    chosen, backend = _probe(probe).splitlines()
    assert chosen == "None" and backend == default
    # negative control: a module that switches the backend at import is caught by the same probe
    forced = _probe("import matplotlib; matplotlib.use('Agg'); print(matplotlib.rcParams._get_backend_or_none())")
    assert forced.lower() == "agg"


def test_style_is_a_context_and_figures_bypass_pyplot(tmp_path):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    open_figures = plt.get_fignums()
    fig, ax = style.figure("column")
    ax.plot([0, 1], [0, 1])
    paths = style.save(fig, tmp_path, "line")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
    assert dict(matplotlib.rcParams) == before  # nothing global changed
    assert plt.get_fignums() == open_figures  # pyplot never saw the figure
    with style.context():
        assert matplotlib.rcParams["font.size"] == style.RC["font.size"]
        _fig2, ax2 = style.figure("text", ncols=2)
        label = ax2[0].set_xlabel("x")
    assert label.get_fontsize() == style.RC["axes.labelsize"]
    assert matplotlib.rcParams["font.size"] == before["font.size"]


# ------------------------------------------------------------------ packaging
def test_version_has_one_source():
    from llmsched._version import __version__

    assert llmsched.__version__ == __version__ == md.version("llmsched")


def test_pytest_is_not_a_runtime_requirement():
    runtime = [r for r in md.requires("llmsched") or [] if "extra ==" not in r]
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for r in runtime}
    assert "pytest" not in names and "hypothesis" in names
    extras = md.metadata("llmsched").get_all("Provides-Extra")
    assert {"dask", "docs", "dev"} <= set(extras)


def test_public_names_resolve():
    for name in llmsched.__all__:
        assert getattr(llmsched, name) is not None, name
    assert llmsched.testing.workloads is not None
    with pytest.raises(AttributeError):
        llmsched.no_such_name  # noqa: B018
