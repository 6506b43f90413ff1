"""Plugins: third-party code that registers policies, checkers, reproductions, workloads and sweep
points.

A plugin distribution declares entry points in one of these groups (pyproject.toml of the plugin):

    [project.entry-points."llmsched.policies"]       # batching policies and routers
    my_policy = "my_package.my_policy"
    [project.entry-points."llmsched.checkers"]
    [project.entry-points."llmsched.reproductions"]
    [project.entry-points."llmsched.workloads"]
    [project.entry-points."llmsched.sweep_points"]   # name = "module:function"

Loading an entry point imports its module, which registers its objects with the ordinary
decorators (`llmsched.policies.registry.register`, `llmsched.proofs_check.registry.checker`,
`llmsched.experiments.registry.reproduction`, `llmsched.sim.workload.catalog.register_workload`).
The registries call `load_plugins(group)` once, after their bundled entries. A plugin that fails to import is reported (a warning naming the
entry point and the error) and skipped; it never hides the bundled entries.
"""

from __future__ import annotations

import traceback
import warnings
from importlib.metadata import entry_points

GROUPS = ("llmsched.policies", "llmsched.checkers", "llmsched.reproductions", "llmsched.workloads",
          "llmsched.sweep_points")


class PluginWarning(UserWarning):
    """A plugin's entry point could not be loaded."""


def load_plugins(group: str) -> dict[str, str]:
    """Import every entry point of `group`; returns {"dist: name": traceback} for those that failed."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {GROUPS}")
    failed: dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        try:
            ep.load()
        except Exception as exc:
            dist = getattr(ep.dist, "name", "?") if ep.dist is not None else "?"
            label = f"{dist}: {ep.name} = {ep.value}"
            failed[label] = traceback.format_exc()
            warnings.warn(f"llmsched plugin {label!r} in group {group} failed to load: "
                          f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
    return failed


def entry_point_values(group: str) -> dict[str, str]:
    """name -> value of the entry points of `group`, without importing anything."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {GROUPS}")
    return {ep.name: ep.value for ep in entry_points(group=group)}
