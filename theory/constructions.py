"""Stability constructions with their predictions: the workloads the engine checks run on.

Owns the Li–Dai–Peng-style constructions (Poisson fixed lengths, the request-cap "vertex C" stream,
the two-server Rybko–Stolyar network built from parent/pinned multi-task requests, the M/D/1 prefill
stream) and the hand-derived numbers they are checked against (FasterTransformer-style overload
throughput, virtual-station load). Builds `Workload` data only; never runs the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched.sim.workload.core import Workload
from llmsched.theory.batch_time import BatchTime, eval_batch_time
from llmsched.theory.stability import request_capacity

__all__ = [
    "VERTEX_C",
    "RybkoStolyar",
    "deterministic_stream",
    "ft_overload_rate",
    "md1_stream",
    "poisson_fixed",
    "rybko_stolyar_workload",
]


def poisson_fixed(rate_rps: float, duration_s: float, prompt_tokens: int, output_tokens: int,
                  seed: int = 0, name: str = "poisson-fixed") -> Workload:
    """Poisson arrivals on [0, duration) with every request of the same (prompt, output) lengths."""
    rng = np.random.default_rng(seed)
    n_draw = int(rate_rps * duration_s * 1.2) + 20
    a = np.cumsum(rng.exponential(1.0 / rate_rps, n_draw))
    while a[-1] < duration_s:  # practically never: extend the draw
        a = np.concatenate([a, a[-1] + np.cumsum(rng.exponential(1.0 / rate_rps, n_draw))])
    a = a[a < duration_s]
    n = len(a)
    return Workload(arrival_s=a, client=np.zeros(n, np.int64), prompt_tokens=np.full(n, prompt_tokens),
                    output_tokens=np.full(n, output_tokens), name=name)


def deterministic_stream(gap_s: float, duration_s: float, prompt_tokens: int, output_tokens: int,
                         name: str = "deterministic") -> Workload:
    """One request every `gap_s` seconds from t = 0, all of the same lengths."""
    a = np.arange(0.0, duration_s, gap_s)
    n = len(a)
    return Workload(arrival_s=a, client=np.zeros(n, np.int64), prompt_tokens=np.full(n, prompt_tokens),
                    output_tokens=np.full(n, output_tokens), name=name)


def md1_stream(utilisation: float, service_s: float, n: int, prompt_tokens: int, seed: int = 0) -> Workload:
    """Poisson arrivals at rate ρ/D of single-token requests (the prefill round emits the only token):
    on an instance that runs one request per round of D seconds this is DistServe's M/D/1 queue."""
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.exponential(service_s / utilisation, n))
    return Workload(arrival_s=a, client=np.zeros(n, np.int64), prompt_tokens=np.full(n, prompt_tokens),
                    output_tokens=np.ones(n, np.int64), name=f"md1-rho{utilisation:g}")


def ft_overload_rate(t: BatchTime, b_max: int, prompt_tokens: int, output_tokens: int) -> float:
    """Requests/s a FasterTransformer-style server completes under overload (derivation ours).

    Decode-first without mixing: whole prompts are admitted only when no request decodes. Under
    overload every cycle is one prefill round of k = ⌊b_max/p⌋ prompts (t(k·p), which also emits
    their first tokens) followed by o − 1 decode-only rounds of k tokens (t(k) each), so
    μ_FT = k / (t(k·p) + (o − 1)·t(k)). With Li–Dai–Peng's staircase, b_max = 512 and (100, 101):
    k = 5, cycle = 153.16 ms + 100·46.75 ms = 4.82816 s, μ_FT = 1.0356 requests/s.
    """
    k = int(b_max) // int(prompt_tokens)
    if k < 1:
        return 0.0  # a whole prompt never fits: FasterTransformer never runs a round
    tp, td = (float(x) for x in eval_batch_time(t, np.array([k * prompt_tokens, k], dtype=np.float64)))
    return k / (tp + (output_tokens - 1) * td)


@dataclass(frozen=True)
class VertexC:
    """The request-cap construction of the third-party Li–Dai–Peng reproduction (§6.2 there).

    Every request is (290 prefill, 990 decode) tokens — output 991 in our convention — arriving
    every 467.5 ms; k_max = 100; staircase with b0 = 128, so t(128) = 46.75 ms and a round of 29
    prefill + 99 decode tokens every 46.75 ms serves exactly one request per 10 rounds: the arrival
    point is the capped region's vertex ((b0 − k_max + 1)/t(b0), (k_max − 1)/t(b0)).
    """

    prompt_tokens: int = 290
    output_tokens: int = 991
    gap_s: float = 0.4675
    k_max: int = 100
    small_budget: int = 128
    large_budget: int = 1024

    def workload(self, load: float, duration_s: float) -> Workload:
        """Arrivals at `load` × the vertex rate (load < 1: strictly inside the region)."""
        return deterministic_stream(self.gap_s / load, duration_s, self.prompt_tokens, self.output_tokens,
                                    name=f"vertex-c-{load:g}")


VERTEX_C = VertexC()


@dataclass(frozen=True)
class RybkoStolyar:
    """Li–Dai–Peng §5.4 (as reproduced by a third party): two servers, token budget 768, t ≡ 1 ms.

    Type A: a short task (32 prompt, 32 decode) on server 0, then a long task (512, 32) on server 1;
    type B the reverse. Clients: 0 = A short, 1 = A long, 2 = B short, 3 = B long; outputs are
    decode + 1 in our convention. Each type arrives at λ = ρ·768/608 per ms, so each server's token
    load is ρ (608 = 32+32+512+32 tokens per type per server). The long tasks are the classes that
    *exit*; their loads on the two servers add to the virtual-station load 2λ·544/768.
    """

    budget: int = 768
    round_s: float = 1e-3
    short: tuple[int, int] = (32, 32)
    long: tuple[int, int] = (512, 32)

    @property
    def tokens_per_type(self) -> int:
        return sum(self.short) + sum(self.long)

    def rate_per_type(self, load: float) -> float:
        """λ (per second) of each type for a per-server load ρ."""
        return load * self.budget / self.tokens_per_type / self.round_s

    def virtual_station_load(self, load: float) -> float:
        """λ·(work of both exiting classes) / capacity: > 1 means exit-priority cannot be stable."""
        return 2 * self.rate_per_type(load) * sum(self.long) * self.round_s / self.budget

    def exit_first(self) -> tuple[tuple[int, int], ...]:
        """Class ranks (client -> rank, lower first): strict priority to the exiting long tasks."""
        return ((1, 0), (3, 0), (0, 1), (2, 1))

    def enter_first(self) -> tuple[tuple[int, int], ...]:
        return ((0, 0), (2, 0), (1, 1), (3, 1))


def rybko_stolyar_workload(net: RybkoStolyar, load: float, duration_s: float, seed: int = 0) -> Workload:
    """Both types' Poisson streams; each arrival is a short task plus its long child task (released
    when the short one finishes, `parent`), both pinned to their servers (`pin_instance`)."""
    rng = np.random.default_rng(seed)
    lam = net.rate_per_type(load)
    rows = []
    for typ, (first, second) in enumerate(((0, 1), (1, 0))):
        a = np.cumsum(rng.exponential(1.0 / lam, int(lam * duration_s * 1.3) + 20))
        rows += [(float(t), typ, first, second) for t in a[a < duration_s]]
    rows.sort()
    n = 2 * len(rows)
    arr = np.empty(n)
    client = np.empty(n, np.int64)
    prompt = np.empty(n, np.int64)
    output = np.empty(n, np.int64)
    parent = np.full(n, -1, np.int64)
    pin = np.empty(n, np.int64)
    for i, (t, typ, first, second) in enumerate(rows):
        j = 2 * i
        arr[j] = arr[j + 1] = t  # the child's arrival is replaced by its release time
        client[j], client[j + 1] = 2 * typ, 2 * typ + 1
        prompt[j], output[j] = net.short[0], net.short[1] + 1
        prompt[j + 1], output[j + 1] = net.long[0], net.long[1] + 1
        parent[j + 1] = j
        pin[j], pin[j + 1] = first, second
    return Workload(arrival_s=arr, client=client, prompt_tokens=prompt, output_tokens=output, parent=parent,
                    pin_instance=pin, client_weight=np.ones(4), client_names=("A-short", "A-long", "B-short", "B-long"),
                    name=f"rybko-stolyar-{load:g}")


def ldp_capacity_rps(t: BatchTime, b_max: int, prompt_tokens: int, output_tokens: int) -> float:
    """λ* = b_max / (t(b_max)·(p + o − 1)) for fixed lengths (Li–Dai–Peng; our token convention)."""
    return request_capacity(t, b_max, prompt_tokens, output_tokens - 1)
