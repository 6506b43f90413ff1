"""Encode pools (EPD disaggregation): encoder instances that turn a request's images into
embeddings before prefill, and the read-only view an encode router sees.

An encoder instance holds only the vision encoder. It serves encode jobs (a request's tiles, or
a part of them when the router splits a request over several encoders) first come first served,
up to `max_batch_requests` jobs per batch; a batch takes the encode cost model's seconds for its
total tiles. Events, routing and the embedding transfer belong to `llmsched.sim.engine`; this
module never pushes events itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from llmsched.sim.config import InstanceSpec
from llmsched.sim.cost.encode import EncodeCost, tiles_of
from llmsched.sim.state import RequestFacts, RequestTable


@dataclass(frozen=True)
class EncodeJob:
    """`tiles` tiles of request `rid` (part `part` of the parts the router split it into)."""

    rid: int
    tiles: int
    part: int


class EncodeServer:
    """One encoder instance: a FCFS queue of jobs and the batch in service."""

    def __init__(self, index: int, spec: InstanceSpec, cost: EncodeCost) -> None:
        self.index = index
        self.spec = spec
        self.cost = cost
        self.queue: deque[EncodeJob] = deque()
        self.batch: list[EncodeJob] = []
        self.busy_until_s = 0.0
        self.busy_s = 0.0  # total time spent encoding
        self.batches = 0
        self.tiles_encoded = 0

    @property
    def busy(self) -> bool:
        return bool(self.batch)

    @property
    def backlog_tiles(self) -> int:
        """Tiles queued or in the batch in service."""
        return sum(j.tiles for j in self.queue) + sum(j.tiles for j in self.batch)

    def start(self, now: float) -> float | None:
        """If idle and jobs wait, start the next batch (FCFS, at most max_batch_requests jobs) at
        `now`; returns its end time, else None."""
        if self.batch or not self.queue:
            return None
        while self.queue and len(self.batch) < self.spec.max_batch_requests:
            self.batch.append(self.queue.popleft())
        tiles = sum(j.tiles for j in self.batch)
        seconds = float(self.cost.encode_times(np.array([tiles], dtype=np.int64))[0])
        self.busy_until_s = now + seconds
        self.busy_s += seconds
        self.batches += 1
        self.tiles_encoded += tiles
        return self.busy_until_s

    def finish(self) -> list[EncodeJob]:
        """The batch in service ends: its jobs, in order."""
        done, self.batch = self.batch, []
        return done


class EncodeServerStats:
    """What an encode router sees of one encoder instance."""

    __slots__ = ("_srv",)

    def __init__(self, srv: EncodeServer) -> None:
        self._srv = srv

    index = property(lambda self: self._srv.index)
    spec = property(lambda self: self._srv.spec)
    backlog_tiles = property(lambda self: self._srv.backlog_tiles)
    busy_until_s = property(lambda self: self._srv.busy_until_s)


class EncodeView(RequestFacts):
    """What an encode router sees: the encoder instances and request attributes (images, tiles)."""

    def __init__(self, servers: list[EncodeServer], reqs: RequestTable) -> None:
        self._servers = servers
        self._stats = [EncodeServerStats(s) for s in servers]
        self._reqs = reqs
        self.now = 0.0

    @property
    def n_instances(self) -> int:
        return len(self._servers)

    def instance(self, j: int) -> EncodeServerStats:
        return self._stats[j]

    def images(self, rid: int) -> int:
        return int(self._reqs.workload.images[rid])

    def image_tokens(self, rid: int) -> int:
        return int(self._reqs.workload.image_tokens[rid])

    def tiles(self, rid: int) -> int:
        """Encoder tiles of request `rid` (its image tokens over the encoders' tokens per tile)."""
        return tiles_of(self.image_tokens(rid), self._servers[0].cost)
