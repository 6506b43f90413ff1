"""Workload moments for the throughput theory: means and second moments of prompt and output lengths.

Owns the reduction of a `Workload` to the numbers the fluid/capacity models need and the per-request
work and KV-residency formulas. Convention (as the engine and run format): the round finishing a
prompt emits the first token, so o output tokens need o − 1 decode rounds. No engine imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorkloadStats:
    """Moments of one request population (tokens; rate in requests/s if known).

    mean_prompt_tokens = E[p], mean_output_tokens = E[o], prompt_sq = E[p²], output_sq = E[o²],
    prompt_output = E[p·o]. `first_token_in_prefill` (default True, see module docstring) decides
    whether a request needs o − 1 (True) or o (False) decode rounds.
    """

    mean_prompt_tokens: float
    mean_output_tokens: float
    prompt_sq: float
    output_sq: float
    prompt_output: float
    rate_rps: float | None = None
    n_requests: int = 0
    first_token_in_prefill: bool = True

    def __post_init__(self) -> None:
        if not (self.mean_prompt_tokens >= 0 and self.mean_output_tokens >= 1):
            raise ValueError("need mean_prompt_tokens >= 0 and mean_output_tokens >= 1")
        tol = 1e-9 * max(1.0, self.prompt_sq, self.output_sq)
        if self.prompt_sq < self.mean_prompt_tokens**2 - tol or self.output_sq < self.mean_output_tokens**2 - tol:
            raise ValueError("second moments must be >= squared means")

    # -- constructors ---------------------------------------------------------------------------
    @staticmethod
    def deterministic(prompt_tokens: float, output_tokens: float, rate_rps: float | None = None,
                      first_token_in_prefill: bool = True) -> WorkloadStats:
        """Every request has the same lengths (second moments are squares)."""
        p, o = float(prompt_tokens), float(output_tokens)
        return WorkloadStats(p, o, p * p, o * o, p * o, rate_rps, 0, first_token_in_prefill)

    @staticmethod
    def from_arrays(prompt_tokens, output_tokens, rate_rps: float | None = None,
                    first_token_in_prefill: bool = True) -> WorkloadStats:
        p = np.asarray(prompt_tokens, dtype=np.float64)
        o = np.asarray(output_tokens, dtype=np.float64)
        if p.size == 0 or p.shape != o.shape:
            raise ValueError("need equal-length, non-empty prompt and output arrays")
        return WorkloadStats(float(p.mean()), float(o.mean()), float((p * p).mean()),
                             float((o * o).mean()), float((p * o).mean()), rate_rps, int(p.size),
                             first_token_in_prefill)

    @staticmethod
    def from_workload(workload, first_token_in_prefill: bool = True) -> WorkloadStats:
        """Moments of a `llmsched.sim.workload.Workload`; the rate is n / (arrival span) when the span > 0."""
        n = workload.n
        span = workload.duration_s
        rate = (n - 1) / span if n > 1 and span > 0 else None
        return WorkloadStats.from_arrays(workload.prompt_tokens, workload.output_tokens, rate,
                                         first_token_in_prefill)

    # -- derived per-request quantities -----------------------------------------------------------
    @property
    def decode_offset(self) -> float:
        return 1.0 if self.first_token_in_prefill else 0.0

    @property
    def mean_decode_tokens(self) -> float:
        """E[d], d = decode rounds per request (o − 1 by default)."""
        return self.mean_output_tokens - self.decode_offset

    @property
    def decode_sq(self) -> float:
        """E[d²] = E[o²] − 2kE[o] + k², k = decode_offset."""
        k = self.decode_offset
        return self.output_sq - 2 * k * self.mean_output_tokens + k * k

    @property
    def prompt_decode(self) -> float:
        """E[p·d] = E[p·o] − k·E[p]."""
        return self.prompt_output - self.decode_offset * self.mean_prompt_tokens

    @property
    def mean_work_tokens(self) -> float:
        """E[p + d]: tokens computed per request (prefill + decode rounds)."""
        return self.mean_prompt_tokens + self.mean_decode_tokens

    @property
    def mean_decode_context(self) -> float:
        """KV tokens read by an average decode token: E[Σ_{j=1..d}(p + j − 1)] / E[d]."""
        ed = self.mean_decode_tokens
        if ed <= 0:
            return self.mean_prompt_tokens
        return (self.prompt_decode + (self.decode_sq - ed) / 2.0) / ed

    def prefill_rounds(self, chunk_tokens: float | None) -> float:
        """E[K], K = ⌈p/c⌉ rounds a prompt spends prefilling (1 for whole prompts).

        With p = q·c + r, r ∈ {1..c} uniform and independent of q (our approximation for a spread-out
        length distribution): E[K] = E[q] + 1 = E[p]/c + (c − 1)/(2c); at least 1.
        """
        if chunk_tokens is None:
            return 1.0
        c = float(chunk_tokens)
        return max(1.0, self.mean_prompt_tokens / c + (c - 1.0) / (2.0 * c))

    def kv_token_rounds(self, chunk_tokens: float | None, include_prefill: bool = True) -> float:
        """E[g]: Σ over the rounds a request is in the batch of the KV tokens it holds (token·rounds).

        Decode round j (1..d) holds p + j tokens: Σ_j (p + j) = d·p + d(d+1)/2, so
        E = E[p d] + (E[d²] + E[d])/2. Prefill of a whole prompt: one round holding p. In chunks of c,
        round k holds min(k·c, p); with p = q·c + r the sum is c·q(q+1)/2 + p
        = p²/(2c) + p + q(c/2 − r) − r²/(2c). Averaging with r uniform on {1..c} independent of q
        (exact for a population covering whole periods of c) gives
        E[p²]/(2c) + E[p](1 − 1/(2c)) − (c² − 1)/(6c); we floor it at E[p] (prompts shorter than a chunk
        take one round). This is the "lifetime cumulative KV demand" that Little's law turns into mean
        KV occupancy (the idea of Nie–Si–Zhou, arXiv 2605.04595, as summarised by a third party; the
        formulas are ours).
        """
        decode = self.prompt_decode + (self.decode_sq + self.mean_decode_tokens) / 2.0
        if not include_prefill:
            return decode
        ep = self.mean_prompt_tokens
        if chunk_tokens is None:
            prefill = ep
        else:
            c = float(chunk_tokens)
            prefill = max(ep, self.prompt_sq / (2.0 * c) + ep * (1.0 - 1.0 / (2.0 * c)) - (c * c - 1.0) / (6.0 * c))
        return decode + prefill
