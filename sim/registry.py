"""Registries by name, and the two policy registries the engine resolves names in.

One class, `Registry`: factories registered under a name with a one-line description, loaded on
first use from *providers*, modules named by string whose decorators fill the registry (a package
counts with all its public submodules), and from the installed distributions' entry points of the
registry's group (third-party plugins). The engine (`llmsched.sim.run`) looks names up here and so
never imports the policies package; `llmsched.policies` is the bundled provider, named below by
its module name, the way a plugin is named by its entry point.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

# Entry-point groups of plugins (a plugin distribution declares them in its pyproject.toml; loading
# one imports its module, whose decorators register its objects). See docs/api/plugins.md.
PLUGIN_GROUPS = ("llmsched.batching", "llmsched.routing", "llmsched.checkers", "llmsched.reproductions",
                 "llmsched.workloads", "llmsched.sweep_points")


class PluginWarning(UserWarning):
    """A plugin's entry point could not be loaded."""


def load_plugins(group: str) -> dict[str, str]:
    """Import every entry point of `group` (the one plugin loader every registry calls); a plugin
    that fails to import is reported with a warning naming it and skipped. Returns
    {"dist: name = value": traceback} for those that failed."""
    if group not in PLUGIN_GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {PLUGIN_GROUPS}")
    failed: dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported with its traceback, not fatal
            dist = ep.dist.name if ep.dist is not None else "?"
            label = f"{dist}: {ep.name} = {ep.value}"
            failed[label] = traceback.format_exc()
            warnings.warn(f"llmsched plugin {label!r} in group {group} failed to load: "
                          f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
    return failed


def entry_point_values(group: str) -> dict[str, str]:
    """name -> value of the entry points of `group`, without importing anything."""
    if group not in PLUGIN_GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {PLUGIN_GROUPS}")
    return {ep.name: ep.value for ep in entry_points(group=group)}

BATCHING = "batching"
ROUTING = "routing"


class Registry:
    """Named factories of one kind, filled by `register` and loaded from providers on first use."""

    def __init__(self, kind: str, providers: tuple[str, ...] = (), entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.providers = providers
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Callable[..., Any]] = {}
        self._docs: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class/factory decorator; a second, different factory under one name is an error."""

        def deco(factory: Any) -> Any:
            existing = self._entries.get(name)
            if existing is not None and existing is not factory:
                raise ValueError(f"{self.kind} {name!r} registered twice ({existing} and {factory})")
            self._entries[name] = factory
            doc = (getattr(factory, "__doc__", None) or "").strip().split("\n\n")[0]
            self._docs[name] = " ".join(doc.split())
            return factory

        return deco

    def load(self) -> None:
        """Import the providers and the entry points' modules once, so their decorators run."""
        if self._loaded:
            return
        self._loaded = True
        for module_name in self.providers:
            module = importlib.import_module(module_name)
            for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
                if not sub.name.startswith("_"):
                    importlib.import_module(f"{module_name}.{sub.name}")
        if self.entry_point_group:
            load_plugins(self.entry_point_group)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests register throwaway policies and clean up after themselves)."""
        self._entries.pop(name, None)
        self._docs.pop(name, None)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        self.load()
        return dict(sorted(self._docs.items()))

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under `name`; KeyError naming the known ones."""
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}") from None


POLICIES: dict[str, Registry] = {
    BATCHING: Registry("batching policy", ("llmsched.policies.batching",), "llmsched.batching"),
    ROUTING: Registry("routing policy", ("llmsched.policies.routing",), "llmsched.routing"),
}
