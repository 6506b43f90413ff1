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
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

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
            for ep in entry_points(group=self.entry_point_group):
                ep.load()

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
