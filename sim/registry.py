"""Registries by name, and the two policy registries the engine resolves names in.

One class, `Registry`, for every registry of the toolkit (policies here; checkers in
`llmsched.proofs_check.registry`; reproductions in `llmsched.experiments.registry`): entries
registered under a name with a one-line description, loaded on
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
from typing import Any, Generic, TypeVar

# Entry-point groups of plugins (a plugin distribution declares them in its pyproject.toml; loading
# one imports its module, whose decorators register its objects). See docs/api/plugins.md.
PLUGIN_GROUPS = ("llmsched.batching", "llmsched.routing", "llmsched.planning", "llmsched.checkers", "llmsched.reproductions",
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
PLANNING = "planning"
T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (policy factories, checkers, reproductions), filled by
    `register` / `add` and loaded from providers on first use.

    tolerant: a provider module or plugin that fails to import is kept in `import_errors` (module
    name -> traceback) instead of raising, so one broken module does not hide the others.
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = (), entry_point_group: str | None = None,
                 tolerant: bool = False) -> None:
        self.kind = kind
        self.providers = providers
        self.entry_point_group = entry_point_group
        self.tolerant = tolerant
        self.import_errors: dict[str, str] = {}
        self._entries: dict[str, T] = {}
        self._docs: dict[str, str] = {}
        self._loaded = False

    def add(self, name: str, entry: T, doc: str = "") -> T:
        """Register `entry` under `name`; a second, different entry under one name is an error."""
        existing = self._entries.get(name)
        if existing is not None and existing is not entry and existing != entry:
            raise ValueError(f"{self.kind} {name!r} registered twice ({existing} and {entry})")
        self._entries[name] = entry
        self._docs[name] = " ".join(doc.split())
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Class/factory decorator: the entry is the decorated object, its doc the docstring's first
        paragraph."""

        def deco(factory: T) -> T:
            doc = (getattr(factory, "__doc__", None) or "").strip().split("\n\n")[0]
            return self.add(name, factory, doc)

        return deco

    def load(self) -> None:
        """Import the providers' public modules and the entry points' modules once, so their
        decorators run."""
        if self._loaded:
            return
        self._loaded = True
        for module_name in self.providers:
            module = importlib.import_module(module_name)
            for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
                if not sub.name.startswith("_"):
                    self._import(f"{module_name}.{sub.name}")
        if self.entry_point_group:
            failed = load_plugins(self.entry_point_group)
            if self.tolerant:
                self.import_errors.update(failed)

    def _import(self, full_name: str) -> None:
        if not self.tolerant:
            importlib.import_module(full_name)
            return
        try:
            importlib.import_module(full_name)
        except Exception:  # noqa: BLE001 - a broken module is listed with its traceback, not fatal
            self.import_errors[full_name] = traceback.format_exc()

    def reload(self) -> None:
        """Forget that the providers were loaded (and their import errors): the next lookup imports
        them again (tests that simulate a broken module)."""
        self._loaded = False
        self.import_errors = {}

    def unregister(self, name: str) -> None:
        """Remove an entry (tests register throwaway entries and clean up after themselves)."""
        self._entries.pop(name, None)
        self._docs.pop(name, None)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def items(self) -> dict[str, T]:
        """name -> entry, sorted by name."""
        self.load()
        return dict(sorted(self._entries.items()))

    def describe(self) -> dict[str, str]:
        self.load()
        return dict(sorted(self._docs.items()))

    def get(self, name: str) -> T:
        """The entry registered under `name`; KeyError naming the known ones."""
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}") from None


POLICIES: dict[str, Registry[Any]] = {
    BATCHING: Registry("batching policy", ("llmsched.policies.batching",), "llmsched.batching"),
    ROUTING: Registry("routing policy", ("llmsched.policies.routing",), "llmsched.routing"),
    PLANNING: Registry("planner", ("llmsched.policies.planning",), "llmsched.planning"),
}
