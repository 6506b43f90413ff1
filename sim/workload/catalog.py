"""The workload catalogue: bundled traces and generators by name, and `load(spec, seed)`.

Owns the name -> reader/generator mapping, parameter parsing and defaults, and the shared meaning
of `WorkloadSpec.rate / duration_s / num_requests`. The engine and CLI call only `entries()` and
`load()`. Reference for every name and parameter: docs/workloads.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmsched.sim.config import WorkloadSpec, params_dict
from llmsched.sim.errors import InputError
from llmsched.sim.workload import generic, programs, readers, servegen
from llmsched.sim.workload.arrivals import PROCESSES, ArrivalSpec
from llmsched.sim.workload.core import DEFAULT_HASH_BLOCK_TOKENS, Workload
from llmsched.sim.workload.lengths import LengthSpec
from llmsched.sim.workload.mix import ClientSpec, multi_client


@dataclass(frozen=True)
class CatalogEntry:
    """One loadable workload: kind is "trace" (a bundled file) or "generator" (synthesised)."""

    name: str
    kind: str
    description: str
    source: str


_AZURE = "Azure/AzurePublicDataset (CC-BY-4.0); Patel et al., Splitwise, ISCA 2024"
_MOONCAKE = "kvcache-ai/Mooncake FAST25-release (Apache-2.0); Qin et al., FAST 2025"
_SERVEGEN = "alibaba/ServeGen (Apache-2.0); Xiang et al., arXiv:2505.09999, 2025"

_ENTRIES = [
    CatalogEntry("azure-conv-2023", "trace", "Azure LLM inference 2023, conversation service: 19,366 requests over 58 min",
                 _AZURE),
    CatalogEntry("azure-code-2023", "trace", "Azure LLM inference 2023, code completion: 8,819 very bursty requests",
                 _AZURE),
    CatalogEntry("mooncake-conversation", "trace",
                 "Kimi chat traffic, 12,031 requests with 512-token prefix block hashes", _MOONCAKE),
    CatalogEntry("mooncake-synthetic", "trace",
                 "Mooncake synthetic multi-turn trace (Poisson arrivals), 3,993 requests with prefix blocks",
                 _MOONCAKE),
    CatalogEntry("lmsys-arena-vtc", "trace",
                 "LMSYS Chatbot Arena sample from the VTC artifact: 1,500 requests, 27 clients, 600 s",
                 "Ying1123/VTC-artifact fair_bench/real_trace.pkl (Apache-2.0); Sheng et al., OSDI 2024"),
    CatalogEntry("sharegpt", "trace", "ShareGPT request lengths (30,731 pairs, Llama-2 tokens) with Poisson arrivals",
                 "microsoft/sarathi-serve data/processed_traces (Apache-2.0)"),
    CatalogEntry("arxiv-summarization", "trace",
                 "arXiv summarisation lengths (28,257 pairs, long prompts) with Poisson arrivals",
                 "microsoft/vidur data/processed_traces (MIT)"),
    CatalogEntry("servegen-m-large", "trace", "ServeGen per-client windows, large language model (162 clients, 14 days)",
                 _SERVEGEN),
    CatalogEntry("servegen-m-mid", "trace", "ServeGen per-client windows, mid-size language model (109 clients, 14 days)",
                 _SERVEGEN),
    CatalogEntry("servegen-m-small", "trace", "ServeGen per-client windows, small language model (43 clients, 14 days)",
                 _SERVEGEN),
    CatalogEntry("servegen-mm-image", "trace", "ServeGen per-client windows, vision-language model (35 clients, 1 day)",
                 _SERVEGEN),
    CatalogEntry("servegen-deepseek-r1", "trace", "ServeGen per-client windows, DeepSeek-R1 reasoning (73 clients, 1 day)",
                 _SERVEGEN),
    CatalogEntry("poisson", "generator", "Poisson arrivals, one client", "homogeneous Poisson process"),
    CatalogEntry("multimodal", "generator", "image requests: k images of W x H pixels each plus a text prompt "
                 "(default: the EPD paper's 2 x 4032x3024 images, 22 text tokens, 10 output tokens)",
                 "Singh et al., EPD, ICML 2025 (arXiv 2501.05460) Sec. 4.1 synthetic workload"),
    CatalogEntry("gamma", "generator", "Gamma renewal arrivals with a given CV (burstiness), one client",
                 "VTC-artifact fair_bench/trace.py (shape 1/cv^2)"),
    CatalogEntry("uniform", "generator", "deterministic gaps 1/rate after a random phase, one client",
                 "VTC-artifact fair_bench/trace.py generate_requests_uniform"),
    CatalogEntry("onoff", "generator", "arrivals only in alternating ON/OFF periods (default 60 s / 60 s)",
                 "VTC-artifact on_off suites (OSDI 2024 Figs 5, 6)"),
    CatalogEntry("ramp", "generator", "Poisson arrivals whose rate rises linearly (default 0.2 -> 2 req/s)",
                 "VTC-artifact 'increase' suite (OSDI 2024 Fig 9)"),
    CatalogEntry("multi-client", "generator", "several clients, each with its own process, rate, lengths and weight",
                 "VTC-artifact overload suite defaults (rates 1.5 and 3 req/s, 256/256 tokens)"),
    CatalogEntry("shared-system-prompt", "generator", "requests that start with one of a few shared system prompts",
                 "prefix-sharing program (block hashes)"),
    CatalogEntry("multi-turn", "generator", "chat sessions whose turns extend the previous context",
                 "prefix-sharing program (block hashes)"),
    CatalogEntry("tree-of-thought", "generator", "tree-of-thought fan-out: siblings share the whole prompt",
                 "prefix-sharing program (block hashes)"),
    CatalogEntry("long-doc-qa", "generator", "many questions over a few long documents",
                 "prefix-sharing program (block hashes)"),
]


# Plugin workloads (entry-point group `llmsched.workloads`, see llmsched.sim.registry.load_plugins): name -> loader
# `fn(params: dict, seed: int) -> Workload`, served like a trace (rate, duration_s, num_requests apply).
_PLUGIN_LOADERS: dict[str, Callable[[dict[str, Any], int], Workload]] = {}
_PLUGIN_ENTRIES: list[CatalogEntry] = []
_plugins_loaded = False


def register_workload(name: str, description: str, source: str):
    """Decorator for a plugin's workload loader `fn(params, seed) -> Workload`."""

    def deco(fn: Callable[[dict[str, Any], int], Workload]):
        if name in _PARAMS or name in _PLUGIN_LOADERS:
            raise ValueError(f"workload {name!r} registered twice")
        _PLUGIN_LOADERS[name] = fn
        _PLUGIN_ENTRIES.append(CatalogEntry(name, "plugin", description, source))
        return fn

    return deco


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        from llmsched.sim.registry import load_plugins

        load_plugins("llmsched.workloads")


def entries() -> list[CatalogEntry]:
    """Every bundled trace and generator, in display order, then plugin workloads."""
    _load_plugins()
    return list(_ENTRIES) + list(_PLUGIN_ENTRIES)


def names() -> list[str]:
    return [e.name for e in entries()]


# -- parameters ---------------------------------------------------------------------------------
_LENGTH_PARAMS = {"lengths": "fixed", "input_tokens": 256, "output_tokens": 256, "input_sigma": 1.0,
                  "output_sigma": 1.0, "max_tokens": 32768}
_PROGRAM_LENGTHS = {"lengths": "uniform", "input_tokens": (16, 256), "output_tokens": (16, 256),
                    "input_sigma": 1.0, "output_sigma": 1.0, "max_tokens": 32768}
_PROCESS_PARAMS = {"process": "poisson", "cv": 1.0}
_SLO_PARAMS = {"ttft_slo_s": math.inf, "tbt_slo_s": math.inf, "priority": 0, "weight": 1.0}
_SERVEGEN_RATE_SCALE = {"m-large": 0.1, "m-mid": 0.01, "m-small": 0.01, "mm-image": 1.0, "deepseek-r1": 1.0}

# default rate (req/s; sessions/s or trees/s for those programs) and duration (s) of generators
_GEN_DEFAULT_RATE = {"poisson": 1.0, "gamma": 1.0, "uniform": 1.0, "onoff": 2.0, "ramp": 2.0,
                     "multi-client": None, "shared-system-prompt": 1.0, "multi-turn": 0.2,
                     "tree-of-thought": 0.05, "long-doc-qa": 1.0, "sharegpt": 1.0,
                     "arxiv-summarization": 1.0, "multimodal": 0.25}
DEFAULT_DURATION_S = 600.0

_PARAMS: dict[str, dict[str, Any]] = {
    "poisson": {**_LENGTH_PARAMS, **_SLO_PARAMS},
    "gamma": {**_LENGTH_PARAMS, **_SLO_PARAMS, "cv": 2.0},
    "uniform": {**_LENGTH_PARAMS, **_SLO_PARAMS},
    "onoff": {**_LENGTH_PARAMS, **_SLO_PARAMS, "on_s": 60.0, "off_s": 60.0, "base": "poisson", "cv": 1.0},
    "ramp": {**_LENGTH_PARAMS, **_SLO_PARAMS, "start_rate": 0.2, "ramp_s": None},
    "multi-client": {**_LENGTH_PARAMS, "rates": (1.5, 3.0), "clients": None, "process": "poisson", "cv": 1.0,
                     "on_s": 60.0, "off_s": 60.0, "weights": None, "ttft_slo_s": math.inf,
                     "tbt_slo_s": math.inf},
    "shared-system-prompt": {**_PROGRAM_LENGTHS, **_PROCESS_PARAMS, "system_tokens": 1024,
                             "n_system_prompts": 1, "block_tokens": DEFAULT_HASH_BLOCK_TOKENS},
    "multi-turn": {**_PROGRAM_LENGTHS, **_PROCESS_PARAMS, "output_tokens": (16, 512), "min_turns": 2,
                   "max_turns": 6, "think_s": 20.0, "system_tokens": 0, "max_context_tokens": 32768,
                   "block_tokens": DEFAULT_HASH_BLOCK_TOKENS},
    "tree-of-thought": {**_PROGRAM_LENGTHS, **_PROCESS_PARAMS, "input_tokens": (64, 512),
                        "output_tokens": (32, 256), "branching": 3, "depth": 3, "beam": 2, "step_s": 10.0,
                        "block_tokens": DEFAULT_HASH_BLOCK_TOKENS},
    "long-doc-qa": {**_PROGRAM_LENGTHS, **_PROCESS_PARAMS, "input_tokens": (16, 128), "n_docs": 4,
                    "doc_tokens": 8192, "zipf_s": 0.0, "block_tokens": DEFAULT_HASH_BLOCK_TOKENS},
    "multimodal": {**_LENGTH_PARAMS, **_SLO_PARAMS, **_PROCESS_PARAMS, "input_tokens": 22, "output_tokens": 10,
                   "images": 2, "width_px": 4032, "height_px": 3024, "model": "minicpm-v-2.6"},
    "sharegpt": {**_PROCESS_PARAMS},
    "arxiv-summarization": {**_PROCESS_PARAMS},
    "azure-conv-2023": {}, "azure-code-2023": {}, "mooncake-conversation": {}, "mooncake-synthetic": {},
    "lmsys-arena-vtc": {},
    **{f"servegen-{m}": {"clients": None, "top_k": 10, "start_s": 0.0, "rate_scale": _SERVEGEN_RATE_SCALE[m]}
       for m in servegen.MODELS},
}
_FILE_PARAMS = {"hash_block_tokens": DEFAULT_HASH_BLOCK_TOKENS}


def defaults(name: str) -> dict[str, Any]:
    """The parameters `name` accepts, with their defaults."""
    return dict(_PARAMS[name])


def _split(value: Any) -> Any:
    """Command-line lists: "1.5,3" -> (1.5, 3.0), "fixed,sharegpt" -> ("fixed", "sharegpt")."""
    if not isinstance(value, str) or "," not in value:
        return value
    out: list[Any] = []
    for item in (x.strip() for x in value.split(",")):
        try:
            out.append(int(item))
        except ValueError:
            try:
                out.append(float(item))
            except ValueError:
                out.append(item)
    return tuple(out)


class _Params:
    """Typed access to a source's params, each error naming the source and the parameter."""

    def __init__(self, source: str, given: dict[str, Any], allowed: dict[str, Any]) -> None:
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            ok = ", ".join(sorted(allowed)) or "none"
            raise InputError(f"workload {source!r}", f"params.{unknown[0]}", "unknown parameter",
                             f"parameters of {source}: {ok}")
        self.source, self.p = source, {**allowed, **{k: _split(v) for k, v in given.items()}}

    def bad(self, key: str, problem: str, fix: str = "") -> InputError:
        return InputError(f"workload {self.source!r}", f"params.{key}", problem, fix)

    def raw(self, key: str) -> Any:
        return self.p[key]

    def num(self, key: str, *, integer: bool = False, minimum: float | None = None, allow_none: bool = False):
        v = self.p[key]
        if v is None and allow_none:
            return None
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise self.bad(key, f"expected a number, got {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise self.bad(key, f"expected a number, got {v!r}")
        if integer:
            if v != math.floor(v) or math.isinf(v):
                raise self.bad(key, f"expected a whole number, got {v!r}")
            v = int(v)
        if minimum is not None and v < minimum:
            raise self.bad(key, f"must be >= {minimum:g}, got {v!r}")
        return v

    def text(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        v = self.p[key]
        if not isinstance(v, str) or (choices and v not in choices):
            raise self.bad(key, f"got {v!r}", f"use one of: {', '.join(choices)}" if choices else "use a string")
        return v

    def seq(self, key: str) -> tuple | None:
        v = self.p[key]
        if v is None:
            return None
        return tuple(v) if isinstance(v, (list, tuple)) else (v,)


_EMPIRICAL = ("sharegpt", "arxiv-summarization", "azure-conv-2023", "azure-code-2023", "lmsys-arena-vtc",
              "mooncake-conversation", "mooncake-synthetic")


def _pairs_from_path(path: Path) -> np.ndarray:
    import pandas as pd  # only to peek at the header

    if path.suffix.lower() == ".csv" and path.is_file():
        cols = pd.read_csv(path, nrows=0).columns
        if "num_prefill_tokens" in cols:
            return readers.read_length_pairs(path)
    w = generic.read_file(path)
    return np.stack([w.prompt_tokens, w.output_tokens], axis=1)


def _length_spec(P: _Params, which: str | None = None, k: int | None = None) -> LengthSpec:
    """LengthSpec from lengths/input_tokens/output_tokens (per-client element k when tuples)."""
    kind = which if which is not None else P.raw("lengths")
    if not isinstance(kind, str):
        raise P.bad("lengths", f"got {kind!r}", "use fixed, uniform, lognormal, a trace name or a file path")
    common = {"input_sigma": P.num("input_sigma", minimum=0), "output_sigma": P.num("output_sigma", minimum=0),
              "max_tokens": P.num("max_tokens", integer=True, minimum=1)}
    if kind in _EMPIRICAL:
        return LengthSpec("empirical", pairs=readers.trace_pairs(kind), source=kind, **common)
    if kind not in ("fixed", "uniform", "lognormal"):
        path = Path(kind)
        if path.suffix.lower() in generic.SUFFIXES or path.is_file():
            return LengthSpec("empirical", pairs=_pairs_from_path(path), source=str(path), **common)
        raise P.bad("lengths", f"unknown length source {kind!r}",
                    f"use fixed, uniform, lognormal, a .csv/.jsonl path or one of: {', '.join(_EMPIRICAL)}")

    def tok(key: str):
        v = P.raw(key)
        if k is not None and isinstance(v, (list, tuple)) and kind == "fixed":
            if k >= len(v):
                raise P.bad(key, f"has {len(v)} per-client values, need one per client")
            v = v[k]
        return v

    def one(key: str, v) -> int:
        return _whole_tokens(P, key, v)

    inp, out = tok("input_tokens"), tok("output_tokens")
    if kind == "uniform":
        (in_lo, in_hi), (out_lo, out_hi) = _token_range(P, "input", inp), _token_range(P, "output", out)
        return LengthSpec("uniform", input_min=in_lo, input_max=in_hi, output_min=out_lo, output_max=out_hi,
                          **common)
    for key, v in (("input_tokens", inp), ("output_tokens", out)):
        if isinstance(v, (list, tuple)):
            raise P.bad(key, f"{kind} lengths need one number, got {v!r}",
                        "use lengths='uniform' for a [min, max] range")
    return LengthSpec(kind, input_tokens=one("input_tokens", inp), output_tokens=one("output_tokens", out),
                      **common)


def _whole_tokens(P: _Params, key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 1 or v != math.floor(v):
        raise P.bad(key, f"expected a whole number >= 1, got {v!r}")
    return int(v)


def _token_range(P: _Params, key: str, v: Any) -> tuple[int, int]:
    """Uniform lengths: [min, max] tokens from a pair, or (v, v) from one number."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise P.bad(f"{key}_tokens", f"uniform lengths need [min, max], got {v!r}")
        lo, hi = _whole_tokens(P, f"{key}_tokens", v[0]), _whole_tokens(P, f"{key}_tokens", v[1])
    else:
        lo = hi = _whole_tokens(P, f"{key}_tokens", v)
    if lo > hi:
        raise P.bad(f"{key}_tokens", f"min {lo} > max {hi}")
    return lo, hi


def _arrival(P: _Params, kind: str, rate: float) -> ArrivalSpec:
    if kind not in PROCESSES:
        raise P.bad("process", f"unknown process {kind!r}", f"use one of: {', '.join(PROCESSES)}")
    kw: dict[str, Any] = {"kind": kind, "rate_rps": rate}
    if "cv" in P.p:
        kw["cv"] = P.num("cv", minimum=1e-9)
    if kind == "onoff" or "on_s" in P.p:
        if "on_s" in P.p:
            kw["on_s"] = P.num("on_s", minimum=1e-9)
            kw["off_s"] = P.num("off_s", minimum=0)
        if "base" in P.p:
            kw["base"] = P.text("base", ("poisson", "gamma", "uniform"))
    if kind == "ramp":
        kw["start_rate_rps"] = P.num("start_rate", minimum=0)
        kw["ramp_s"] = P.num("ramp_s", minimum=1e-9, allow_none=True)
    return ArrivalSpec(**kw)


# -- rescaling and cutting --------------------------------------------------------------------------
def mean_rate(w: Workload) -> float:
    """(rows - 1) / span, the definition used by data/README.md."""
    return (w.n - 1) / w.duration_s if w.n > 1 and w.duration_s > 0 else math.nan


def _rescale(w: Workload, rate: float | None, source: str) -> Workload:
    if rate is None:
        return w
    current = mean_rate(w)
    if not math.isfinite(current):
        raise InputError(source, "rate", "cannot rescale a trace with fewer than two distinct arrival times")
    t0 = w.arrival_s[0]
    return w.with_columns(arrival_s=t0 + (w.arrival_s - t0) * (current / rate))


def _cut(w: Workload, duration_s: float | None, num_requests: int | None, label: str = "workload") -> Workload:
    """Keep arrivals before `duration_s`, then the first `num_requests`; an empty result is bad
    input (a run of zero requests measures nothing)."""
    full = w
    if duration_s is not None:
        w = w.take(np.flatnonzero(w.arrival_s < duration_s))
    if num_requests is not None and num_requests < w.n:
        w = w.head(num_requests)
    if w.n == 0:
        if full.n:
            raise InputError(label, "duration_s", f"keeps none of the {full.n} requests (the first arrives at "
                             f"{float(full.arrival_s.min()):.6g} s, duration_s = {duration_s:g} s)",
                             "raise the duration")
        raise InputError(label, "duration_s", "the source produced no request in the window",
                         "raise the duration or the rate")
    return w


def _check_spec(spec: WorkloadSpec) -> None:
    src = f"workload {spec.source!r}"
    if spec.rate is not None and not (spec.rate > 0 and math.isfinite(spec.rate)):
        raise InputError(src, "rate", f"must be a positive number of requests/s, got {spec.rate}")
    if spec.duration_s is not None and not (spec.duration_s > 0 and math.isfinite(spec.duration_s)):
        raise InputError(src, "duration_s", f"must be > 0 seconds, got {spec.duration_s}")
    if spec.num_requests is not None and spec.num_requests < 1:
        raise InputError(src, "num_requests", f"must be >= 1, got {spec.num_requests}")


# -- loaders --------------------------------------------------------------------------------------
def _window(spec: WorkloadSpec) -> tuple[float | None, int | None]:
    """Generators: (duration, count) to generate; the default is DEFAULT_DURATION_S seconds."""
    if spec.duration_s is None and spec.num_requests is None:
        return DEFAULT_DURATION_S, None
    return spec.duration_s, spec.num_requests


def _rate(name: str, spec: WorkloadSpec) -> float:
    """The spec's rate, else the generator's default (every generator that calls this has one;
    multi-client, whose default is None, reads per-client rates instead)."""
    if spec.rate is not None:
        return spec.rate
    rate = _GEN_DEFAULT_RATE[name]
    assert rate is not None, name
    return rate


def _single(name: str, spec: WorkloadSpec, P: _Params, rng: np.random.Generator) -> Workload:
    rate = _rate(name, spec)
    lengths = _length_spec(P)
    client = ClientSpec(arrivals=_arrival(P, name, rate), lengths=lengths,
                        weight=P.num("weight", minimum=1e-12), priority=P.num("priority", integer=True),
                        ttft_slo_s=P.num("ttft_slo_s", minimum=1e-12), tbt_slo_s=P.num("tbt_slo_s", minimum=1e-12),
                        name=name)
    duration, n = _window(spec)
    return multi_client(rng, [client], duration_s=duration, n=n, name=name)


def _multimodal(name: str, spec: WorkloadSpec, P: _Params, rng: np.random.Generator) -> Workload:
    """Text lengths and arrivals as a one-client generator, then `images` images of
    width_px x height_px per request, tokenised by `model`'s vision tiling."""
    from llmsched.sim.workload.multimodal import with_images

    rate = _rate(name, spec)
    client = ClientSpec(arrivals=_arrival(P, P.text("process", ("poisson", "gamma", "uniform")), rate),
                        lengths=_length_spec(P), weight=P.num("weight", minimum=1e-12),
                        priority=P.num("priority", integer=True), ttft_slo_s=P.num("ttft_slo_s", minimum=1e-12),
                        tbt_slo_s=P.num("tbt_slo_s", minimum=1e-12), name=name)
    duration, n = _window(spec)
    w = multi_client(rng, [client], duration_s=duration, n=n, name=name)
    return with_images(w, P.num("images", integer=True, minimum=0), P.num("width_px", integer=True, minimum=1),
                       P.num("height_px", integer=True, minimum=1), P.text("model"), source=f"workload {name!r}")


def _numbers(P: _Params, key: str, values: tuple, *, integer: bool = False, minimum: float = 0.0) -> tuple:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < minimum \
                or (integer and v != math.floor(v)):
            raise P.bad(key, f"expected {'whole ' if integer else ''}numbers >= {minimum:g}, got {values!r}")
        out.append(int(v) if integer else float(v))
    return tuple(out)


def _multi(spec: WorkloadSpec, P: _Params, rng: np.random.Generator, given: dict) -> Workload:
    n_clients = P.num("clients", integer=True, minimum=1, allow_none=True)
    if n_clients is not None and "rates" not in given:
        rates = (1.0,) * n_clients
    else:
        rates = _numbers(P, "rates", P.seq("rates") or ())
    if not rates or min(rates) <= 0 or not all(math.isfinite(r) for r in rates):
        raise P.bad("rates", f"every client rate must be > 0 req/s, got {rates}")
    k = len(rates)
    if n_clients is not None and n_clients != k:
        raise P.bad("clients", f"{n_clients} clients but {k} rates", "give one rate per client or only clients=N")
    if spec.rate is not None:
        rates = tuple(r * spec.rate / sum(rates) for r in rates)

    def per_client(key: str, default):
        v = P.seq(key)
        if v is None:
            return (default,) * k
        if len(v) == 1:
            return v * k
        if len(v) != k:
            raise P.bad(key, f"has {len(v)} values for {k} clients", "give one value or one per client")
        return v

    processes = per_client("process", "poisson")
    weights = per_client("weights", 1.0)
    lengths_kinds = per_client("lengths", "fixed")
    clients = []
    for c in range(k):
        w_c = weights[c]
        if isinstance(w_c, bool) or not isinstance(w_c, (int, float)) or not w_c > 0:
            raise P.bad("weights", f"client {c}: weight must be > 0, got {w_c!r}")
        clients.append(ClientSpec(
            arrivals=_arrival(P, str(processes[c]), rates[c]),
            lengths=_length_spec(P, which=str(lengths_kinds[c]), k=c), weight=float(w_c),
            ttft_slo_s=P.num("ttft_slo_s", minimum=1e-12), tbt_slo_s=P.num("tbt_slo_s", minimum=1e-12),
            name=f"client{c}"))
    duration, n = _window(spec)
    return multi_client(rng, clients, duration_s=duration, n=n, name="multi-client")


def _program(name: str, spec: WorkloadSpec, P: _Params, rng: np.random.Generator) -> Workload:
    rate = _rate(name, spec)
    arrivals = _arrival(P, P.text("process"), rate)
    duration, n = _window(spec)
    roots = arrivals.sample(rng, duration_s=duration, n=n)
    lengths = _length_spec(P)
    block = P.num("block_tokens", integer=True, minimum=1)
    if name == "shared-system-prompt":
        w = programs.shared_system_prompt(rng, roots, lengths, system_tokens=P.num("system_tokens", integer=True, minimum=1),
                                          n_system_prompts=P.num("n_system_prompts", integer=True, minimum=1),
                                          block_tokens=block)
    elif name == "multi-turn":
        w = programs.multi_turn(rng, roots, lengths, min_turns=P.num("min_turns", integer=True, minimum=1),
                                max_turns=P.num("max_turns", integer=True, minimum=1),
                                think_s=P.num("think_s", minimum=0),
                                system_tokens=P.num("system_tokens", integer=True, minimum=0),
                                max_context_tokens=P.num("max_context_tokens", integer=True, minimum=1),
                                block_tokens=block)
    elif name == "tree-of-thought":
        w = programs.tree_of_thought(rng, roots, lengths, branching=P.num("branching", integer=True, minimum=1),
                                     depth=P.num("depth", integer=True, minimum=1),
                                     beam=P.num("beam", integer=True, minimum=1, allow_none=True),
                                     step_s=P.num("step_s", minimum=0), block_tokens=block)
    else:
        w = programs.long_doc_qa(rng, roots, lengths, n_docs=P.num("n_docs", integer=True, minimum=1),
                                 doc_tokens=P.num("doc_tokens", integer=True, minimum=1),
                                 zipf_s=P.num("zipf_s", minimum=0), block_tokens=block)
    return w


def _length_only(name: str, spec: WorkloadSpec, P: _Params, rng: np.random.Generator) -> Workload:
    rate = _rate(name, spec)
    client = ClientSpec(arrivals=_arrival(P, P.text("process"), rate),
                        lengths=LengthSpec("empirical", pairs=readers.trace_pairs(name), source=name), name=name)
    duration, n = _window(spec)
    return multi_client(rng, [client], duration_s=duration, n=n, name=name)


def _servegen(name: str, spec: WorkloadSpec, P: _Params, rng: np.random.Generator) -> Workload:
    model = name.removeprefix("servegen-")
    clients = P.seq("clients")
    if clients is not None:
        clients = _numbers(P, "clients", clients, integer=True)
    return servegen.generate(
        model, rng, clients=clients, top_k=P.num("top_k", integer=True, minimum=1, allow_none=True),
        start_s=P.num("start_s", minimum=0),
        duration_s=spec.duration_s if spec.duration_s is not None else DEFAULT_DURATION_S,
        rate_scale=P.num("rate_scale", minimum=1e-12), target_rate_rps=spec.rate)


_LOADERS: dict[str, Callable[..., Workload]] = {
    **{n: _single for n in ("poisson", "gamma", "uniform", "onoff", "ramp")},
    **{n: _program for n in ("shared-system-prompt", "multi-turn", "tree-of-thought", "long-doc-qa")},
    **{n: _length_only for n in ("sharegpt", "arxiv-summarization")},
    "multimodal": _multimodal,
    **{f"servegen-{m}": _servegen for m in servegen.MODELS},
}


def load(spec: WorkloadSpec, seed: int) -> Workload:
    """The workload `spec` names, deterministic in `seed`.

    Traces: arrivals rescaled so the mean rate ((n-1)/span) equals `spec.rate`, then rows with
    arrival < `duration_s` kept, then the first `num_requests`. Generators and length-only sources:
    `rate` is the process rate (ON rate for onoff, end rate for ramp, total for multi-client,
    sessions/s or trees/s for multi-turn / tree-of-thought), and they generate `duration_s` seconds
    or `num_requests` requests (default 600 s). Unknown names or parameters raise `InputError`.
    """
    _check_spec(spec)
    source = spec.source
    given = params_dict(spec.params)
    if source not in _PARAMS and not generic.is_trace_path(source):
        _load_plugins()
    if source in _PLUGIN_LOADERS:
        w = _rescale(_PLUGIN_LOADERS[source](given, seed), spec.rate, f"workload {source!r}")
        return _cut(w, spec.duration_s, spec.num_requests, f"workload {source!r}")
    if source in _PARAMS:
        P = _Params(source, given, _PARAMS[source])
        rng = np.random.default_rng(seed)
        if source in readers.TRACE_FILES and source not in ("sharegpt", "arxiv-summarization"):
            w = _rescale(readers.read_bundled(source), spec.rate, f"workload {source!r}")
        elif source == "multi-client":
            w = _multi(spec, P, rng, given)
        else:
            w = _LOADERS[source](source, spec, P, rng)
    elif generic.is_trace_path(source):
        P = _Params(source, given, _FILE_PARAMS)
        w = generic.read_file(source, P.num("hash_block_tokens", integer=True, minimum=1))
        w = _rescale(w, spec.rate, source)
    else:
        raise InputError(f"workload {source!r}", "source", "not a bundled workload name or an existing file",
                         f"use a .csv/.jsonl path or one of: {', '.join(names())}")
    if source in _LOADERS or source == "multi-client":
        return _cut(w, *_window(spec), f"workload {source!r}")  # generators: later follow-up turns dropped too
    return _cut(w, spec.duration_s, spec.num_requests, f"workload {source!r}")


def describe(name: str) -> dict[str, Any]:
    """Statistics of a bundled source as shipped: rows, span and mean rate of request traces,
    rows of length files, clients / span / mean total rate of ServeGen; {} for generators."""
    if name in ("sharegpt", "arxiv-summarization"):
        return {"rows": len(readers.trace_pairs(name))}
    if name.startswith("servegen-"):
        win = servegen.read_windows(name.removeprefix("servegen-"))
        starts = win["window_start_s"].to_numpy()
        span = float(starts.max() - starts.min() + servegen.ARRIVAL_WINDOW_S)
        total = float(win["rate_rps"].sum()) * servegen.ARRIVAL_WINDOW_S
        return {"span_s": span, "rate_rps": total / span, "clients": int(win["client_id"].nunique())}
    if name not in readers.TRACE_FILES:
        return {}
    w = readers.read_bundled(name)
    return {"rows": w.n, "span_s": w.duration_s, "rate_rps": mean_rate(w), "clients": w.n_clients}
