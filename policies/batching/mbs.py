"""MBS, Multi-Buffer Serving (Ali, Pinciroli, Yan, Smirni: "Optimizing Inference Serving on
Serverless Platforms", PVLDB 15(10), 2022): buffers by request length, a batch size and a timeout
per buffer, chosen by an analytical cost/latency estimator tuned with a Bayesian optimiser.

Heterogeneous requests in one static batch are padded to the longest; on a serverless platform
every batch is one paid invocation. MBS keeps several buffers split by prompt length, so a batch
holds requests of similar length (less padding), and sizes each buffer's batch and timeout so the
cost per request is least while the latency stays within the SLO. The single-buffer case with the
same optimiser is the paper's state-of-the-art baseline (BATCH, Ali et al. SC'20); batch size 1 is
plain serverless serving (one invocation per request).

Here: `BufferConfig` (bounds, batch sizes, timeouts, validated), the function-side batching policy
`mbs-batch` (a function instance runs the batch the front end assigned to it: when it holds the
buffer's batch size, or when its oldest request has waited the buffer's timeout), the estimator
(`estimate`) and the optimiser (`tune`, optuna's TPE sampler), and BATCH's exhaustive search
over a grid (`tune_exhaustive`, Ali et al. SC'20 §IV). The front end is the `mbs` router
(`llmsched.policies.routing.mbs`).

Unknown paper details and our choices (docs/policies.md): buffer boundaries are equal-mass
quantiles of the prompt lengths (the optimiser tunes batch sizes, timeouts and, given one function
model per memory size, each buffer's memory, buffer by buffer as the artifact does); the estimator
assumes Poisson arrivals per buffer and charges a batch the expected longest prompt of its size;
the latency it holds to the SLO is the timeout (or the time to fill the batch) plus the service
time; cold starts are left out of the estimate (the simulation charges them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import Param, declare, numbers
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder

#: The buffer parameters, shared by the `mbs-batch` batching and the `mbs` router.
BUFFER_PARAMS = declare(
    bounds=Param("numbers", 0, None, low_open=True, finite=False, doc="increasing upper prompt lengths, one per buffer"),
    batch_sizes=numbers(1, doc="whole requests per batch, one per buffer"),
    timeouts_s=numbers(0, doc="seconds a batch's first request waits at most, one per buffer"),
    memory_mb=Param("numbers", 0, None, low_open=True,
                    doc="the function memory (MB) of each buffer's instances, one per buffer; empty: any instance"))


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        value = (value,)
    out = tuple(value)
    if not out:
        raise ValueError(f"{name} must not be empty")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ValueError(f"{name} must be numbers, got {v!r}")
    return out


@dataclass(frozen=True)
class BufferConfig:
    """Buffers by prompt length: buffer i holds prompts of at most bounds[i] tokens (the last one
    also holds longer ones); a batch of buffer i is dispatched at batch_sizes[i] requests or when
    its first request has waited timeouts_s[i]. memory_mb[i] (optional, the MBS artifact's third
    decision variable per buffer): buffer i's batches run on function instances of that memory,
    whose CPU share and GB-second price follow from it (`llmsched.sim.serverless`)."""

    bounds: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    timeouts_s: tuple[float, ...]
    memory_mb: tuple[float, ...] = ()

    @classmethod
    def make(cls, bounds: Any = (math.inf,), batch_sizes: Any = (8,), timeouts_s: Any = (0.1,),
             memory_mb: Any = ()) -> BufferConfig:
        b = tuple(float(x) for x in _as_tuple("bounds", bounds))
        n = tuple(_as_tuple("batch_sizes", batch_sizes))
        t = tuple(float(x) for x in _as_tuple("timeouts_s", timeouts_s))
        m = tuple(float(x) for x in _as_tuple("memory_mb", memory_mb)) if len(np.atleast_1d(memory_mb)) else ()
        if not len(b) == len(n) == len(t):
            raise ValueError(f"bounds, batch_sizes and timeouts_s need one value per buffer, got {len(b)}, "
                             f"{len(n)} and {len(t)}")
        if m and len(m) != len(b):
            raise ValueError(f"memory_mb needs one value per buffer ({len(b)}) or none, got {len(m)}")
        if any(not (x > 0 and math.isfinite(x)) for x in m):
            raise ValueError(f"memory_mb must be finite numbers of MB > 0, got {m}")
        if any(x <= 0 for x in b) or any(y <= x for x, y in itertools.pairwise(b)):
            raise ValueError(f"bounds must be increasing prompt lengths > 0, got {b}")
        if any(x != int(x) or x < 1 for x in n):
            raise ValueError(f"batch_sizes must be whole numbers >= 1, got {n}")
        if any(not (x >= 0 and math.isfinite(x)) for x in t):
            raise ValueError(f"timeouts_s must be finite numbers of seconds >= 0, got {t}")
        return cls(b, tuple(int(x) for x in n), t, m)

    def buffer_of(self, prompt_tokens: int) -> int:
        for i, bound in enumerate(self.bounds):
            if prompt_tokens <= bound:
                return i
        return len(self.bounds) - 1


@register(BATCHING, "mbs-batch")
class MBSBatch:
    """MBS function side (PVLDB 15(10) 2022): run the assigned batch of one length buffer when it reaches the buffer's batch size or its oldest request has waited the buffer's timeout, as one static batch.

    bounds / batch_sizes / timeouts_s: one value per buffer (the same as the `mbs` router's).
    """

    PARAMS = BUFFER_PARAMS

    def __init__(self, bounds: Any = (math.inf,), batch_sizes: Any = (8,), timeouts_s: Any = (0.1,),
                 memory_mb: Any = ()) -> None:
        self.config = BufferConfig.make(bounds, batch_sizes, timeouts_s, memory_mb)

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view)
        if b.continue_static_batch():
            return b.plan()
        waiting = view.waiting
        if not waiting:
            return b.plan()
        cfg = self.config
        buf = cfg.buffer_of(view.prompt_tokens(waiting[0]))
        size = cfg.batch_sizes[buf]
        members = [rid for rid in waiting if cfg.buffer_of(view.prompt_tokens(rid)) == buf][:size]
        due_s = view.arrival_s(waiting[0]) + cfg.timeouts_s[buf]
        if len(members) < size and view.now < due_s:
            b.retry_at_s = due_s  # wait for the batch to fill, at most the timeout
            return b.plan()
        for rid in members:
            if not b.admit(rid):
                break
        return b.plan()


# ------------------------------------------------------------------ estimator and optimiser
@dataclass(frozen=True)
class FunctionModel:
    """What the estimator knows of the function at one memory size: a batch of n requests padded to L tokens takes
    a + length_s_per_token x L + b x n x L seconds (the engine's `padded:a,b',b` or, with
    length_s_per_token = 0, `linear:a,b,0,0` cost models), and the platform's prices (per
    invocation, per GB-second) and the function's memory."""

    a_s: float
    b_s_per_token: float
    price_per_invocation_usd: float
    price_per_gb_s_usd: float
    memory_gb: float
    length_s_per_token: float = 0.0

    def service_s(self, n: float, padded_tokens: float) -> float:
        return self.a_s + self.length_s_per_token * padded_tokens + self.b_s_per_token * n * padded_tokens

    @classmethod
    def from_cost(cls, cost: str, price_per_invocation_usd: float, price_per_gb_s_usd: float,
                  memory_gb: float) -> FunctionModel:
        """From an instance's `linear:a,b,0,0` or `padded:a,b,c` cost spec."""
        kind, _, body = cost.partition(":")
        vals = [float(x) for x in body.split(",")]
        if kind == "linear" and len(vals) == 4 and vals[2] == vals[3] == 0:
            return cls(vals[0], vals[1], price_per_invocation_usd, price_per_gb_s_usd, memory_gb)
        if kind == "padded" and len(vals) == 3:
            return cls(vals[0], vals[2], price_per_invocation_usd, price_per_gb_s_usd, memory_gb, vals[1])
        raise ValueError(f"cost {cost!r}: the estimator takes linear:a,b,0,0 or padded:a,b,c")


def expected_max(lengths: np.ndarray, n: float) -> float:
    """E[max of n draws] from the empirical distribution of `lengths` (n may be fractional)."""
    x = np.sort(np.asarray(lengths, dtype=np.float64))
    if not len(x):
        return 0.0
    cdf = np.arange(1, len(x) + 1) / len(x)
    prev = np.concatenate(([0.0], cdf[:-1]))
    return float((x * (cdf ** n - prev ** n)).sum())


#: The function a buffer runs on: one model, or one per memory size (MB) when the configuration
#: gives each buffer a memory (`BufferConfig.memory_mb`).
Functions = FunctionModel | Mapping[int, FunctionModel]


def buffer_function(fn: Functions, cfg: BufferConfig, i: int) -> FunctionModel:
    """The function model buffer i runs on (its memory's, when `cfg.memory_mb` is set)."""
    if isinstance(fn, FunctionModel):
        if cfg.memory_mb and abs(cfg.memory_mb[i] / 1024 - fn.memory_gb) > 1e-9:
            raise ValueError(f"buffer {i} asks for {cfg.memory_mb[i]:g} MB; pass one FunctionModel per memory size")
        return fn
    if not cfg.memory_mb:
        raise ValueError("one FunctionModel per memory size needs a configuration with memory_mb")
    return fn[round(cfg.memory_mb[i])]


def estimate(cfg: BufferConfig, lengths: np.ndarray, rate_rps: float, fn: Functions,
             slo_s_per_token: float | None = None, padding_aware: bool = True,
             slo_quantile: float = 0.05) -> dict[str, Any]:
    """Analytical cost and latency of a buffer configuration for requests of these prompt `lengths`
    arriving as a Poisson stream of `rate_rps`: per buffer, the expected batch n = min(B, 1 + lambda T),
    the batch's padded length L = E[max of n lengths], its service s (`FunctionModel.service_s` of the
    buffer's function: with `cfg.memory_mb`, `fn` maps each memory size to its model), its latency
    min(T, (B - 1) / lambda) + s, and its cost per request (fee + memory x price x s) / n.

    padding_aware=False is BATCH's view (Ali et al. SC'20, built for homogeneous requests): every
    request has the mean length of its buffer, so the estimate sees no padding.
    slo_s_per_token: the SLO scales with the request's length (the MBS artifact's latency per KB,
    `model/MBS_solver.py` `latencyCdfMulticlass(normalize=True)`): `worst_over_slack_s` is the
    largest, over buffers, of the wait plus a full batch's service (B requests padded to
    E[max of B]; bursty arrivals fill batches, and the artifact's latency distribution includes
    them) minus the slack of the buffer's `slo_quantile` length (the artifact holds the 95th
    percentile). None: -inf."""
    lengths = np.asarray(lengths)
    idx = np.minimum(np.searchsorted(np.asarray(cfg.bounds), lengths, side="left"), len(cfg.bounds) - 1)
    cost = latency = padding = invocations = 0.0
    worst_s = 0.0
    worst_over = -math.inf  # the largest latency - slack over the buffers
    for i in range(len(cfg.bounds)):
        mine = lengths[idx == i]
        if not len(mine):
            continue
        f = buffer_function(fn, cfg, i)
        share = len(mine) / len(lengths)
        lam = rate_rps * share
        n = min(float(cfg.batch_sizes[i]), 1.0 + lam * cfg.timeouts_s[i])
        mean_len = float(mine.mean())
        padded = expected_max(mine, n) if padding_aware else mean_len
        service_s = f.service_s(n, padded)
        wait_s = min(cfg.timeouts_s[i], (cfg.batch_sizes[i] - 1) / lam if lam > 0 else math.inf)
        per_request = (f.price_per_invocation_usd + f.memory_gb * f.price_per_gb_s_usd * service_s) / n
        cost += share * per_request
        latency += share * (wait_s + service_s)
        padding += share * (padded - mean_len)
        invocations += share / n
        worst_s = max(worst_s, wait_s + service_s)
        if slo_s_per_token is not None:
            # bursts fill batches: the SLO is held for a full batch (B requests, padded to E[max of B])
            full_s = f.service_s(cfg.batch_sizes[i], expected_max(mine, cfg.batch_sizes[i]) if padding_aware
                                  else mean_len)
            small = mean_len if not padding_aware else float(np.quantile(mine, slo_quantile))
            worst_over = max(worst_over, wait_s + full_s - slo_s_per_token * small)
    return {"cost_per_request_usd": cost, "mean_latency_s": latency, "worst_latency_s": worst_s,
            "worst_over_slack_s": worst_over, "padding_per_request": padding,
            "invocations_per_request": invocations}


def buffer_bounds(lengths: np.ndarray, buffers: int) -> tuple[float, ...]:
    """Equal-mass quantiles of the prompt lengths as buffer bounds (the last is inf)."""
    if buffers < 1:
        raise ValueError(f"buffers must be >= 1, got {buffers}")
    qs = np.quantile(np.asarray(lengths, dtype=np.float64), np.arange(1, buffers) / buffers)
    bounds = sorted(set(float(np.floor(q)) for q in qs if q >= 1))
    return (*bounds, math.inf)


def tune(lengths: np.ndarray, rate_rps: float, fn: Functions, slo_s: float, buffers: int = 4,
         max_batch: int = 64, trials: int = 300, seed: int = 0, per_token: bool = False,
         padding_aware: bool = True, max_timeout_s: float | None = None) -> BufferConfig:
    """MBS's optimiser: per buffer, the batch size and timeout, and with `fn` a mapping of memory
    size (MB) -> FunctionModel also the memory among its keys (the artifact's three variables,
    `model/MBS_solver.py` l. 40-111, `BayesOpt`), that minimise the buffer's estimated cost per request subject
    to its estimated latency <= slo_s, by optuna's TPE sampler (a Bayesian optimiser; seeded, so the
    result is reproducible), `trials` trials per buffer. The buffers are tuned one by one, as the
    artifact does (one `BayesOpt` per buffer, l. 1581): the estimated cost is a load-weighted sum
    of per-buffer terms and the SLO is held per buffer, so this is the joint optimum's search.
    `buffers` = 1 gives BATCH.

    per_token: slo_s is seconds per prompt token (the artifact's latency per KB), held for each
    buffer's short requests (`estimate`); padding_aware=False: BATCH's padding-blind estimate;
    max_timeout_s: the timeouts' upper bound (default slo_s, or the artifact's min(SLO, 0.5 s) when
    per_token)."""
    if not slo_s > 0:
        raise ValueError(f"slo_s must be > 0 seconds, got {slo_s}")
    lengths = np.asarray(lengths)
    bounds = buffer_bounds(lengths, buffers)
    idx = np.minimum(np.searchsorted(np.asarray(bounds), lengths, side="left"), len(bounds) - 1)
    top_s = max_timeout_s if max_timeout_s is not None else (min(slo_s, 0.5) if per_token else slo_s)
    memories = () if isinstance(fn, FunctionModel) else tuple(sorted(fn))
    picks = []
    for i in range(len(bounds)):
        mine = lengths[idx == i]
        if not len(mine):
            picks.append((1, 0.0, float(memories[0]) if memories else None))
            continue
        picks.append(_tune_buffer(mine, rate_rps * len(mine) / len(lengths), fn, memories, slo_s, max_batch,
                                  top_s, trials, seed + i, per_token, padding_aware))
    return BufferConfig(bounds, tuple(b for b, _, _ in picks), tuple(t for _, t, _ in picks),
                        tuple(m for _, _, m in picks if m is not None))


def _tune_buffer(lengths: np.ndarray, rate_rps: float, fn: Functions, memories: tuple[int, ...], slo_s: float,
                 max_batch: int, top_s: float, trials: int, seed: int, per_token: bool,
                 padding_aware: bool) -> tuple[int, float, float | None]:
    """One buffer's (batch size, timeout, memory MB or None) by TPE (`tune`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scale = _slo_scale(lengths, slo_s, per_token)

    def config(batch: int, timeout_s: float, memory: float | None) -> BufferConfig:
        return BufferConfig((math.inf,), (batch,), (timeout_s,), (memory,) if memory is not None else ())

    def objective(trial: Any) -> float:
        cfg = config(trial.suggest_int("batch", 1, max_batch, log=True), trial.suggest_float("timeout", 0.0, top_s),
                     float(trial.suggest_categorical("memory", memories)) if memories else None)
        return _penalised_cost(cfg, lengths, rate_rps, fn, slo_s, per_token, padding_aware, scale)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    for memory in (memories[0], memories[-1]) if memories else (None,):  # no batching: small and large memory
        study.enqueue_trial({"batch": 1, "timeout": 0.0, **({"memory": memory} if memory is not None else {})})
    study.optimize(objective, n_trials=trials)
    best = study.best_params
    return int(best["batch"]), float(best["timeout"]), float(best["memory"]) if memories else None


def _slo_scale(lengths: np.ndarray, slo_s: float, per_token: bool) -> float:
    """The seconds an SLO miss is measured against in the penalty (`_penalised_cost`)."""
    return float(np.mean(lengths)) * slo_s if per_token else slo_s


def _penalised_cost(cfg: BufferConfig, lengths: np.ndarray, rate_rps: float, fn: Functions, slo_s: float,
                    per_token: bool, padding_aware: bool, scale: float) -> float:
    """The optimisers' objective: the estimated cost per request, raised in proportion to the
    estimated SLO miss (feasible configurations: the cost itself)."""
    est = estimate(cfg, lengths, rate_rps, fn, slo_s_per_token=slo_s if per_token else None,
                   padding_aware=padding_aware)
    over = max(est["worst_over_slack_s"] if per_token else est["worst_latency_s"] - slo_s, 0.0)
    return est["cost_per_request_usd"] * (1.0 + 100.0 * over / scale)  # infeasible: penalised


def tune_exhaustive(lengths: np.ndarray, rate_rps: float, fn: Mapping[int, FunctionModel], slo_s: float,
                    batch_sizes: Sequence[int], timeouts_s: Sequence[float], per_token: bool = False,
                    padding_aware: bool = True) -> BufferConfig:
    """BATCH's optimiser (Ali et al. SC'20, §IV: the cost-under-SLO problem "solved via exhaustive
    search"): one buffer; every (memory, batch size, timeout) of the grid given (memory: the keys
    of `fn`) is estimated (`estimate`), and the cheapest whose estimate meets the SLO is kept (none:
    the least penalised, as in `tune`). Ties go to the first in grid order (memory, batch, timeout
    ascending). per_token / padding_aware as in `tune`."""
    if not slo_s > 0:
        raise ValueError(f"slo_s must be > 0 seconds, got {slo_s}")
    if not len(fn) or not len(batch_sizes) or not len(timeouts_s):
        raise ValueError("tune_exhaustive needs at least one memory size, batch size and timeout")
    lengths = np.asarray(lengths)
    scale = _slo_scale(lengths, slo_s, per_token)
    best: tuple[float, BufferConfig] | None = None
    for memory in sorted(fn):
        for batch in batch_sizes:
            for timeout_s in timeouts_s:
                cfg = BufferConfig.make((math.inf,), (int(batch),), (float(timeout_s),), (float(memory),))
                value = _penalised_cost(cfg, lengths, rate_rps, fn, slo_s, per_token, padding_aware, scale)
                if best is None or value < best[0]:
                    best = (value, cfg)
    assert best is not None
    return best[1]


__all__ = ["BufferConfig", "FunctionModel", "Functions", "MBSBatch", "buffer_bounds", "buffer_function", "estimate",
           "expected_max", "tune", "tune_exhaustive"]
