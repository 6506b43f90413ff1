"""One registry per policy family, filled by the `@register(family, name)` decorator.

Adding a policy is one module plus its decorator: nothing else changes. `load_all()` imports every
module under `llmsched.policies.batching` and `llmsched.policies.routing` so their decorators run.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

BATCHING = "batching"
ROUTING = "routing"
_REGISTRIES: dict[str, dict[str, Callable[..., Any]]] = {BATCHING: {}, ROUTING: {}}
_DOCS: dict[str, dict[str, str]] = {BATCHING: {}, ROUTING: {}}
_loaded = False


def register(family: str, name: str) -> Callable[[Any], Any]:
    """Class/factory decorator: `@register("batching", "sarathi")`."""
    if family not in _REGISTRIES:
        raise ValueError(f"unknown policy family {family!r}; expected one of {sorted(_REGISTRIES)}")

    def deco(factory: Any) -> Any:
        existing = _REGISTRIES[family].get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"{family} policy {name!r} registered twice ({existing} and {factory})")
        _REGISTRIES[family][name] = factory
        doc = (getattr(factory, "__doc__", None) or "").strip().split("\n\n")[0]
        _DOCS[family][name] = " ".join(doc.split())
        return factory

    return deco


def load_all() -> None:
    """Import every bundled policy module so that its `@register` runs (idempotent)."""
    global _loaded
    if _loaded:
        return
    for pkg_name in ("llmsched.policies.batching", "llmsched.policies.routing"):
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    _loaded = True


def names(family: str) -> list[str]:
    load_all()
    return sorted(_REGISTRIES[family])


def describe(family: str) -> dict[str, str]:
    load_all()
    return dict(sorted(_DOCS[family].items()))


def get(family: str, name: str) -> Callable[..., Any]:
    """The factory registered under `name`; raises KeyError naming the known ones."""
    load_all()
    try:
        return _REGISTRIES[family][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRIES[family]))
        raise KeyError(f"unknown {family} policy {name!r}; known: {known}") from None


def create(family: str, name: str, **params: Any) -> Any:
    return get(family, name)(**params)
