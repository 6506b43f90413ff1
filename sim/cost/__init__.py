"""Cost models: a batch shape in, iteration seconds out (see `llmsched.sim.cost.base` for the contract).

`build(spec, model, gpu, tp)` resolves an instance's `cost` string into a cached model:
"roofline" (fitted factors from data/reference/fits.json), "roofline:unfitted", "linear:a,b,c,d",
"padded:a,b,c" (a static padded batch of one-pass requests, `simple.PaddedBatchCost`),
"staircase[:c,a,b0]" (seconds, tokens) or "profiled:<table>" (see `profiled_tables()`; a bare family
name such as "profiled:helix" picks that family's table for the instance's model and GPU).
A roofline or profiled:vidur-* spec may end in "+stack:<name>": the per-iteration overhead of that serving
stack (`llmsched.sim.cost.stacks`) instead of the default vLLM one, and/or "+extra:<seconds>", a
user-chosen fixed time added to every iteration (sensitivity studies; no calibrated source).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from llmsched.sim.cost import refdata
from llmsched.sim.cost.base import BatchShape, CostModel, iteration_time
from llmsched.sim.cost.profiled import build_profiled, profiled_tables
from llmsched.sim.cost.roofline import RooflineCost, RooflineParams
from llmsched.sim.cost.simple import LinearCost, PaddedBatchCost, StaircaseCost
from llmsched.sim.cost.stacks import get_stack, stack_names
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import effective_tp, get_gpu, get_model, kv_capacity_tokens

ACCEPTED = ('"roofline", "roofline:unfitted", "linear:a,b,c,d" (seconds, seconds/token), "padded:a,b,c", '
            '"staircase" or "staircase:c,a,b0" (seconds, seconds, tokens), "profiled:<table>"; '
            'roofline and profiled:vidur-* may end in "+stack:<name>" and/or "+extra:<seconds>"')


def fitted_params(gpu: str) -> RooflineParams:
    """The calibrated factors for this catalogue GPU (data/reference/fits.json), else the defaults."""
    g = get_gpu(gpu)
    entry = refdata.load_fits().get("gpus", {}).get(g.name)
    if not entry:
        return RooflineParams()
    fields = RooflineParams.__dataclass_fields__
    return RooflineParams(**{k: float(v) for k, v in entry["params"].items() if k in fields})


def _numbers(spec: str, body: str, n: int, what: str, example: str | None = None) -> list[float]:
    parts = [p.strip() for p in body.split(",")]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != n or any(v != v for v in vals):
        raise InputError("cost model", "cost", f"{spec!r}: expected {n} numbers ({what})",
                         f"write it like {example or ('linear:0.005,6e-5,2e-4,1e-7' if n == 4 else 'staircase:0.01128,0.03547,128')}"
                         f"; accepted forms: {ACCEPTED}")
    return vals


def _with_stack(params: RooflineParams, stack: str | None, extra_s: float = 0.0) -> RooflineParams:
    """The stack's overheads (if any) in place of the params' own, plus `extra_s` per iteration."""
    if stack is not None:
        st = get_stack(stack)
        params = dataclasses.replace(params, iteration_overhead_s=st.iteration_overhead_s,
                                     request_overhead_s=st.request_overhead_s)
    if extra_s:
        params = dataclasses.replace(params, iteration_overhead_s=params.iteration_overhead_s + extra_s)
    return params


def _split_modifiers(spec: str) -> tuple[str, str | None, float]:
    """"roofline+stack:sglang+extra:0.002" -> ("roofline", "sglang", 0.002). `extra` is a user-chosen
    additional fixed time per iteration in seconds (for sensitivity studies; it has no calibrated source)."""
    base, *mods = spec.split("+")
    stack, extra, seen = None, 0.0, set()
    for mod in mods:
        key, _, val = mod.partition(":")
        key, val = key.strip().lower(), val.strip()
        if key not in ("stack", "extra") or not val or key in seen:
            raise InputError("cost model", "cost", f"{spec!r}: modifiers are '+stack:<name>' and '+extra:<seconds>', "
                             "each at most once", f"e.g. roofline+stack:vllm-llumnix; stacks: {', '.join(stack_names())}")
        seen.add(key)
        if key == "stack":
            stack = val.lower()
        else:
            try:
                extra = float(val)
            except ValueError:
                extra = float("nan")
            if not (extra >= 0.0 and extra < 10.0):
                raise InputError("cost model", "cost", f"{spec!r}: extra must be seconds in [0, 10)",
                                 "e.g. roofline+extra:0.005 adds 5 ms to every iteration")
    return base.strip(), stack, extra


@lru_cache(maxsize=256)
def _build(spec: str, model: str, gpu: str, tp: int) -> CostModel:
    base, stack, extra = _split_modifiers(spec)
    modified = base != spec.strip()
    kind, _, body = base.partition(":")
    kind = kind.strip().lower()
    if kind == "roofline":
        if body.strip() not in ("", "fitted", "unfitted"):
            raise InputError("cost model", "cost", f"unknown roofline variant {spec!r}", f"accepted forms: {ACCEPTED}")
        params = RooflineParams() if body.strip() == "unfitted" else fitted_params(gpu)
        return RooflineCost.create(model, gpu, tp, _with_stack(params, stack, extra),
                                   name=spec if modified else "roofline")
    if modified and not (kind == "profiled" and body.strip().lower().startswith("vidur")):
        raise InputError("cost model", "cost", f"{spec!r}: {base} already contains the overhead of the stack it was "
                         "measured on", "add +stack:<name> or +extra:<seconds> only to roofline or profiled:vidur-* specs")
    if kind == "linear":
        a, b, c, d = _numbers(spec, body, 4, "a, b, c, d")
        return LinearCost(a, b, c, d, name=spec)
    if kind == "padded":
        a, b, c = _numbers(spec, body, 3, "a, b, c", example="padded:0,0.02457,0.02301")
        if min(a, b, c) < 0:
            raise InputError("cost model", "cost", f"{spec!r}: a, b and c must be seconds >= 0",
                             "e.g. padded:0,0.02457,0.02301")
        return PaddedBatchCost(a, b, c, name=spec)
    if kind == "staircase":
        if not body.strip():
            return StaircaseCost()
        c, a, b0 = _numbers(spec, body, 3, "c, a, b0")
        if b0 < 1 or b0 != int(b0):
            raise InputError("cost model", "cost", f"{spec!r}: b0 must be a positive integer number of tokens",
                             "e.g. staircase:0.01128,0.03547,128")
        return StaircaseCost(c, a, int(b0), name=spec)
    if kind == "profiled":
        cost = build_profiled(body.strip().lower(), model, gpu, tp,
                              lambda: RooflineCost.create(model, gpu, tp, _with_stack(fitted_params(gpu), stack, extra)))
        return dataclasses.replace(cost, name=spec) if modified else cost
    raise InputError("cost model", "cost", f"unknown cost model {spec!r}", f"accepted forms: {ACCEPTED}")


def build(spec: str, model: str, gpu: str, tp: int = 1) -> CostModel:
    """The cost model an instance uses; cheap on repeat calls (cached by normalised arguments).
    A linear or padded model needs no catalogue entry (a serverless function's model, `llmsched.sim.serverless`)."""
    if str(spec).strip().lower().startswith(("linear:", "padded:")):
        return _build(str(spec).strip(), str(model), str(gpu), int(tp))
    m, g = get_model(model), get_gpu(gpu)
    return _build(str(spec).strip(), m.name, g.name, effective_tp(m, g, tp))


__all__ = [
    "ACCEPTED", "BatchShape", "CostModel", "LinearCost", "PaddedBatchCost", "RooflineCost", "RooflineParams", "StaircaseCost",
    "build", "fitted_params", "get_stack", "iteration_time", "kv_capacity_tokens", "profiled_tables", "stack_names",
]
