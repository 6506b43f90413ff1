"""Closed-form cost models: linear in the batch summaries, a padded static batch's, and the
Li–Dai–Peng staircase.

Both are element-wise over iterations (+, *, /, ceil only), so one iteration or many give
bit-identical times. Must not import the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched.sim.cost.base import BatchShape

# Li, Dai, Peng, "Throughput-optimal scheduling algorithms for LLM inference and AI agents"
# (arXiv 2504.07347): batch time c + a * ceil(tokens / b0) measured for CodeLlama-34B on A100,
# c = 11.28 ms, a = 35.47 ms, b0 = 128 tokens.
LDP_C_S = 11.28e-3
LDP_A_S = 35.47e-3
LDP_B0_TOKENS = 128


@dataclass(frozen=True)
class LinearCost:
    """t = a + b*prefill_tokens + c*decode_tokens + d*context_tokens (seconds).

    context_tokens = decode_context_tokens + prefill_context_tokens: every KV token an iteration's
    attention reads (decodes read their cache; chunks read their cached past plus themselves).
    An iteration with no tokens takes 0 s.
    """

    a: float
    b: float
    c: float
    d: float
    name: str = "linear"

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        if len(shape) == 1:  # same operations on Python floats (IEEE-identical), much cheaper
            pt_i, dt_i = int(shape.prefill_tokens[0]), int(shape.decode_tokens[0])
            ctx1 = float(int(shape.decode_context_tokens[0]) + int(shape.prefill_context_tokens[0]))
            t1 = self.a + self.b * float(pt_i) + self.c * float(dt_i) + self.d * ctx1
            return np.array([t1 if pt_i + dt_i > 0 else 0.0])
        pt = shape.prefill_tokens.astype(np.float64)
        dt = shape.decode_tokens.astype(np.float64)
        ctx = (shape.decode_context_tokens + shape.prefill_context_tokens).astype(np.float64)
        t = self.a + self.b * pt + self.c * dt + self.d * ctx
        return np.where(pt + dt > 0, t, 0.0)


@dataclass(frozen=True)
class PaddedBatchCost:
    """t = a + b*L + c*n*L (seconds) for a static batch of n one-pass requests padded to length L:
    L = prefill_tokens / num_requests (with `InstanceSpec.pad_batches` every chunk is the longest).
    The b*L term is what a batch pays once for its length whatever its size (the MBS artifact's
    measured Lambda service times grow as L*(n + ~1), `llmsched.sim.serverless`). Decode work is
    not modelled (a function's requests are one forward pass). An iteration with no tokens takes 0 s.
    """

    a: float
    b: float
    c: float
    name: str = "padded"

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        if len(shape) == 1:  # same operations on Python floats (IEEE-identical), much cheaper
            pt_i, n_i = int(shape.prefill_tokens[0]), int(shape.num_requests[0])
            if pt_i <= 0:
                return np.array([0.0])
            length = float(pt_i) / float(max(n_i, 1))
            return np.array([self.a + self.b * length + self.c * float(pt_i)])
        pt = shape.prefill_tokens.astype(np.float64)
        n = np.maximum(shape.num_requests, 1).astype(np.float64)
        t = self.a + self.b * (pt / n) + self.c * pt
        return np.where(pt > 0, t, 0.0)


@dataclass(frozen=True)
class StaircaseCost:
    """t = c + a * ceil(tokens / b0), tokens = prefill_tokens + decode_tokens (seconds; Li–Dai–Peng).

    Defaults: CodeLlama-34B on A100 (c = 11.28 ms, a = 35.47 ms, b0 = 128). 0 s with no tokens.
    """

    c: float = LDP_C_S
    a: float = LDP_A_S
    b0: int = LDP_B0_TOKENS
    name: str = "staircase"

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        if len(shape) == 1:
            n = int(shape.prefill_tokens[0]) + int(shape.decode_tokens[0])
            return np.array([self.c + self.a * float((n + (self.b0 - 1)) // self.b0) if n > 0 else 0.0])
        tokens = shape.total_tokens.astype(np.int64)
        steps = (tokens + (self.b0 - 1)) // self.b0  # integer ceil: exact, no float rounding
        t = self.c + self.a * steps.astype(np.float64)
        return np.where(tokens > 0, t, 0.0)
