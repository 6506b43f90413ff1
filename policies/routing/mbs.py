"""MBS front end (PVLDB 15(10) 2022): requests join the open batch of their length buffer; each
batch goes to one serverless function instance, which runs it (`mbs-batch` batching).

A buffer's batch opens with its first request and takes every request of that buffer until it
holds the buffer's batch size or its timeout has passed; then the next request opens a new batch.
A new batch goes to an idle function instance that no open batch holds, the one used most recently
first (the platform reuses warm instances; our reading of AWS Lambda's behaviour, not documented),
else to the instance with the least outstanding work (the concurrency limit is reached: it queues).
With `memory_mb` (one per buffer, the artifact's per-buffer memory size) a buffer's batches go only
to the function instances of that memory (`InstanceSpec.memory_gb` x 1024): one instance group per
memory size, i.e. one Lambda function per configuration, as the artifact deploys one per buffer.
"""

from __future__ import annotations

import math
from typing import Any

from llmsched.policies.batching.mbs import BUFFER_PARAMS, BufferConfig
from llmsched.policies.registry import ROUTING, register
from llmsched.sim.errors import InputError
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "mbs")
class MBSRouter:
    """MBS front end: each request joins its length buffer's open batch, each batch goes to one idle (warm first) function instance.

    bounds / batch_sizes / timeouts_s: one value per buffer (the same as the `mbs-batch` batching's).
    """

    PARAMS = BUFFER_PARAMS

    def __init__(self, bounds: Any = (math.inf,), batch_sizes: Any = (8,), timeouts_s: Any = (0.1,),
                 memory_mb: Any = ()) -> None:
        self.config = BufferConfig.make(bounds, batch_sizes, timeouts_s, memory_mb)
        self._pools: list[range | list[int]] | None = None  # buffer -> its function instances
        self._open: dict[int, tuple[int, int, float]] = {}  # buffer -> (instance, requests, opened at)
        self._last_used: dict[int, float] = {}  # instance -> when a batch last opened there
        # per buffer: its pool's used instances, most recently used first (ties: lower index
        # first), and how many of the pool's instances (in index order) have never been used
        self._mru: list[list[int]] = []
        self._fresh: list[int] = []
        self.batches = 0

    def route(self, rid: int, view: ClusterView) -> int:
        cfg = self.config
        buf = cfg.buffer_of(view.prompt_tokens(rid))
        cur = self._open.get(buf)
        if cur is not None:
            j, count, opened = cur
            if count < cfg.batch_sizes[buf] and view.now < opened + cfg.timeouts_s[buf]:
                self._open[buf] = (j, count + 1, opened)
                return j
        j = self._pick(view, buf)
        self._open[buf] = (j, 1, view.now)
        self._mark_used(j, view.now)
        self.batches += 1
        return j

    def _mark_used(self, j: int, now: float) -> None:
        """Record that a batch opened at `j` now: `j` moves to the front of the MRU order of every
        pool holding it (behind instances used at the same instant with a lower index)."""
        assert self._pools is not None
        for b, pool in enumerate(self._pools):
            order = self._mru[b]
            if j in self._last_used:
                if j not in order:
                    continue
                order.remove(j)
            elif j not in pool:
                continue
            else:
                nxt = self._fresh[b]
                while nxt < len(pool) and pool[nxt] in self._last_used:
                    nxt += 1
                self._fresh[b] = nxt
            k = 0
            while k < len(order) and self._last_used[order[k]] == now and order[k] < j:
                k += 1
            order.insert(k, j)
        self._last_used[j] = now

    def _pool(self, view: ClusterView, buf: int) -> range | list[int]:
        if self._pools is None:
            memory = self.config.memory_mb
            if not memory:
                self._pools = [range(view.n_instances)] * len(self.config.bounds)
            else:
                mb = [round(view.instance(j).spec.memory_gb * 1024) for j in range(view.n_instances)]
                self._pools = [[j for j in range(view.n_instances) if mb[j] == round(m)] for m in memory]
                for i, pool in enumerate(self._pools):
                    if not pool:
                        raise InputError("config", "cluster.router_params.memory_mb",
                                         f"buffer {i} asks for {memory[i]:g} MB but no instance group has "
                                         f"memory_gb = {memory[i] / 1024:g}",
                                         "add such an instance group or change memory_mb")
            self._mru = [[] for _ in self._pools]
            self._fresh = [0] * len(self._pools)
        return self._pools[buf]

    def _pick(self, view: ClusterView, buf: int) -> int:
        """An idle instance of the buffer's pool that no other buffer's open batch holds, the most
        recently used first (then the lowest index); else the least loaded. Reads the pool in that
        order and stops at the first idle one."""
        held = {j for b, (j, count, opened) in self._open.items()
                if b != buf and count < self.config.batch_sizes[b] and view.now < opened + self.config.timeouts_s[b]}
        pool = self._pool(view, buf)
        for j in self._mru[buf]:
            if j in held:
                continue
            s = view.instance(j)
            if s.waiting_count == 0 and s.running_count == 0:
                return j
        for k in range(self._fresh[buf], len(pool)):
            j = pool[k]
            if j not in self._last_used and j not in held:
                s = view.instance(j)
                if s.waiting_count == 0 and s.running_count == 0:
                    return j
        return min(pool, key=lambda j: (j in held, view.instance(j).outstanding_tokens, j))

    def stats(self) -> dict[str, int]:
        return {"batches": self.batches}


__all__ = ["MBSRouter"]
