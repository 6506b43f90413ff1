"""Entry points: `simulate(workload, cluster, ...)` on explicit objects and `run(config)` on a
`RunConfig` (which resolves workload, cost-model and policy names first).

Owns wiring (building instances, policies and the engine) and the final `RunResult`; no
scheduling logic lives here.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from llmsched.sim.accounting import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig, params_dict
from llmsched.sim.cost.base import CostModel
from llmsched.sim.cost.encode import EncodeCost
from llmsched.sim.encode import EncodeServer
from llmsched.sim.engine import Engine
from llmsched.sim.errors import InputError
from llmsched.sim.instance import Instance
from llmsched.sim.params import INJECTED as _INJECTED
from llmsched.sim.params import check_params
from llmsched.sim.registry import BATCHING, POLICIES, ROUTING
from llmsched.sim.results import RunResult, requests_frame, summarize
from llmsched.sim.runlog import RunLog
from llmsched.sim.state import RequestTable
from llmsched.sim.swap import SwapTier
from llmsched.sim.workload.core import Workload

__all__ = ["make_policy", "resolved_params", "run", "simulate"]


def _plain_param(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else ("inf" if v > 0 else ("-inf" if v < 0 else None))
    if isinstance(v, (np.integer, np.floating)):
        return _plain_param(v.item())
    if isinstance(v, (list, tuple)):
        return [_plain_param(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain_param(x) for k, x in v.items()}
    return getattr(v, "__name__", None) or type(v).__name__


def resolved_params(factory: Any, policy: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Every constructor parameter of a policy with the value it runs with, defaults included.

    Defaults come from the `__init__` signatures along the class's MRO (a subclass's default wins),
    overlaid with the parameters given; a parameter the object keeps under its own name (e.g.
    `quantum`, `lift`) is read back from the object, so a subclass that fixes a value (LCF's
    lift="none") is recorded as run; the fairness policies' admission mode is read back from their
    `admitter`. Injected objects (rng, cost model, instance spec) are left out.
    """
    defaults: dict[str, Any] = {}
    classes = inspect.getmro(factory) if inspect.isclass(factory) else ()
    fns = [c.__dict__["__init__"] for c in reversed(classes) if "__init__" in c.__dict__] or [factory]
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        for name, prm in sig.parameters.items():
            if name == "self" or name in _INJECTED or prm.kind in (prm.VAR_KEYWORD, prm.VAR_POSITIONAL):
                continue
            if prm.default is not prm.empty:
                defaults[name] = prm.default
    out = {**defaults, **{k: v for k, v in given.items() if k not in _INJECTED}}
    for name in list(out):
        value = getattr(policy, name, None)
        if isinstance(value, (bool, int, float, str)) and not callable(value):
            out[name] = value
    admission_mode = getattr(getattr(policy, "admitter", None), "mode", None)
    if "admission" in out and isinstance(admission_mode, str):
        out["admission"] = admission_mode
    return {k: _plain_param(v) for k, v in sorted(out.items())}


def make_policy(family: str, name: str, params: dict[str, Any], *, rng: np.random.Generator,
                cost_model: CostModel | None = None, spec: InstanceSpec | None = None,
                source: str = "config") -> Any:
    """Instantiate a registered policy; `rng`, `cost_model` and `instance_spec` are passed to
    factories whose signature asks for them. Unknown names/params give an InputError."""
    try:
        factory = POLICIES[family].get(name)
    except KeyError as exc:
        field = "batching" if family == BATCHING else "router"
        raise InputError(source, field, str(exc.args[0]), "run `llmsched policies` to list them") from None
    field = "batching_params" if family == BATCHING else "router_params"
    check_params(factory, params, policy=name, source=source, field=field)
    kwargs = dict(params)
    accepted: Mapping[str, inspect.Parameter]
    try:
        sig = inspect.signature(factory)
        accepted = sig.parameters
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    except (TypeError, ValueError):
        accepted, has_var_kw = {}, True
    for key, value in (("rng", rng), ("cost_model", cost_model), ("instance_spec", spec)):
        if key in accepted and key not in kwargs:
            kwargs[key] = value
    if not has_var_kw:
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            known = sorted(k for k in accepted if k not in ("rng", "cost_model", "instance_spec"))
            raise InputError(source, f"{family}_params", f"unknown parameter(s) {', '.join(unknown)} for {name!r}",
                             f"accepted: {', '.join(known) or '(none)'}")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"{family}_params", f"{name}: {exc}") from None


def _default_cost(spec: InstanceSpec) -> CostModel:
    from llmsched.sim.cost import build

    return build(spec.cost, spec.model, spec.gpu, spec.tp)


def _context_tokens(spec: InstanceSpec) -> float:
    """The most tokens one request may use on this instance: the spec's override, else the model's
    context length from the catalogue (inf for a model the catalogue does not know)."""
    if spec.context_tokens is not None:
        return float(spec.context_tokens)
    try:
        from llmsched.sim.hardware import model as model_spec

        ctx = model_spec(spec.model).context_tokens
    except (InputError, KeyError, ValueError):
        return math.inf
    return float(ctx) if ctx else math.inf


def _kv_bytes_per_token(spec: InstanceSpec) -> float:
    try:
        from llmsched.sim.hardware import model as model_spec

        return float(model_spec(spec.model).kv_bytes_per_token)
    except Exception:  # noqa: BLE001 - a model outside the catalogue: no KV bytes, so a transfer costs only the link latency
        return 0.0


def _default_encode_cost(spec: InstanceSpec) -> EncodeCost | None:
    from llmsched.sim.cost.encode import build_encode

    try:
        return build_encode(spec.model, spec.gpu)
    except InputError:
        return None


def _encode_cost(cost_of: Callable[[InstanceSpec], EncodeCost | None], spec: InstanceSpec, workload: Workload,
                 source: str) -> EncodeCost:
    """The encode cost of an instance that must encode images; a text-only model is bad input."""
    cost = cost_of(spec)
    if cost is None:
        n = int(np.count_nonzero(workload.images))
        raise InputError(source, "workload.images", f"{n} requests carry images but model {spec.model!r} is "
                         "text-only", "use a multimodal model such as minicpm-v-2.6, or a workload without images")
    return cost


def _power_w(spec: InstanceSpec) -> tuple[float, float]:
    """(active, idle) power of an instance's GPUs from the catalogue, W; (0, 0) for a GPU the
    catalogue lacks or whose power it does not list (the run then reports no energy)."""
    from llmsched.sim.hardware import get_gpu

    try:
        gpu = get_gpu(spec.gpu)
    except InputError:
        return 0.0, 0.0
    gpus = spec.tp * gpu.num_gpus if gpu.num_gpus == 1 else gpu.num_gpus
    return gpu.active_power_w * gpus, gpu.idle_power_w * gpus


def _energy_summary(instances: Sequence[Instance], summary: dict[str, Any], energy_nj: np.ndarray) -> dict[str, float]:
    """Energy of the run, J: the active part (every iteration at its instance's busy power,
    `llmsched.sim.energy.busy_power_w`; the sum of the requests' `energy_j`) and the idle part (each
    instance at idle power for the rest of the makespan)."""
    span_s = float(summary["makespan_s"])
    active = float(energy_nj.sum()) / 1e9
    idle = sum(inst.idle_power_w * max(span_s - inst.busy_ns / 1e9, 0.0) for inst in instances)
    return {"energy_j": active + idle, "energy_active_j": active, "energy_idle_j": idle}


def _static_batch_summary(specs, instances: list[Instance], reqs) -> dict[str, Any]:
    """Serverless bills and static batches' padding and invalid tokens (docs/run-format.md), where used."""
    out: dict[str, Any] = {}
    if any(_serverless(s) for s in specs):
        out["cost_usd"] = float(reqs.cost_pusd.sum()) / 1e12
        out["invocations"] = sum(inst.invocations for inst in instances)
        out["cold_starts"] = sum(inst.cold_starts for inst in instances)
        out["padding_tokens"] = sum(inst.padding_tokens for inst in instances)
    if any(s.decode_until_batch_ends for s in specs):
        out["invalid_tokens"] = sum(inst.invalid_tokens for inst in instances)
    return out


def _serverless(spec: InstanceSpec) -> bool:
    return bool(spec.price_per_invocation_usd or spec.price_per_gb_s_usd or spec.cold_start_s or spec.pad_batches)


def _swap_tier(spec: InstanceSpec, source: str) -> SwapTier | None:
    """The host KV tier of a swapping instance: capacity in blocks, transfer seconds per token."""
    if spec.preemption != "swap":
        return None
    from llmsched.sim.hardware import get_model
    from llmsched.sim.hardware.derived import effective_tp, kv_bytes_per_token_per_gpu

    try:
        model = get_model(spec.model)
    except Exception:  # noqa: BLE001 - any catalogue failure becomes the one-line input error below
        raise InputError(source, "preemption", f"swap needs the KV size of {spec.model!r}, which the catalogue lacks",
                         "use preemption = 'recompute' or a catalogue model (llmsched capacity --help)") from None
    per_gpu = kv_bytes_per_token_per_gpu(model, effective_tp(model, spec.gpu, spec.tp))
    capacity_blocks = int(spec.swap_space_bytes // (per_gpu * spec.block_size))
    return SwapTier(capacity_blocks, per_gpu / spec.swap_bandwidth_Bps)


def _instance_cost(cost_models: Sequence[CostModel] | Callable[[InstanceSpec], CostModel] | None,
                   spec: InstanceSpec, i: int) -> CostModel:
    """Instance i's cost model: the catalogue's for its spec, or the caller's (a function or a list)."""
    if cost_models is None:
        return _default_cost(spec)
    if callable(cost_models):
        return cost_models(spec)
    return cost_models[i]


def simulate(
    workload: Workload,
    cluster: ClusterSpec,
    *,
    seed: int = 0,
    mode: str = "fast",
    cost_models: Sequence[CostModel] | Callable[[InstanceSpec], CostModel] | None = None,
    encode_costs: Callable[[InstanceSpec], EncodeCost | None] | None = None,
    input_weight: float = DEFAULT_INPUT_WEIGHT,
    output_weight: float = DEFAULT_OUTPUT_WEIGHT,
    record_service: bool = True,
    max_sim_time_s: float = math.inf,
    progress: bool = False,
    config: dict[str, Any] | None = None,
    source: str = "config",
) -> RunResult:
    """Run `workload` through `cluster` and return the result tables.

    cost_models: one per expanded instance (encode instances excluded), or a function of the
    instance spec (default: the catalogue cost model named by `spec.cost`).
    encode_costs: a function of the instance spec giving the vision encoder's cost (default: the
    catalogue model's `EncodeRoofline`, None for a text-only model). Encode instances (role
    "encode") use it for their batches; without an encode pool, the instances that prefill run
    the encoder themselves when they admit an image request.
    """
    t0 = time.perf_counter()
    specs = [s for s in cluster.expanded() if s.role != "encode"]
    encode_specs = [s for s in cluster.expanded() if s.role == "encode"]
    encode_cost_of = encode_costs or _default_encode_cost
    needs_encoder = workload.has_images and not encode_specs
    encoders = [EncodeServer(j, spec, _encode_cost(encode_cost_of, spec, workload, source))
                for j, spec in enumerate(encode_specs)] if workload.has_images else []
    reqs = RequestTable(workload, len(specs))
    log = RunLog(len(specs), input_weight, output_weight, record_service)
    root = np.random.SeedSequence(seed)
    streams = root.spawn(len(specs) + 2)
    instances: list[Instance] = []
    batching_resolved: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        cost = _instance_cost(cost_models, spec, i)
        policy = make_policy(BATCHING, spec.batching, params_dict(spec.batching_params),
                             rng=np.random.default_rng(streams[i]), cost_model=cost, spec=spec,
                             source=source)
        batching_resolved.append(resolved_params(POLICIES[BATCHING].get(spec.batching), policy,
                                                 params_dict(spec.batching_params)))
        total_blocks = spec.kv_blocks()
        if total_blocks < 1:
            raise InputError(source, "kv_capacity_tokens", "instance has no room for KV", "use a bigger GPU or TP")
        encode = _encode_cost(encode_cost_of, spec, workload, source) if needs_encoder else None
        instances.append(Instance(i, spec, cost, policy, reqs, total_blocks, mode == "step", log,
                                  swap=_swap_tier(spec, source), encode=encode, power_w=_power_w(spec)))
    router = make_policy(ROUTING, cluster.router, params_dict(cluster.router_params),
                         rng=np.random.default_rng(streams[-2]), source=source)
    decode_router = None
    if any(s.role == "decode" for s in specs):
        decode_router = make_policy(ROUTING, cluster.router, params_dict(cluster.router_params),
                                    rng=np.random.default_rng(streams[-1]), source=source)
    encode_router = None
    if encoders:
        encode_router = make_policy(ROUTING, cluster.encode_router, params_dict(cluster.encode_router_params),
                                    rng=np.random.default_rng(root.spawn(1)[0]), source=source)
    bar = None
    tick = None
    if progress and workload.n:
        from tqdm import tqdm

        bar = tqdm(total=workload.n, unit="req", desc="simulate", mininterval=0.5, leave=False)
        step = max(workload.n // 200, 1)

        def tick(rid: int) -> None:
            if rid % step == 0:
                bar.n = rid
                bar.refresh()

    engine = Engine(
        reqs, instances, router, decode_router,
        link_bandwidth_Bps=cluster.kv_link_bandwidth_Bps, link_latency_s=cluster.kv_link_latency_s,
        kv_bytes_per_token=lambda inst: _kv_bytes_per_token(inst.spec),
        max_sim_time_s=max_sim_time_s, progress=tick,
        max_context_tokens=min(_context_tokens(s) for s in specs if s.role in ("mixed", "prefill")),
        encoders=encoders, encode_router=encode_router,
        request_bytes_per_token=cluster.request_bytes_per_token,
    )
    loop_start = time.perf_counter()
    engine.run()
    loop_s = time.perf_counter() - loop_start
    if bar is not None:
        bar.n = workload.n
        bar.close()
    requests = requests_frame(reqs)
    service, timeline = log.frames()
    summary = summarize(requests)
    summary.update(_energy_summary(instances, summary, reqs.energy_nj))
    summary.update(_static_batch_summary(specs, instances, reqs))
    summary["num_rejected_context"] = engine.rejected_context  # of num_rejected: over the context length
    if reqs.slices.any():  # generation slices (Plan.slice_tokens) that ended with the request unfinished
        summary["slices_ended"] = int(reqs.slices.sum())
    if encoders:
        summary["encode"] = {"instances": len(encoders), "batches": sum(e.batches for e in encoders),
                             "tiles": sum(e.tiles_encoded for e in encoders),
                             "busy_s": [e.busy_s for e in encoders]}
    tiers = [inst.swap for inst in instances if inst.swap is not None]
    if tiers:
        summary["swap_out_tokens"] = sum(s.swapped_out_tokens for s in tiers)
        summary["swap_in_tokens"] = sum(s.swapped_in_tokens for s in tiers)
    summary["wall_s"] = time.perf_counter() - t0
    summary["loop_s"] = loop_s  # the event loop alone (Engine.run), without setup and result tables
    summary["seed"] = seed
    summary["mode"] = mode
    summary["workload"] = workload.name
    summary["config"] = config or {}
    summary["policy_params"] = {  # every policy's parameters as run, defaults included
        "batching": [{"name": spec.batching, "params": p} for spec, p in zip(specs, batching_resolved)],
        "router": {"name": cluster.router,
                   "params": resolved_params(POLICIES[ROUTING].get(cluster.router), router,
                                             params_dict(cluster.router_params))},
    }
    router_stats = getattr(router, "stats", None)  # optional: routers that keep their own tallies
    if callable(router_stats):
        summary["router"] = router_stats()
    from importlib.metadata import PackageNotFoundError, version

    try:
        summary["llmsched_version"] = version("llmsched")
    except PackageNotFoundError:
        summary["llmsched_version"] = "dev"
    return RunResult(requests, service, timeline, summary)


def run(config: RunConfig, progress: bool = False, source: str = "config") -> RunResult:
    """Resolve a `RunConfig` (workload, cost models, policies) and simulate it."""
    from llmsched.sim.workload import catalog

    config.validate(source)
    workload = catalog.load(config.workload, config.seed)
    return simulate(
        workload, config.cluster, seed=config.seed, mode=config.mode,
        input_weight=config.input_weight, output_weight=config.output_weight,
        record_service=config.record_service, max_sim_time_s=config.max_sim_time_s,
        progress=progress, config=config.to_dict(), source=source,
    )
