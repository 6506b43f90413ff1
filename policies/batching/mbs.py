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
(`estimate`) and the optimiser (`tune`, optuna's TPE sampler). The front end is the `mbs` router
(`llmsched.policies.routing.mbs`).

Unknown paper details and our choices (docs/policies.md): buffer boundaries are equal-mass
quantiles of the prompt lengths (the optimiser tunes batch sizes and timeouts); the estimator
assumes Poisson arrivals per buffer and charges a batch the expected longest prompt of its size;
the latency it holds to the SLO is the timeout (or the time to fill the batch) plus the service
time; cold starts are left out of the estimate (the simulation charges them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
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
    timeouts_s=numbers(0, doc="seconds a batch's first request waits at most, one per buffer"))


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
    its first request has waited timeouts_s[i]."""

    bounds: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    timeouts_s: tuple[float, ...]

    @classmethod
    def make(cls, bounds: Any = (math.inf,), batch_sizes: Any = (8,), timeouts_s: Any = (0.1,)) -> BufferConfig:
        b = tuple(float(x) for x in _as_tuple("bounds", bounds))
        n = tuple(_as_tuple("batch_sizes", batch_sizes))
        t = tuple(float(x) for x in _as_tuple("timeouts_s", timeouts_s))
        if not len(b) == len(n) == len(t):
            raise ValueError(f"bounds, batch_sizes and timeouts_s need one value per buffer, got {len(b)}, "
                             f"{len(n)} and {len(t)}")
        if any(x <= 0 for x in b) or any(y <= x for x, y in itertools.pairwise(b)):
            raise ValueError(f"bounds must be increasing prompt lengths > 0, got {b}")
        if any(x != int(x) or x < 1 for x in n):
            raise ValueError(f"batch_sizes must be whole numbers >= 1, got {n}")
        if any(not (x >= 0 and math.isfinite(x)) for x in t):
            raise ValueError(f"timeouts_s must be finite numbers of seconds >= 0, got {t}")
        return cls(b, tuple(int(x) for x in n), t)

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

    def __init__(self, bounds: Any = (math.inf,), batch_sizes: Any = (8,), timeouts_s: Any = (0.1,)) -> None:
        self.config = BufferConfig.make(bounds, batch_sizes, timeouts_s)

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
    """What the estimator knows of the function: a batch of n requests padded to L tokens takes
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


def estimate(cfg: BufferConfig, lengths: np.ndarray, rate_rps: float, fn: FunctionModel,
             slo_s_per_token: float | None = None, padding_aware: bool = True,
             slo_quantile: float = 0.05) -> dict[str, Any]:
    """Analytical cost and latency of a buffer configuration for requests of these prompt `lengths`
    arriving as a Poisson stream of `rate_rps`: per buffer, the expected batch n = min(B, 1 + lambda T),
    the batch's padded length L = E[max of n lengths], its service s (`FunctionModel.service_s`), its latency
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
    idx = np.array([cfg.buffer_of(int(x)) for x in lengths])
    cost = latency = padding = invocations = 0.0
    worst_s = 0.0
    worst_over = -math.inf  # the largest latency - slack over the buffers
    for i in range(len(cfg.bounds)):
        mine = lengths[idx == i]
        if not len(mine):
            continue
        share = len(mine) / len(lengths)
        lam = rate_rps * share
        n = min(float(cfg.batch_sizes[i]), 1.0 + lam * cfg.timeouts_s[i])
        mean_len = float(mine.mean())
        padded = expected_max(mine, n) if padding_aware else mean_len
        service_s = fn.service_s(n, padded)
        wait_s = min(cfg.timeouts_s[i], (cfg.batch_sizes[i] - 1) / lam if lam > 0 else math.inf)
        per_request = (fn.price_per_invocation_usd + fn.memory_gb * fn.price_per_gb_s_usd * service_s) / n
        cost += share * per_request
        latency += share * (wait_s + service_s)
        padding += share * (padded - mean_len)
        invocations += share / n
        worst_s = max(worst_s, wait_s + service_s)
        if slo_s_per_token is not None:
            # bursts fill batches: the SLO is held for a full batch (B requests, padded to E[max of B])
            full_s = fn.service_s(cfg.batch_sizes[i], expected_max(mine, cfg.batch_sizes[i]) if padding_aware
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


def tune(lengths: np.ndarray, rate_rps: float, fn: FunctionModel, slo_s: float, buffers: int = 4,
         max_batch: int = 64, trials: int = 300, seed: int = 0, per_token: bool = False,
         padding_aware: bool = True, max_timeout_s: float | None = None) -> BufferConfig:
    """MBS's optimiser: batch sizes and timeouts per buffer that minimise the estimated cost per
    request subject to the estimated worst buffer latency <= slo_s, by optuna's TPE sampler (a
    Bayesian optimiser; seeded, so the result is reproducible). `buffers` = 1 gives BATCH.

    per_token: slo_s is seconds per prompt token (the artifact's latency per KB), held for each
    buffer's short requests (`estimate`); padding_aware=False: BATCH's padding-blind estimate;
    max_timeout_s: the timeouts' upper bound (default slo_s, or the artifact's min(SLO, 0.5 s) when
    per_token)."""
    import optuna

    if not slo_s > 0:
        raise ValueError(f"slo_s must be > 0 seconds, got {slo_s}")
    bounds = buffer_bounds(lengths, buffers)
    k = len(bounds)
    top_s = max_timeout_s if max_timeout_s is not None else (min(slo_s, 0.5) if per_token else slo_s)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        cfg = BufferConfig(bounds, tuple(trial.suggest_int(f"batch{i}", 1, max_batch, log=True) for i in range(k)),
                           tuple(trial.suggest_float(f"timeout{i}", 0.0, top_s) for i in range(k)))
        est = estimate(cfg, lengths, rate_rps, fn, slo_s_per_token=slo_s if per_token else None,
                       padding_aware=padding_aware)
        if per_token:
            over = max(est["worst_over_slack_s"], 0.0)
            scale = float(np.mean(lengths)) * slo_s
        else:
            over = max(est["worst_latency_s"] - slo_s, 0.0)
            scale = slo_s
        return est["cost_per_request_usd"] * (1.0 + 100.0 * over / scale)  # infeasible: penalised

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({**{f"batch{i}": 1 for i in range(k)}, **{f"timeout{i}": 0.0 for i in range(k)}})
    study.optimize(objective, n_trials=trials)
    best = study.best_params
    return BufferConfig(bounds, tuple(int(best[f"batch{i}"]) for i in range(k)),
                        tuple(float(best[f"timeout{i}"]) for i in range(k)))


__all__ = ["BufferConfig", "FunctionModel", "MBSBatch", "buffer_bounds", "estimate", "expected_max", "tune"]
