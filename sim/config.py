"""Run configuration: frozen dataclasses for the workload, the instances, the cluster and the run.

Owns parsing and validation of config dicts/TOML (errors name the file, the field and the fix).
Resolving names into objects (workloads, cost models, policies) happens in `llmsched.sim.build`, not here.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsched.sim.accounting import DEFAULT_INPUT_WEIGHT, DEFAULT_OUTPUT_WEIGHT
from llmsched.sim.errors import InputError
from llmsched.sim.params import check_params
from llmsched.sim.radix import EVICTION_STRATEGIES
from llmsched.sim.registry import BATCHING, POLICIES, ROUTING
from llmsched.sim.swap import DEFAULT_SWAP_SPACE_BYTES, PCIE4_X16_BANDWIDTH_BPS, PREEMPTION_MODES

Params = tuple[tuple[str, Any], ...]

#: Largest expected request count (rate × duration) a config may ask a generator for. Our choice:
#: the workload is columnar float64/int64 arrays (~100 bytes a request with the run tables), so
#: 5e7 requests is ~5 GB; beyond it numpy fails with an allocation error (issue 15: 1e9 × 1e9 tried
#: to allocate 6.94 EiB).
MAX_EXPECTED_REQUESTS = 50_000_000
#: Largest number of instances. Our choice: building the instances takes ~1 ms each and per-instance
#: state grows with the client count; 100,000 instances sat silent for over a minute (issue 15).
MAX_INSTANCES = 10_000
#: Server classes of an edge-cloud cluster (PerLLM, arXiv 2405.14636).
TIERS = ("cloud", "edge")


def freeze_params(d: Mapping[str, Any] | Params | None) -> Params:
    """A mapping as a sorted tuple of pairs, so configs stay hashable and comparable."""
    if not d:
        return ()
    items = d.items() if isinstance(d, Mapping) else d
    out = []
    for k, v in sorted(items):
        if isinstance(v, list):
            v = tuple(v)
        elif isinstance(v, Mapping):
            v = freeze_params(v)
        out.append((str(k), v))
    return tuple(out)


def params_dict(p: Params) -> dict[str, Any]:
    return {k: v for k, v in p}


@dataclass(frozen=True)
class WorkloadSpec:
    """Which requests: a bundled trace/generator name or a file path, plus scaling knobs.

    rate: requests/s to rescale arrivals to (None = as in the source / generator default)
    duration_s: keep arrivals up to this time; num_requests: keep the first n requests
    """

    source: str = "azure-conv-2023"
    rate: float | None = None
    duration_s: float | None = None
    num_requests: int | None = None
    params: Params = ()


@dataclass(frozen=True)
class InstanceSpec:
    """One group of identical engine instances.

    cost: "roofline" | "linear:a,b,c,d" | "staircase:c,a,b0" | "profiled:<table>"
    batching: a registered batching policy name, with `batching_params` for its constructor
    token_budget: max tokens (prefill + decode) per iteration; max_batch_requests: cap on requests
    admission_interval: admit new requests only every k iterations (VTC artifact: 10)
    role: "mixed" | "prefill" | "decode" (disaggregated pools) | "encode" (an encode pool: instances
      that hold only the model's vision encoder and encode images before prefill, EPD; they use
      model, gpu, count and max_batch_requests = encode jobs per batch)
    kv_capacity_tokens: override the derived KV capacity (None = from the catalogue)
    context_tokens: the most tokens (prompt + output) one request may use; longer requests are
      rejected and counted, as a server rejects them (None = the model's context length from the
      catalogue; a model missing from the catalogue has no limit)
    preemption: "recompute" (vLLM's rule for single-sequence requests) | "swap" (KV of a preempted
        decode goes to host memory over PCIe and comes back before new admissions; `llmsched.sim.swap`)
    prefix_eviction: the prefix cache's eviction strategy, by SGLang's names (`llmsched.sim.radix`)
    swap_space_bytes: host swap space per GPU (vLLM's default, 4 GiB); swap_bandwidth_Bps: host link
    tier: "cloud" | "edge": the server class (edge-cloud routers such as PerLLM's CS-UCB read it)
    uplink_bandwidth_Bps, uplink_latency_s: the link from the users to this instance; a request
      routed here arrives after uplink_latency_s + its prompt's bytes / uplink_bandwidth_Bps
      (ClusterSpec.request_bytes_per_token); inf and 0 (the default) = no upload delay
    Serverless functions (MBS, PVLDB 15(10) 2022; `llmsched.sim.serverless`): each instance is one
      function instance, `count` the concurrency limit. A batch admitted by an idle instance is one
      invocation, billed price_per_invocation_usd plus memory_gb x its busy seconds x
      price_per_gb_s_usd (the `cost_usd` column); an instance idle for longer than keep_alive_s
      (or never used) first pays cold_start_s. pad_batches: a batch's prompt chunks all cost as
      much as the longest one (static batches of padded tensors); the padding is counted.
    decode_until_batch_ends: a static batch decodes as one tensor until its last request ends (its
      output, or its generation slice): a request that finishes earlier keeps its slot and computes
      invalid tokens (HuggingFace / DeepSpeed `generate` over a batch; SCLS arXiv 2406.13511 names
      them). The invalid tokens cost compute and KV reads like real decodes and are counted
      (`invalid_tokens`); the finished request's result and memory are released at once. Meant for
      static-batch policies (`sls`, `scls`, `mbs`), whose batch ends when the instance empties.
    """

    model: str = "llama-2-7b"
    gpu: str = "a100-80gb"
    tp: int = 1
    cost: str = "roofline"
    batching: str = "sarathi"
    batching_params: Params = ()
    token_budget: int = 512
    max_batch_requests: int = 256
    block_size: int = 16
    kv_capacity_tokens: int | None = None
    context_tokens: int | None = None
    admission_interval: int = 1
    watermark_blocks: int = 0
    role: str = "mixed"
    prefix_cache: bool = True
    count: int = 1
    prefix_eviction: str = "lru"
    preemption: str = "recompute"
    swap_space_bytes: float = float(DEFAULT_SWAP_SPACE_BYTES)  # float: a config round-trips to the same JSON
    swap_bandwidth_Bps: float = PCIE4_X16_BANDWIDTH_BPS
    tier: str = "cloud"
    uplink_bandwidth_Bps: float = math.inf
    uplink_latency_s: float = 0.0
    price_per_invocation_usd: float = 0.0
    price_per_gb_s_usd: float = 0.0
    memory_gb: float = 0.0
    cold_start_s: float = 0.0
    keep_alive_s: float = math.inf
    pad_batches: bool = False
    decode_until_batch_ends: bool = False

    def kv_tokens(self) -> int:
        """The instance's KV capacity in tokens, resolved in this one place: `kv_capacity_tokens`
        when given, else derived from GPU memory (`llmsched.sim.hardware.kv_capacity_tokens`)."""
        if self.kv_capacity_tokens is not None:
            return int(self.kv_capacity_tokens)
        from llmsched.sim.hardware import kv_capacity_tokens

        return int(kv_capacity_tokens(self.model, self.gpu, self.tp))

    def kv_blocks(self) -> int:
        """KV capacity in whole blocks of `block_size` tokens."""
        return self.kv_tokens() // int(self.block_size)


@dataclass(frozen=True)
class ClusterSpec:
    """The instances, the router, and the link used for KV transfer and migration.

    encode_router: the policy that places an image request's encode jobs on the encode pool
    (instances with role "encode"); the link also carries the embeddings from encode to prefill.

    Default link: 25 GB/s, 10 us — an assumption standing for one 200 Gb/s NIC (InfiniBand HDR);
    override per experiment.

    request_bytes_per_token: bytes a prompt token takes on an instance's uplink (InstanceSpec
    uplink_*). Default 4: UTF-8 text at about four characters per token (OpenAI's tokenizer
    guidance: "one token generally corresponds to ~4 characters of text"), one byte a character.
    """

    instances: tuple[InstanceSpec, ...] = (InstanceSpec(),)
    router: str = "round-robin"
    router_params: Params = ()
    encode_router: str = "epd-irp"
    encode_router_params: Params = ()
    kv_link_bandwidth_Bps: float = 25e9
    kv_link_latency_s: float = 1e-5
    request_bytes_per_token: float = 4.0

    @property
    def n_instances(self) -> int:
        return sum(i.count for i in self.instances)

    def expanded(self) -> list[InstanceSpec]:
        return [spec for spec in self.instances for _ in range(spec.count)]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Same config + seed => identical results.

    input_weight / output_weight: w_p, w_q of the service accounting (VTC defaults 1 and 2).
    mode: "fast" (exact fast-forward) or "step" (reference, one iteration at a time).
    """

    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    seed: int = 0
    mode: str = "fast"
    input_weight: float = DEFAULT_INPUT_WEIGHT
    output_weight: float = DEFAULT_OUTPUT_WEIGHT
    record_service: bool = True
    max_sim_time_s: float = math.inf

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any], source: str = "config") -> RunConfig:
        return _parse(RunConfig, d, source, "")

    @staticmethod
    def from_toml(path: str | Path) -> RunConfig:
        return RunConfig.from_dict(read_toml(path, "config file"), str(path))

    def validate(self, source: str = "config") -> RunConfig:
        _check(self, source)
        return self


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file; a missing, non-UTF-8 or malformed file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "", f"{what} not found", "pass an existing .toml file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), "", f"not valid TOML ({exc})", "fix the TOML syntax") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "", "not a UTF-8 text file", "pass a TOML file") from None


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name.endswith("params"):
                v = {k: _to_plain(x) for k, x in v}
            else:
                v = _to_plain(v)
            out[f.name] = v
        return out
    if isinstance(obj, tuple):
        return [_to_plain(x) for x in obj]
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    return obj


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check/coerce a TOML scalar against a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return True, None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is float:
        if isinstance(value, str) and value.lower() in ("inf", "infinity"):
            return True, math.inf
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _parse(cls: type, d: Any, source: str, prefix: str) -> Any:
    if not isinstance(d, Mapping):
        raise InputError(source, prefix or "<root>", "must be a table/mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise InputError(source, where, "unknown field", f"use one of: {', '.join(sorted(names))}")
        tp = hints[key]
        if key.endswith("params"):
            if not isinstance(value, Mapping):
                raise InputError(source, where, "must be a table of parameters")
            kwargs[key] = freeze_params(value)
        elif tp is WorkloadSpec:
            if isinstance(value, str):
                value = {"source": value}
            kwargs[key] = _parse(WorkloadSpec, value, source, where + ".")
        elif tp is ClusterSpec:
            kwargs[key] = _parse(ClusterSpec, value, source, where + ".")
        elif key == "instances":
            if isinstance(value, Mapping):
                value = [value]
            if not isinstance(value, list) or not value:
                raise InputError(source, where, "must be a non-empty list of instance tables")
            kwargs[key] = tuple(
                _parse(InstanceSpec, v, source, f"{where}[{i}].") for i, v in enumerate(value)
            )
        else:
            ok, coerced = _type_ok(value, tp)
            if not ok:
                tname = getattr(tp, "__name__", str(tp))
                raise InputError(source, where, f"expected {tname}, got {value!r}")
            kwargs[key] = coerced
    obj = cls(**kwargs)
    if cls is RunConfig:
        _check(obj, source)
    return obj


def _check(cfg: RunConfig, source: str) -> None:
    """Validate a run config's values (types are checked on reading): the first problem raises an
    InputError naming `source`, the field and the fix."""
    def bad(field_: str, problem: str, fix: str = "") -> None:
        raise InputError(source, field_, problem, fix)

    if cfg.mode not in ("fast", "step"):
        bad("mode", f"unknown mode {cfg.mode!r}", "use 'fast' or 'step'")
    if cfg.input_weight < 0 or cfg.output_weight < 0:
        bad("input_weight/output_weight", "must be >= 0")
    _check_workload(cfg.workload, bad)
    _check_cluster(cfg.cluster, bad)
    _check_policy_params(cfg.cluster, source)


def _check_policy_params(c: ClusterSpec, source: str) -> None:
    """Every policy the cluster names exists and its parameters meet its declared constraints
    (`llmsched.sim.params`)."""
    named = [(BATCHING, spec.batching, spec.batching_params, f"cluster.instances[{i}].batching")
             for i, spec in enumerate(c.instances) if spec.role != "encode"]
    named.append((ROUTING, c.router, c.router_params, "cluster.router"))
    if any(spec.role == "encode" for spec in c.instances):
        named.append((ROUTING, c.encode_router, c.encode_router_params, "cluster.encode_router"))
    for family, name, params, field_ in named:
        try:
            factory = POLICIES[family].get(name)
        except KeyError as exc:
            raise InputError(source, field_, str(exc.args[0]), "run `llmsched policies` to list them") from None
        check_params(factory, params_dict(params), policy=name, source=source, field=field_ + "_params")


def _check_workload(w: WorkloadSpec, bad: Callable[..., None]) -> None:
    if w.rate is not None and not (w.rate > 0 and math.isfinite(w.rate)):
        bad("workload.rate", f"must be a positive number of requests/s, got {w.rate}")
    if w.duration_s is not None and not w.duration_s > 0:
        bad("workload.duration_s", f"must be > 0 seconds, got {w.duration_s}")
    if w.num_requests is not None and w.num_requests < 1:
        bad("workload.num_requests", f"must be >= 1, got {w.num_requests}")
    if w.rate is not None and w.duration_s is not None and math.isfinite(w.duration_s):
        expected = w.rate * w.duration_s
        if expected > MAX_EXPECTED_REQUESTS and (w.num_requests is None or w.num_requests > MAX_EXPECTED_REQUESTS):
            bad("workload.rate × workload.duration_s", f"expects about {expected:.3g} requests, more than "
                f"the cap of {MAX_EXPECTED_REQUESTS:.0e}", "lower the rate or the duration")
    if w.duration_s is not None and not math.isfinite(w.duration_s):
        bad("workload.duration_s", "must be a finite number of seconds", "omit it to keep the whole source")


def _check_cluster(c: ClusterSpec, bad: Callable[..., None]) -> None:
    if not c.instances:
        bad("cluster.instances", "needs at least one instance")
    if not c.kv_link_bandwidth_Bps > 0:
        bad("cluster.kv_link_bandwidth_Bps", "must be > 0 bytes/s")
    if c.kv_link_latency_s < 0:
        bad("cluster.kv_link_latency_s", "must be >= 0 s")
    if not (c.request_bytes_per_token >= 0 and math.isfinite(c.request_bytes_per_token)):
        bad("cluster.request_bytes_per_token", f"must be a finite number >= 0, got {c.request_bytes_per_token}")
    if c.n_instances > MAX_INSTANCES:
        bad("cluster.instances", f"{c.n_instances} instances, more than the cap of {MAX_INSTANCES}",
            "use fewer instances (set count per group)")
    roles = set()
    for i, spec in enumerate(c.instances):
        _check_instance(spec, f"cluster.instances[{i}].", bad)
        roles.add(spec.role)
    if roles == {"encode"}:
        bad("cluster.instances", "an encode pool alone cannot serve requests",
            "add instances with role='mixed', or role='prefill' and role='decode'")
    if ("prefill" in roles) != ("decode" in roles):
        bad("cluster.instances", "disaggregation needs both a prefill and a decode pool",
            "add instances with role='prefill' and role='decode', or use role='mixed'")
    if "mixed" in roles and len(roles - {"encode"}) > 1:
        bad("cluster.instances", "cannot mix role='mixed' with prefill/decode pools")
    encode_models = {spec.model for spec in c.instances if spec.role == "encode"}
    llm_models = {spec.model for spec in c.instances if spec.role != "encode"}
    if encode_models and encode_models != llm_models:
        bad("cluster.instances", f"encode instances run {sorted(encode_models)} but prefill/decode run "
            f"{sorted(llm_models)}", "give every instance the same multimodal model")


def _check_instance(spec: InstanceSpec, p: str, bad: Callable[..., None]) -> None:
    """One instance group's values; `p` is its field prefix, e.g. "cluster.instances[0]."."""
    for name, value, minimum, problem in (
            ("count", spec.count, 1, "must be >= 1"),
            ("tp", spec.tp, 1, "tensor-parallel degree must be >= 1"),
            ("token_budget", spec.token_budget, 1, "must be >= 1 token"),
            ("max_batch_requests", spec.max_batch_requests, 1, "must be >= 1"),
            ("block_size", spec.block_size, 1, "must be >= 1 token"),
            ("admission_interval", spec.admission_interval, 1, "must be >= 1 iteration")):
        if value < minimum:
            bad(p + name, problem)
    if spec.kv_capacity_tokens is not None and spec.kv_capacity_tokens < spec.block_size:
        bad(p + "kv_capacity_tokens", "must hold at least one block")
    if spec.context_tokens is not None and spec.context_tokens < 2:
        bad(p + "context_tokens", "must be >= 2 tokens (a prompt token and an output token)",
            "omit it to use the model's context length")
    if spec.prefix_eviction not in EVICTION_STRATEGIES:
        bad(p + "prefix_eviction", f"unknown eviction strategy {spec.prefix_eviction!r}",
            f"use one of {', '.join(EVICTION_STRATEGIES)}")
    if spec.preemption not in PREEMPTION_MODES:
        bad(p + "preemption", f"unknown preemption mode {spec.preemption!r}", "use recompute or swap")
    if not spec.swap_space_bytes >= 0 or spec.swap_space_bytes == math.inf:
        bad(p + "swap_space_bytes", f"must be a finite number >= 0, got {spec.swap_space_bytes}")
    if not spec.swap_bandwidth_Bps > 0 or spec.swap_bandwidth_Bps == math.inf:
        bad(p + "swap_bandwidth_Bps", f"must be a finite number > 0, got {spec.swap_bandwidth_Bps}")
    _check_edge_and_serverless(spec, p, bad)
    if spec.role not in ("mixed", "prefill", "decode", "encode"):
        bad(p + "role", f"unknown role {spec.role!r}", "use mixed, prefill, decode or encode")
    if spec.role == "encode" and spec.tp != 1:
        bad(p + "tp", "an encode instance runs on one GPU",
            "use tp = 1 and more encode instances (the encode router spreads a request over them)")


def _check_edge_and_serverless(spec: InstanceSpec, p: str, bad: Callable[..., None]) -> None:
    """An instance's tier and uplink (edge-cloud, PerLLM) and its serverless prices and start-up."""
    if not spec.uplink_bandwidth_Bps > 0:
        bad(p + "uplink_bandwidth_Bps", f"must be > 0 bytes/s, got {spec.uplink_bandwidth_Bps}",
            "omit it (inf) for no upload delay")
    if not (spec.uplink_latency_s >= 0 and math.isfinite(spec.uplink_latency_s)):
        bad(p + "uplink_latency_s", f"must be a finite number >= 0 s, got {spec.uplink_latency_s}")
    for name in ("price_per_invocation_usd", "price_per_gb_s_usd", "memory_gb", "cold_start_s"):
        value = getattr(spec, name)
        if not (value >= 0 and math.isfinite(value)):
            bad(p + name, f"must be a finite number >= 0, got {value}")
    if not spec.keep_alive_s >= 0:
        bad(p + "keep_alive_s", f"must be >= 0 s (inf: never reclaimed), got {spec.keep_alive_s}")
    if spec.tier not in TIERS:
        bad(p + "tier", f"unknown tier {spec.tier!r}", f"use one of {', '.join(TIERS)}")
