"""Declarative parameter constraints of registered policies, checked when a config is read.

A policy class declares `PARAMS = {"name": Param(...)}` beside its constructor (scikit-learn's
`_parameter_constraints` idea): the type, the range or the allowed values of each parameter it
takes from a config. Defaults stay in the constructor's signature (their one home);
`llmsched.sim.run.resolved_params` records them in `summary.json`. `check_params` validates a
config's parameters against the declarations of the class and its bases and raises one
`InputError` naming the field and the fix; the engine calls it for every policy a config names
(`llmsched.sim.config`) and before it builds one (`llmsched.sim.run.make_policy`).

The injected objects (`rng`, `cost_model`, `instance_spec`) are not parameters: the engine passes
them to constructors that ask for them.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any

from llmsched.sim.errors import InputError

INJECTED = ("rng", "cost_model", "instance_spec")


@dataclass(frozen=True)
class Param:
    """One parameter's constraint.

    kind:       "number" (any real, int or float; bool is not a number), "integer", "flag" (bool),
                "text" (str), "choice" (one of `choices`), "numbers" (a list of numbers, each in
                range; one number is a list of one), "list" (any list, checked by the policy),
                "mapping" (a table of further parameters, checked by the policy it names)
    low, high:  bounds of a number / integer / each list item (None: unbounded)
    low_open, high_open: exclude the bound itself
    finite:     reject inf and nan (default); `False` allows +inf (e.g. "never")
    optional:   None is allowed (the constructor then picks the value)
    callable_ok: a Python callable is also accepted (programmatic use only; configs cannot hold one)
    doc:        what the parameter means, with units
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    finite: bool = True
    optional: bool = False
    callable_ok: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice parameter needs its choices")

    # -- what is accepted ------------------------------------------------------------------------
    def expects(self) -> str:
        """A short phrase for the error message: what a valid value looks like."""
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind in ("number", "integer", "numbers"):
            noun = {"number": "a number", "integer": "a whole number", "numbers": "a list of numbers"}[self.kind]
            text = noun + self._range_text()
        else:
            text = {"flag": "true or false", "text": "a string", "list": "a list",
                    "mapping": "a table of parameters"}[self.kind]
        if self.optional:
            text += " (or omit it)"
        return text

    def _range_text(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return (" " + " and ".join(parts)) if parts else ""

    def problem(self, value: Any) -> str | None:
        """None if `value` satisfies the constraint, else what is wrong with it."""
        if value is None:
            return None if self.optional else "must be given (got none)"
        if self.callable_ok and callable(value):
            return None
        check = _CHECKS[self.kind]
        return check(self, value)


def _number_problem(p: Param, value: Any, integer: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"{value!r} is not a number"
    if integer and not isinstance(value, Integral) and not (math.isfinite(float(value)) and float(value).is_integer()):
        return f"{value!r} is not a whole number"
    x = float(value)
    if math.isnan(x) or (p.finite and math.isinf(x)):
        return f"{value!r} is not a finite number"
    if p.low is not None and (x < p.low or (p.low_open and x == p.low)):
        return f"{value!r} is out of range"
    if p.high is not None and (x > p.high or (p.high_open and x == p.high)):
        return f"{value!r} is out of range"
    return None


def _check_number(p: Param, v: Any) -> str | None:
    return _number_problem(p, v, integer=False)


def _check_integer(p: Param, v: Any) -> str | None:
    return _number_problem(p, v, integer=True)


def _check_flag(_p: Param, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{v!r} is not true or false"


def _check_text(_p: Param, v: Any) -> str | None:
    return None if isinstance(v, str) else f"{v!r} is not a string"


def _check_choice(p: Param, v: Any) -> str | None:
    try:
        ok = v in p.choices and not (isinstance(v, bool) and not any(isinstance(c, bool) for c in p.choices))
    except TypeError:  # an unhashable / incomparable value
        ok = False
    return None if ok else f"{v!r} is not allowed"


def _check_numbers(p: Param, v: Any) -> str | None:
    if isinstance(v, Real) and not isinstance(v, bool):
        v = (v,)  # one number stands for a list of one
    if isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__iter__"):
        return f"{v!r} is not a list"
    for item in v:
        bad = _number_problem(p, item, integer=False)
        if bad:
            return f"item {bad}"
    return None


def _check_list(_p: Param, v: Any) -> str | None:
    return None if isinstance(v, (list, tuple)) else f"{v!r} is not a list"


def _check_mapping(_p: Param, v: Any) -> str | None:
    if isinstance(v, Mapping):
        return None
    if isinstance(v, tuple) and all(isinstance(kv, tuple) and len(kv) == 2 for kv in v):
        return None  # a frozen table (llmsched.sim.config.freeze_params)
    return f"{v!r} is not a table"


_CHECKS = {"number": _check_number, "integer": _check_integer, "flag": _check_flag, "text": _check_text,
           "choice": _check_choice, "numbers": _check_numbers, "list": _check_list, "mapping": _check_mapping}
KINDS = tuple(_CHECKS)


# -- constructors that read like the constraint -------------------------------------------------
def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, finite: bool = True, optional: bool = False, doc: str = "") -> Param:
    return Param("number", low, high, low_open, high_open, finite=finite, optional=optional, doc=doc)


def integer(low: float | None = None, high: float | None = None, *, optional: bool = False, doc: str = "") -> Param:
    return Param("integer", low, high, optional=optional, doc=doc)


def flag(doc: str = "") -> Param:
    return Param("flag", doc=doc)


def text(doc: str = "", optional: bool = False) -> Param:
    return Param("text", optional=optional, doc=doc)


def one_of(*choices: Any, optional: bool = False, callable_ok: bool = False, doc: str = "") -> Param:
    return Param("choice", choices=tuple(choices), optional=optional, callable_ok=callable_ok, doc=doc)


def numbers(low: float | None = None, high: float | None = None, *, optional: bool = False, doc: str = "") -> Param:
    return Param("numbers", low, high, optional=optional, doc=doc)


def mapping(doc: str = "", optional: bool = True) -> Param:
    return Param("mapping", optional=optional, doc=doc)


# -- the declarations of a factory --------------------------------------------------------------
def param_specs(factory: Any) -> dict[str, Param]:
    """The `PARAMS` of a policy class and its bases (a subclass's declaration wins; a None
    declaration removes the base's parameter)."""
    specs: dict[str, Param | None] = {}
    classes = inspect.getmro(factory) if inspect.isclass(factory) else (factory,)
    for cls in reversed(classes):
        specs.update(getattr(cls, "__dict__", {}).get("PARAMS", {}))
    return {name: spec for name, spec in specs.items() if spec is not None}


def declares_params(factory: Any) -> bool:
    """Whether the class or one of its bases declares `PARAMS`."""
    classes = inspect.getmro(factory) if inspect.isclass(factory) else (factory,)
    return any("PARAMS" in getattr(cls, "__dict__", {}) for cls in classes)


def signature_params(factory: Any) -> set[str]:
    """Named constructor parameters along the class's MRO, injected objects left out."""
    names: set[str] = set()
    classes = inspect.getmro(factory) if inspect.isclass(factory) else ()
    fns = [c.__dict__["__init__"] for c in classes if "__init__" in c.__dict__] or [factory]
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        names.update(n for n, p in sig.parameters.items()
                     if n != "self" and n not in INJECTED and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    return names


def check_params(factory: Any, params: Mapping[str, Any], *, policy: str, source: str, field: str) -> None:
    """Validate `params` for `factory` against its declarations; the first problem raises an
    InputError naming `source`, `field`.`key`, the problem and the fix. A factory that declares no
    `PARAMS` anywhere (a plugin written before declarations) is left to its constructor, which
    `make_policy` checks by signature."""
    if not declares_params(factory):
        return
    specs = param_specs(factory)
    for key, value in params.items():
        if key in INJECTED:
            continue
        spec = specs.get(key)
        where = f"{field}.{key}" if field else key
        if spec is None:
            known = ", ".join(sorted(specs)) or "(none)"
            raise InputError(source, where, f"unknown parameter {key!r} for {policy!r}", f"accepted: {known}")
        bad = spec.problem(value)
        if bad:
            raise InputError(source, where, f"{policy}: {bad}", f"use {spec.expects()}")


def declare(**specs: Param | None) -> Mapping[str, Param | None]:
    """A policy's `PARAMS`: read-only name -> constraint (None removes a base class's parameter,
    e.g. LCF fixes VTC's `lift`)."""
    return MappingProxyType(specs)


_CHECKED_INITS: set[Any] = set()  # constructors already wrapped by enforce_params


def enforce_params(cls: Any) -> Any:
    """Class decorator: the constructor checks its arguments against the declarations first, so a
    policy built directly in Python is held to the same constraints as one named by a config.
    (`llmsched.policies.registry.register` applies it to every policy that declares `PARAMS`.)"""
    if not inspect.isclass(cls) or not declares_params(cls) or cls.__init__ in _CHECKED_INITS:
        return cls
    init = cls.__init__
    sig = inspect.signature(init)

    @functools.wraps(init)
    def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = sig.bind_partial(self, *args, **kwargs)
        given: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                given.update(value)
            elif name != "self" and kind is not inspect.Parameter.VAR_POSITIONAL:
                given[name] = value
        check_params(cls, given, policy=cls.__name__, source=f"{cls.__name__}()", field="")
        init(self, *args, **kwargs)

    _CHECKED_INITS.add(checked_init)
    cls.__init__ = checked_init  # type: ignore[method-assign]
    return cls
