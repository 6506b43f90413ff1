"""Prefix block hashes: a bijective 63-bit mixer and a content tree that names prompt blocks.

Owns how generated prompts get block hash ids. A prompt is a path of content segments in a tree;
block j (tokens [jB, (j+1)B)) is named by (segment holding its last token, offset in it), so two
prompts share a block id exactly when they share all content up to that block's end.
"""

from __future__ import annotations

import hashlib

import numpy as np

MASK63 = np.uint64((1 << 63) - 1)
# Odd multipliers of the splitmix64 finaliser (Steele, Lea, Flood, "Fast splittable pseudorandom
# number generators", OOPSLA 2014); odd => multiplication is a bijection modulo 2^63 as well.
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_OFFSET_BITS = 32  # a segment holds < 2^32 tokens; segment ids < 2^31


def mix63(x: np.ndarray | int, salt: int = 0) -> np.ndarray:
    """Bijective scramble of 63-bit non-negative integers (xorshift-multiply rounds mod 2^63).

    For a fixed salt, distinct inputs give distinct outputs, all in [0, 2^63), as int64.
    """
    with np.errstate(over="ignore"):
        v = (np.asarray(x, dtype=np.uint64) + np.uint64(salt & ((1 << 63) - 1))) & MASK63
        v ^= v >> np.uint64(31)
        v = (v * _C1) & MASK63
        v ^= v >> np.uint64(29)
        v = (v * _C2) & MASK63
        v ^= v >> np.uint64(32)
    return v.astype(np.int64)


def name_salt(name: str) -> int:
    """A stable 63-bit salt from a name (BLAKE2b), for content that does not depend on the seed."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)


def seed_salt(rng: np.random.Generator) -> int:
    """A 63-bit salt drawn from the run's generator (so ids are deterministic from the seed)."""
    return int(rng.integers(0, 1 << 62, dtype=np.int64)) * 2 + int(rng.integers(0, 2))


class ContentTree:
    """Segments of prompt content; each new segment extends a parent path by `tokens` tokens."""

    def __init__(self, salt: int, block_tokens: int) -> None:
        if block_tokens < 1:
            raise ValueError("block_tokens must be >= 1")
        self.salt = int(salt)
        self.block_tokens = int(block_tokens)
        self._parent: list[int] = []
        self._start: list[int] = []
        self._length: list[int] = []

    def segment(self, parent: int | None, tokens: int) -> int:
        """A new segment of `tokens` (>= 1) tokens after `parent` (None = at the start of a prompt)."""
        if tokens < 1:
            raise ValueError("a segment needs >= 1 token")
        sid = len(self._parent)
        if sid >= 1 << 31:
            raise ValueError("too many content segments for one tree")
        start = 0 if parent is None else self._start[parent] + self._length[parent]
        self._parent.append(-1 if parent is None else int(parent))
        self._start.append(start)
        self._length.append(int(tokens))
        return sid

    def end(self, sid: int) -> int:
        """Tokens on the path from the root through segment `sid`."""
        return self._start[sid] + self._length[sid]

    def blocks(self, leaf: int, prompt_tokens: int | None = None) -> np.ndarray:
        """Hash ids of the full blocks among the first `prompt_tokens` tokens of the path to `leaf`.

        Only full blocks get ids (a trailing partial block is not shareable), so a prompt that
        extends another prompt's content has that prompt's block ids as a prefix of its own.
        """
        total = self.end(leaf) if prompt_tokens is None else int(prompt_tokens)
        if total > self.end(leaf):
            raise ValueError("prompt_tokens longer than the content path")
        n_full = total // self.block_tokens
        if n_full == 0:
            return np.zeros(0, np.int64)
        path = []
        s = leaf
        while s >= 0:
            path.append(s)
            s = self._parent[s]
        path.reverse()
        ids = np.asarray(path, np.uint64)
        starts = np.asarray([self._start[p] for p in path], np.int64)
        ends = starts + np.asarray([self._length[p] for p in path], np.int64)
        block_ends = self.block_tokens * np.arange(1, n_full + 1, dtype=np.int64)
        where = np.searchsorted(ends, block_ends, side="left")
        offsets = (block_ends - starts[where]).astype(np.uint64)
        keys = (ids[where] << np.uint64(_OFFSET_BITS)) | offsets
        return mix63(keys, self.salt)
