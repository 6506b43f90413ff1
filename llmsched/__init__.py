"""llmsched: scheduling for LLM serving on one fast, exact simulator.

The distribution installs this one import name. The repository's top-level folders are its
subpackages (see ``setup.py``): ``llmsched.sim``, ``llmsched.policies``, ``llmsched.theory``,
``llmsched.proofs_check`` and ``llmsched.experiments``; bundled data is ``llmsched.data``.

This module re-exports the user API (see docs/api/): ``simulate``, ``load_run``, ``check``,
``place``, ``capacity``, ``reproduce``, the config types and ``load_workload``; the public test
helpers are ``llmsched.testing``. Names are resolved lazily, so ``import llmsched`` imports neither
the engine nor matplotlib until a name is used, and nothing here selects a matplotlib backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmsched._version import __version__ as __version__

__all__ = [
    "ClusterSpec",
    "InstanceSpec",
    "PlacementOutcome",
    "RunConfig",
    "RunResult",
    "Verdict",
    "Workload",
    "WorkloadSpec",
    "capacity",
    "check",
    "load_run",
    "load_workload",
    "place",
    "reproduce",
    "run",
    "simulate",
    "testing",
]

# name -> "module:attribute"
_EXPORTS = {
    "simulate": "llmsched._api:simulate",
    "run": "llmsched.sim.run:run",
    "load_run": "llmsched.sim.results:load_run",
    "RunResult": "llmsched.sim.results:RunResult",
    "RunConfig": "llmsched.sim.config:RunConfig",
    "ClusterSpec": "llmsched.sim.config:ClusterSpec",
    "InstanceSpec": "llmsched.sim.config:InstanceSpec",
    "WorkloadSpec": "llmsched.sim.config:WorkloadSpec",
    "Workload": "llmsched.sim.workload.core:Workload",
    "load_workload": "llmsched.sim.workload.catalog:load",
    "capacity": "llmsched.theory.capacity:capacity",
    "place": "llmsched._api:place",
    "PlacementOutcome": "llmsched.experiments.placement:PlacementOutcome",
    "check": "llmsched._api:check",
    "reproduce": "llmsched._api:reproduce",
    "Verdict": "llmsched.proofs_check.verdict:Verdict",
}


def __getattr__(name: str) -> Any:
    if name == "testing":  # a submodule: `llmsched.testing` after `import llmsched`
        value = importlib.import_module("llmsched.testing")
        globals()[name] = value
        return value
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'llmsched' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from llmsched import testing
    from llmsched._api import check, place, reproduce, simulate
    from llmsched.experiments.placement import PlacementOutcome
    from llmsched.proofs_check.verdict import Verdict
    from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, WorkloadSpec
    from llmsched.sim.results import RunResult, load_run
    from llmsched.sim.run import run
    from llmsched.sim.workload.catalog import load as load_workload
    from llmsched.sim.workload.core import Workload
    from llmsched.theory.capacity import capacity
