"""Multi-client mixes: each client has its own arrival process, lengths, weight and SLOs.

Owns `ClientSpec` and `multi_client`, which draws every client from its own child generator and
combines them with `llmsched.sim.workload.merge` (client k keeps index k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmsched.sim.errors import InputError
from llmsched.sim.workload.arrivals import ArrivalSpec
from llmsched.sim.workload.core import Workload, merge
from llmsched.sim.workload.lengths import LengthSpec, sample_lengths


@dataclass(frozen=True)
class ClientSpec:
    """One client of a mix: arrivals, lengths, fair-share weight, priority and SLOs (inf = none)."""

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    lengths: LengthSpec = field(default_factory=LengthSpec)
    weight: float = 1.0
    name: str = ""
    priority: int = 0
    ttft_slo_s: float = math.inf
    tbt_slo_s: float = math.inf


def single_client(rng: np.random.Generator, spec: ClientSpec, *, duration_s: float | None = None,
                  n: int | None = None, name: str = "client0") -> Workload:
    """One client's requests: arrivals from `spec.arrivals`, lengths from `spec.lengths`."""
    t = spec.arrivals.sample(rng, duration_s=duration_s, n=n)
    prompt, output = sample_lengths(spec.lengths, rng, len(t))
    k = len(t)
    return Workload(
        arrival_s=t, client=np.zeros(k, np.int64), prompt_tokens=prompt, output_tokens=output,
        priority=np.full(k, spec.priority, np.int64), ttft_slo_s=np.full(k, spec.ttft_slo_s),
        tbt_slo_s=np.full(k, spec.tbt_slo_s), client_weight=np.asarray([spec.weight], np.float64),
        client_names=(spec.name or name,), name=spec.name or name,
    )


def multi_client(rng: np.random.Generator, clients: Sequence[ClientSpec], *,
                 duration_s: float | None = None, n: int | None = None,
                 name: str = "multi-client") -> Workload:
    """Merge independent clients. Client k draws from the k-th child of `rng` (`Generator.spawn`),
    so adding a client never changes the requests of the others.

    With `n` (and no duration), each client draws n requests and the merged table keeps the
    first n by arrival time.
    """
    if not clients:
        raise InputError(name, "clients", "a mix needs at least one client")
    children = rng.spawn(len(clients))
    parts = [
        single_client(children[k], c, duration_s=duration_s, n=n, name=f"client{k}")
        for k, c in enumerate(clients)
    ]
    w = merge(parts, name=name)
    return w.head(n) if n is not None else w
