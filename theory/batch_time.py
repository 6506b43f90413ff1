"""Round-time functions for the throughput theory: t(b) and t(p, d) from callables or cost models.

Owns the adapters that turn a `llmsched.sim.cost.base.CostModel` (batch shape -> seconds) into the scalar
round-time functions the theory works with, via a *steady-state* batch shape built from workload
moments. Must not import engine code; only `llmsched.sim.cost.base` (the shared cost-model contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmsched.sim.cost.base import BatchShape, CostModel

#: t(b): seconds of one round (iteration) that computes b tokens; vectorised over numpy arrays.
BatchTime = Callable[[np.ndarray], np.ndarray]
#: t(p, d): seconds of one round with p prefill tokens and d decode tokens (vectorised).
RoundTime = Callable[[np.ndarray, np.ndarray], np.ndarray]


def staircase(c_s: float, a_s: float, b0_tokens: int) -> BatchTime:
    """Li–Dai–Peng's fitted batch time t(b) = c + a·⌈b/b0⌉ (arXiv 2504.07347, their Eq. (4) as
    quoted by a third-party reproduction; CodeLlama-34B/A100: c=11.28 ms, a=35.47 ms, b0=128).
    """

    def t(b):
        return c_s + a_s * np.ceil(np.asarray(b, dtype=np.float64) / b0_tokens)

    return t


def linear(c_s: float, a_s_per_token: float) -> BatchTime:
    """Linear batch time t(b) = c + a·b (the iteration model of Ao et al., arXiv 2504.11320)."""

    def t(b):
        return c_s + a_s_per_token * np.asarray(b, dtype=np.float64)

    return t


def batch_time_from_cost_model(cost_model: CostModel, moments: ShapeMoments | None = None,
                               prefill_share: float = 1.0) -> BatchTime:
    """t(b) of a cost model. Without `moments`, a round of b tokens is one fresh prefill chunk of b
    tokens (exact for token-count-only models such as the staircase; a stand-in otherwise). With
    `moments`, rounds are steady-state shapes (see `steady_state_shape`) split by `prefill_share`.
    """
    if moments is not None:
        return batch_time_at_mix(round_time_from_cost_model(cost_model, moments), prefill_share)

    def t(b):
        b = np.atleast_1d(np.rint(np.asarray(b, np.float64)).astype(np.int64))
        z = np.zeros_like(b)
        shape = BatchShape(b, b * (b + 1) // 2, b, z, z, np.where(b > 0, 1, 0))
        return np.asarray(cost_model.iteration_times(shape), np.float64)

    return t


def eval_batch_time(t: BatchTime | CostModel, b) -> np.ndarray:
    """Evaluate a t(b) callable (or a `CostModel`, via `batch_time_from_cost_model`) on an array,
    falling back to a Python loop for scalar-only callables."""
    if isinstance(t, CostModel):
        t = batch_time_from_cost_model(t)
    arr = np.asarray(b, dtype=np.float64)
    try:
        out = np.asarray(t(arr), dtype=np.float64)
        if out.shape == arr.shape:
            return out
    except (TypeError, ValueError):
        pass
    return np.array([float(t(float(x))) for x in arr.ravel()]).reshape(arr.shape)


def round_time_from_batch_time(t: BatchTime | CostModel) -> RoundTime:
    """A token-count-only model (Li–Dai–Peng's assumption): t(p, d) = t(p + d)."""

    def rt(p, d):
        return eval_batch_time(t, np.asarray(p, np.float64) + np.asarray(d, np.float64))

    return rt


@dataclass(frozen=True)
class ShapeMoments:
    """What a steady-state batch looks like, from workload moments (tokens).

    mean_prompt, second_prompt: E[p], E[p²]; mean_decode_context: E over decode *tokens* of the
    KV context they read, i.e. E[o·p + o(o-1)/2] / E[o]; chunk_tokens: prefill chunk size (None =
    whole prompts, one chunk per request).
    """

    mean_prompt: float
    second_prompt: float
    mean_decode_context: float
    chunk_tokens: float | None = None


def steady_state_shape(p, d, m: ShapeMoments) -> BatchShape:
    """Batch shapes with p prefill tokens and d decodes whose other fields are their steady-state means.

    Derivation (ours, not from a paper): a prompt of length P computed in order has its j-th token
    attend to j keys, so attention pairs per prefill token average (E[P²]+E[P])/(2E[P]) when
    weighted by tokens. In chunks of size c, chunk k reads k·c keys; summed over the ⌈P/c⌉ chunks
    that is ≈ P²/(2c) + P/2, i.e. E[P²]/(2cE[P]) + 1/2 per prefill token (token-weighted), and
    exactly 1 per token for whole prompts (chunk_tokens=None). A round holds ⌈p/c⌉ prefill chunks
    (c = E[P] for whole prompts). Fields are rounded to integers (the cost-model contract).
    """
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    d = np.atleast_1d(np.asarray(d, dtype=np.float64))
    p, d = np.broadcast_arrays(p, d)
    mp = max(m.mean_prompt, 1.0)
    pairs_per_tok = (m.second_prompt + mp) / (2.0 * mp)
    c = mp if m.chunk_tokens is None else max(1.0, min(float(m.chunk_tokens), mp))
    if m.chunk_tokens is None:
        ctx_per_tok = 1.0
    else:
        ctx_per_tok = max(1.0, m.second_prompt / (2.0 * c * mp) + 0.5)
    chunks = np.where(p > 0, np.ceil(p / c), 0.0)
    as_int = lambda x: np.rint(x).astype(np.int64)  # noqa: E731
    return BatchShape(
        prefill_tokens=as_int(p),
        prefill_attention_pairs=as_int(p * pairs_per_tok),
        prefill_context_tokens=as_int(p * ctx_per_tok),
        decode_tokens=as_int(d),
        decode_context_tokens=as_int(d * m.mean_decode_context),
        num_requests=as_int(d + chunks),
    )


def round_time_from_cost_model(cost_model: CostModel, m: ShapeMoments) -> RoundTime:
    """t(p, d) of a cost model evaluated on steady-state shapes (see `steady_state_shape`)."""

    def rt(p, d):
        p_arr = np.asarray(p, np.float64)
        shape = steady_state_shape(p_arr, d, m)
        out = np.asarray(cost_model.iteration_times(shape), dtype=np.float64)
        return out.reshape(np.broadcast(p_arr, np.asarray(d, np.float64)).shape)

    return rt


def batch_time_at_mix(rt: RoundTime, prefill_share: float) -> BatchTime:
    """t(b) of rounds whose b tokens split in a fixed share: p = share·b, d = (1-share)·b."""
    if not 0.0 <= prefill_share <= 1.0:
        raise ValueError(f"prefill_share must be in [0, 1], got {prefill_share}")

    def t(b):
        b = np.asarray(b, np.float64)
        d = np.rint((1.0 - prefill_share) * b)
        return rt(b - d, d)

    return t
