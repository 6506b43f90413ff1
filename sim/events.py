"""The simulator's one priority queue: push, pop and peek in a deterministic order.

Entries are ordered by their sort key (a tuple such as (time, priority, key)); entries with equal
keys come out in insertion order (a sequence number breaks the tie), so a run never depends on
comparing payloads or on object identity. The engine's event loop, the placement plan simulator
and the prefix tree's eviction order all use it (SimPy-style: a clock and a heap; the logic lives
in the handlers of whoever pops).
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PriorityQueue(Generic[T]):
    """A min-heap of (sort key, item) with FIFO order among equal keys."""

    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        # (sort key, sequence number, item) entries; the engine's event loop peeks and pops it
        # directly (heapq.heappop), which is `pop` without the method call
        self.heap: list[tuple[tuple[Any, ...], int, T]] = []
        self._seq = count()

    def push(self, sort_key: tuple[Any, ...], item: T) -> None:
        heapq.heappush(self.heap, (sort_key, next(self._seq), item))

    def pop(self) -> tuple[tuple[Any, ...], T]:
        """The entry with the smallest key (the earliest pushed among equals)."""
        sort_key, _, item = heapq.heappop(self.heap)
        return sort_key, item

    def __len__(self) -> int:
        return len(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)
