"""The cost-model interface: a batch shape in, iteration seconds out, vectorised over iterations.

The engine describes each iteration by integer summaries (`BatchShape`, arrays of equal length,
one entry per iteration) and asks a `CostModel` for the iteration times in one call. A cost model
must be a pure, element-wise function of those integers so that evaluating one iteration or a
thousand gives bit-identical numbers (the fast-forward-equals-step contract depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class BatchShape:
    """Integer summaries of one or more iterations (each field: int64 array of length n_iter).

    prefill_tokens:          new prompt tokens computed this iteration (sum of chunk sizes)
    prefill_attention_pairs: sum over prefill chunks of attention (query, key) pairs,
                             c * past + c * (c + 1) / 2 for a chunk of c tokens after `past` tokens
    prefill_context_tokens:  sum over prefill chunks of (past + c): KV tokens a chunk reads
    decode_tokens:           number of decoding requests (one new token each)
    decode_context_tokens:   sum over decoding requests of tokens already in their KV cache
    num_requests:            requests in the batch (prefill chunks + decodes)
    """

    prefill_tokens: np.ndarray
    prefill_attention_pairs: np.ndarray
    prefill_context_tokens: np.ndarray
    decode_tokens: np.ndarray
    decode_context_tokens: np.ndarray
    num_requests: np.ndarray

    @staticmethod
    def single(
        prefill_tokens: int = 0,
        prefill_attention_pairs: int = 0,
        prefill_context_tokens: int = 0,
        decode_tokens: int = 0,
        decode_context_tokens: int = 0,
        num_requests: int | None = None,
    ) -> BatchShape:
        """One iteration, for tests and theory code."""
        if num_requests is None:
            num_requests = decode_tokens + (1 if prefill_tokens else 0)
        a = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
        return BatchShape(
            a(prefill_tokens), a(prefill_attention_pairs), a(prefill_context_tokens),
            a(decode_tokens), a(decode_context_tokens), a(num_requests),
        )

    @staticmethod
    def prefill_only(chunk_tokens: int, past_tokens: int = 0) -> BatchShape:
        c, p = int(chunk_tokens), int(past_tokens)
        return BatchShape.single(c, c * p + c * (c + 1) // 2, p + c, 0, 0, 1)

    @staticmethod
    def decode_only(batch: int, context_tokens_each: int) -> BatchShape:
        return BatchShape.single(0, 0, 0, batch, batch * context_tokens_each, batch)

    @property
    def total_tokens(self) -> np.ndarray:
        return self.prefill_tokens + self.decode_tokens

    def __len__(self) -> int:
        return len(self.prefill_tokens)


@runtime_checkable
class CostModel(Protocol):
    """Turns batch shapes into iteration seconds. Implementations are frozen dataclasses."""

    @property
    def name(self) -> str:
        """A short label for tables and summaries (a frozen field in every implementation)."""
        ...

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        """Seconds per iteration, float64 array of len(shape); element-wise in the shape fields."""
        ...


def iteration_time(model: CostModel, shape: BatchShape) -> float:
    """Convenience: the time of a single-iteration shape as a Python float."""
    return float(model.iteration_times(shape)[0])
