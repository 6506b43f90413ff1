"""Request length distributions: fixed, uniform, lognormal and empirical (paired) samples.

Owns `LengthSpec` and `sample_lengths`; empirical samples come as arrays of (input, output) pairs,
e.g. from the ShareGPT / arXiv length files via `llmsched.sim.workload.readers`. No arrival-time logic here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmsched.sim.errors import InputError

LENGTH_KINDS = ("fixed", "uniform", "lognormal", "empirical")


@dataclass(frozen=True, eq=False)
class LengthSpec:
    """How to draw (prompt_tokens, output_tokens) per request.

    fixed:     every request has `input_tokens` / `output_tokens`.
    uniform:   integers uniform on [input_min, input_max] / [output_min, output_max], inclusive
               (VTC's `randint(lo, hi)` excludes hi: its [256, 257] is our [256, 256]).
    lognormal: mean `input_tokens` / `output_tokens`, log-space sigma `input_sigma` / `output_sigma`
               (mu = ln(mean) - sigma^2/2), rounded, clipped to [1, max_tokens].
    empirical: rows of `pairs` (shape (m, 2)) drawn uniformly with replacement, so input and
               output stay jointly distributed as in the source file.
    """

    kind: str = "fixed"
    input_tokens: int = 256
    output_tokens: int = 256
    input_min: int = 1
    input_max: int = 512
    output_min: int = 1
    output_max: int = 512
    input_sigma: float = 1.0
    output_sigma: float = 1.0
    max_tokens: int = 32768
    pairs: np.ndarray | None = None
    source: str = ""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return sample_lengths(self, rng, n)

    def mean(self) -> tuple[float, float]:
        """Expected (input, output) tokens, before rounding/clipping effects for lognormal."""
        if self.kind == "fixed":
            return float(self.input_tokens), float(self.output_tokens)
        if self.kind == "uniform":
            return 0.5 * (self.input_min + self.input_max), 0.5 * (self.output_min + self.output_max)
        if self.kind == "lognormal":
            return float(self.input_tokens), float(self.output_tokens)
        p = np.asarray(self.pairs)
        return float(p[:, 0].mean()), float(p[:, 1].mean())


def _lognormal(rng: np.random.Generator, mean: float, sigma: float, n: int, cap: int) -> np.ndarray:
    mu = math.log(mean) - 0.5 * sigma * sigma
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), 1, cap).astype(np.int64)


def sample_lengths(spec: LengthSpec, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt_tokens, output_tokens), each an int64 array of length n with values >= 1."""
    src = spec.source or f"{spec.kind} lengths"
    if spec.kind == "fixed":
        if spec.input_tokens < 1 or spec.output_tokens < 1:
            raise InputError(src, "input_tokens/output_tokens", "must be >= 1")
        return (np.full(n, int(spec.input_tokens), np.int64), np.full(n, int(spec.output_tokens), np.int64))
    if spec.kind == "uniform":
        if not (1 <= spec.input_min <= spec.input_max and 1 <= spec.output_min <= spec.output_max):
            raise InputError(src, "input_tokens/output_tokens", "need 1 <= min <= max for uniform lengths")
        inp = rng.integers(spec.input_min, spec.input_max, n, endpoint=True)
        out = rng.integers(spec.output_min, spec.output_max, n, endpoint=True)
        return inp.astype(np.int64), out.astype(np.int64)
    if spec.kind == "lognormal":
        if spec.input_tokens < 1 or spec.output_tokens < 1 or spec.input_sigma < 0 or spec.output_sigma < 0:
            raise InputError(src, "input_tokens/output_tokens", "means must be >= 1 and sigmas >= 0")
        return (_lognormal(rng, spec.input_tokens, spec.input_sigma, n, spec.max_tokens),
                _lognormal(rng, spec.output_tokens, spec.output_sigma, n, spec.max_tokens))
    if spec.kind == "empirical":
        pairs = np.asarray(spec.pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
            raise InputError(src, "lengths", "empirical lengths need a non-empty (m, 2) array")
        idx = rng.integers(0, len(pairs), n)
        return pairs[idx, 0].astype(np.int64), pairs[idx, 1].astype(np.int64)
    raise InputError(src, "lengths", f"unknown length distribution {spec.kind!r}",
                     f"use one of: {', '.join(LENGTH_KINDS)}")
