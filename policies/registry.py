"""The policy families' registries, for policy modules: `@register(family, name)` and lookups.

The registries themselves live in `llmsched.sim.registry` (the engine resolves names there without
importing this package); adding a policy is one module here plus its decorator, or a plugin
module named by an entry point of the group `llmsched.batching` / `llmsched.routing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsched.sim.params import enforce_params
from llmsched.sim.registry import BATCHING, PLANNING, POLICIES, ROUTING

__all__ = ["BATCHING", "PLANNING", "ROUTING", "create", "describe", "get", "load_all", "names", "register", "unregister"]


def _family(family: str):
    if family not in POLICIES:
        raise ValueError(f"unknown policy family {family!r}; expected one of {sorted(POLICIES)}")
    return POLICIES[family]


def register(family: str, name: str) -> Callable[[Any], Any]:
    """Class/factory decorator: `@register("batching", "sarathi")`. A class that declares `PARAMS`
    gets a constructor that checks its arguments against them (`llmsched.sim.params.enforce_params`)."""
    add = _family(family).register(name)

    def deco(factory: Any) -> Any:
        return add(enforce_params(factory))

    return deco


def unregister(family: str, name: str) -> None:
    _family(family).unregister(name)


def load_all() -> None:
    """Import every bundled and plugged-in policy module so that its `@register` runs (idempotent)."""
    for reg in POLICIES.values():
        reg.load()


def names(family: str) -> list[str]:
    return _family(family).names()


def describe(family: str) -> dict[str, str]:
    return _family(family).describe()


def get(family: str, name: str) -> Callable[..., Any]:
    """The factory registered under `name`; raises KeyError naming the known ones."""
    return _family(family).get(name)


def create(family: str, name: str, **params: Any) -> Any:
    return get(family, name)(**params)
