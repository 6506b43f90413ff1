"""The columnar `Workload`: one row per request, with ragged prefix block hashes.

Owns the request table and its validation. Generators and readers build it; the engine only reads
it. Must not depend on any engine, policy or cost-model code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_HASH_BLOCK_TOKENS = 16


def _as(a, dtype) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=dtype))
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Workload:
    """A request table sorted by arrival time (seconds, SI units throughout).

    Columns (all length n):
      arrival_s, client (0..n_clients-1), prompt_tokens (>=1), output_tokens (>=1),
      priority (int, larger = more important), ttft_slo_s, tbt_slo_s (inf = no SLO),
      images (images attached to the request, >= 0) and image_tokens (the prompt tokens those images
      become in the LLM, part of prompt_tokens; 0 without images). Text-only workloads leave both 0.
    Ragged prefix block hashes: request i's blocks are `hash_values[hash_offsets[i]:hash_offsets[i+1]]`,
    each block covering `hash_block_tokens` prompt tokens, in prefix order.
    Per client: `client_weight[c]` (fair-share weight) and `client_names[c]`.
    `meta["row_labels"]` (optional): {label: per-row array}, kept aligned by `take`/`head`/`until`.
    """

    arrival_s: np.ndarray
    client: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_offsets: np.ndarray = None  # type: ignore[assignment]
    hash_values: np.ndarray = None  # type: ignore[assignment]
    priority: np.ndarray = None  # type: ignore[assignment]
    ttft_slo_s: np.ndarray = None  # type: ignore[assignment]
    tbt_slo_s: np.ndarray = None  # type: ignore[assignment]
    client_weight: np.ndarray = None  # type: ignore[assignment]
    parent: np.ndarray = None  # type: ignore[assignment]
    pin_instance: np.ndarray = None  # type: ignore[assignment]
    images: np.ndarray = None  # type: ignore[assignment]
    image_tokens: np.ndarray = None  # type: ignore[assignment]
    client_names: tuple[str, ...] = ()
    hash_block_tokens: int = DEFAULT_HASH_BLOCK_TOKENS
    name: str = "workload"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        n = len(np.asarray(self.arrival_s))
        set_(self, "arrival_s", _as(self.arrival_s, np.float64))
        set_(self, "client", _as(self.client, np.int64))
        set_(self, "prompt_tokens", _as(self.prompt_tokens, np.int64))
        set_(self, "output_tokens", _as(self.output_tokens, np.int64))
        if self.hash_offsets is None:
            set_(self, "hash_offsets", _as(np.zeros(n + 1), np.int64))
            set_(self, "hash_values", _as(np.zeros(0), np.int64))
        else:
            set_(self, "hash_offsets", _as(self.hash_offsets, np.int64))
            set_(self, "hash_values", _as(self.hash_values, np.int64))
        set_(self, "priority", _as(np.zeros(n) if self.priority is None else self.priority, np.int64))
        minus1 = np.full(n, -1)
        set_(self, "parent", _as(minus1 if self.parent is None else self.parent, np.int64))
        set_(self, "pin_instance", _as(minus1 if self.pin_instance is None else self.pin_instance, np.int64))
        zeros = np.zeros(n)
        set_(self, "images", _as(zeros if self.images is None else self.images, np.int64))
        set_(self, "image_tokens", _as(zeros if self.image_tokens is None else self.image_tokens, np.int64))
        inf = np.full(n, np.inf)
        set_(self, "ttft_slo_s", _as(inf if self.ttft_slo_s is None else self.ttft_slo_s, np.float64))
        set_(self, "tbt_slo_s", _as(inf if self.tbt_slo_s is None else self.tbt_slo_s, np.float64))
        n_clients = int(self.client.max()) + 1 if n else 0
        if self.client_weight is None:
            set_(self, "client_weight", _as(np.ones(max(n_clients, len(self.client_names))), np.float64))
        else:
            set_(self, "client_weight", _as(self.client_weight, np.float64))
        if not self.client_names:
            set_(self, "client_names", tuple(f"client{c}" for c in range(len(self.client_weight))))
        self.validate()

    # -- validation -------------------------------------------------------------------------
    def validate(self, source: str | None = None) -> None:
        """Raise `InputError` naming the column and the fix on any inconsistency."""

        src = source or f"workload {self.name!r}"
        self._validate_shapes(src)
        if self.n:
            self._validate_values(src)

    def _validate_shapes(self, src: str) -> None:
        """Every column has one row per request; the ragged hash offsets match the hash values."""
        from llmsched.sim.errors import InputError

        n = self.n
        for col in ("client", "prompt_tokens", "output_tokens", "priority", "ttft_slo_s", "tbt_slo_s",
                    "parent", "pin_instance", "images", "image_tokens"):
            if len(getattr(self, col)) != n:
                raise InputError(src, col, f"has {len(getattr(self, col))} rows, expected {n}")
        if len(self.hash_offsets) != n + 1 or (n and self.hash_offsets[-1] != len(self.hash_values)):
            raise InputError(src, "hash_ids", "ragged offsets do not match the hash values")

    def _validate_values(self, src: str) -> None:
        """The values of a non-empty workload: sorted finite arrivals, positive lengths, weights, SLOs."""
        from llmsched.sim.errors import InputError

        n = self.n
        if not np.all(np.isfinite(self.arrival_s)) or self.arrival_s.min() < 0:
            raise InputError(src, "arrival_s", "must be finite and >= 0")
        if np.any(np.diff(self.arrival_s) < 0):
            raise InputError(src, "arrival_s", "is not sorted", "sort rows by arrival time")
        if self.client.min() < 0:
            raise InputError(src, "client_id", "must be >= 0")
        if self.prompt_tokens.min() < 1:
            raise InputError(src, "input_tokens", "must be >= 1 for every request")
        if self.output_tokens.min() < 1:
            raise InputError(src, "output_tokens", "must be >= 1 for every request")
        if self.client.max() >= len(self.client_weight):
            raise InputError(src, "client_weight", "has fewer entries than clients")
        if np.any(self.client_weight <= 0) or not np.all(np.isfinite(self.client_weight)):
            raise InputError(src, "client_weight", "weights must be finite and > 0")
        if np.any(self.ttft_slo_s <= 0) or np.any(self.tbt_slo_s <= 0):
            raise InputError(src, "slo", "SLOs must be > 0 (use inf for none)")
        if self.hash_block_tokens < 1:
            raise InputError(src, "hash_block_tokens", "must be >= 1")
        if np.any(self.parent >= np.arange(n)) or np.any(self.parent < -1):
            raise InputError(src, "parent", "a request's parent must be an earlier row (or -1)")
        if np.any(self.pin_instance < -1):
            raise InputError(src, "pin_instance", "must be an instance index >= 0 or -1 (router decides)")
        if self.images.min() < 0 or self.image_tokens.min() < 0:
            raise InputError(src, "images/image_tokens", "must be >= 0")
        if np.any((self.images > 0) != (self.image_tokens > 0)) or np.any(self.image_tokens >= self.prompt_tokens + 1):
            raise InputError(src, "image_tokens", "a request's images need image tokens (and none without images), "
                             "counted within its prompt_tokens", "give image_tokens in 1..prompt_tokens per image request")

    # -- access -----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.arrival_s)

    def __len__(self) -> int:
        return self.n

    @property
    def n_clients(self) -> int:
        return len(self.client_weight)

    @property
    def has_images(self) -> bool:
        return bool(self.images.any())

    @property
    def has_prefixes(self) -> bool:
        return len(self.hash_values) > 0

    def hashes(self, i: int) -> np.ndarray:
        return self.hash_values[self.hash_offsets[i] : self.hash_offsets[i + 1]]

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1] - self.arrival_s[0]) if self.n > 1 else 0.0

    def take(self, idx: Sequence[int] | np.ndarray, name: str | None = None) -> Workload:
        """Rows `idx` (kept in the given order, which must be time-sorted)."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.hash_offsets[idx], self.hash_offsets[idx + 1]
        lens = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lens)])
        values = self.hash_values[_ragged_gather(starts, lens, offsets)]
        meta = dict(self.meta)
        if "row_labels" in meta:  # per-row label arrays (e.g. session/turn) follow the rows
            meta["row_labels"] = {k: np.asarray(v)[idx] for k, v in meta["row_labels"].items()}
        return Workload(
            arrival_s=self.arrival_s[idx], client=self.client[idx],
            prompt_tokens=self.prompt_tokens[idx], output_tokens=self.output_tokens[idx],
            hash_offsets=offsets, hash_values=values, priority=self.priority[idx],
            ttft_slo_s=self.ttft_slo_s[idx], tbt_slo_s=self.tbt_slo_s[idx],
            client_weight=self.client_weight, client_names=self.client_names,
            hash_block_tokens=self.hash_block_tokens, name=name or self.name, meta=meta,
            images=self.images[idx], image_tokens=self.image_tokens[idx],
        )

    def head(self, n: int) -> Workload:
        return self.take(np.arange(min(n, self.n)))

    def until(self, t_s: float) -> Workload:
        return self.take(np.flatnonzero(self.arrival_s <= t_s))

    def with_columns(self, **changes) -> Workload:
        """A copy with some columns replaced (validated again)."""
        kw = {f: getattr(self, f) for f in self.__dataclass_fields__}
        kw.update(changes)
        return Workload(**kw)

def _ragged_gather(starts: np.ndarray, lens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Indices that copy segments [starts[i], starts[i]+lens[i]) one after another (vectorised)."""
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.int64)
    return np.arange(total, dtype=np.int64) + np.repeat(np.asarray(starts, np.int64) - offsets[:-1], lens)


def _remap_parents(parent: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Parents of the kept rows, renumbered; a parent that was dropped makes the row a root."""
    new_pos = np.full(len(parent), -1, dtype=np.int64)
    new_pos[idx] = np.arange(len(idx))
    p = parent[idx]
    return np.where(p >= 0, new_pos[np.maximum(p, 0)], -1)


def merge(workloads: Sequence[Workload], name: str = "mix") -> Workload:
    """Merge per-client workloads (each single-client or already numbered) into one sorted table.

    Client ids are renumbered so that workload k's clients follow workload k-1's.
    Hash values are kept as given (give disjoint hash spaces if prefixes must not be shared).
    """
    if not workloads:
        raise ValueError("merge() needs at least one workload")
    block = {w.hash_block_tokens for w in workloads if w.has_prefixes}
    if len(block) > 1:
        raise ValueError(f"cannot merge workloads with different hash_block_tokens {sorted(block)}")
    client_base, parts = 0, []
    weights: list[float] = []
    names: list[str] = []
    for w in workloads:
        parts.append((w, client_base))
        weights.extend(w.client_weight.tolist())
        names.extend(w.client_names)
        client_base += w.n_clients
    arrival = np.concatenate([w.arrival_s for w, _ in parts])
    order = np.argsort(arrival, kind="stable")
    lens = np.concatenate([np.diff(w.hash_offsets) for w, _ in parts])
    starts = np.concatenate([w.hash_offsets[:-1] + sum(len(p.hash_values) for p, _ in parts[:k]) for k, (w, _) in enumerate(parts)])
    all_values = np.concatenate([w.hash_values for w, _ in parts]) if parts else np.zeros(0, np.int64)
    lens_o, starts_o = lens[order], starts[order]
    offsets = np.concatenate([[0], np.cumsum(lens_o)]).astype(np.int64)
    values = all_values[_ragged_gather(starts_o, lens_o, offsets)]

    def cat(col: str) -> np.ndarray:
        return np.concatenate([getattr(w, col) for w, _ in parts])[order]

    row_base = np.cumsum([0] + [len(w.arrival_s) for w, _ in parts[:-1]])
    parent_global = np.concatenate([np.where(w.parent >= 0, w.parent + base, -1)
                                    for (w, _), base in zip(parts, row_base)])
    return Workload(
        arrival_s=arrival[order],
        client=np.concatenate([w.client + base for w, base in parts])[order],
        prompt_tokens=cat("prompt_tokens"), output_tokens=cat("output_tokens"),
        hash_offsets=offsets, hash_values=values, priority=cat("priority"),
        ttft_slo_s=cat("ttft_slo_s"), tbt_slo_s=cat("tbt_slo_s"),
        client_weight=np.asarray(weights), client_names=tuple(names),
        hash_block_tokens=block.pop() if block else DEFAULT_HASH_BLOCK_TOKENS, name=name,
        parent=_remap_parents(parent_global, order), pin_instance=cat("pin_instance"),
        images=cat("images"), image_tokens=cat("image_tokens"),
    )
