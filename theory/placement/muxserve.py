"""MuxServe: multi-LLM placement on GPU meshes and adaptive KV-quota batching (ADBS).

Self-contained (own roofline cost model); independent of the Helix code and of the engine.
"""

# Placement (MuxServe `muxserve/muxsched/placement.py`, re-derived; notes/throughput_placement.md
# Sec 8.1): enumerate mesh groupings of every node (fixed split patterns, combined across nodes),
# place LLMs greedily in order of rate x size-scale onto the mesh with the largest gain in estimated
# served rate, keep the best grouping. Mesh estimate: colocated LLMs split the KV cache in
# proportion to rate x KV bytes per token and take turns on the GPUs (see `mesh_estimate`).
# Batching (MuxServe `muxserve/muxsched/scheduler.py`, ADBS): per-LLM KV-block quotas start in
# proportion to rate x blocks per token; prefills first (round robin), then decodes (round robin),
# each LLM within its quota; every `adapt_interval_s` LLMs using < 90% of their quota give up
# min(free, (0.95 - util) * quota) blocks and saturated LLMs with a backlog take them.
# Cost model here is our own roofline (A100-80GB: 2.039e12 B/s HBM, 312e12 FLOP/s fp16 dense at
# 50% MFU) -- an assumption, not MuxServe's profiled table; S_out = 337 and prompt 161 tokens are
# MuxServe's ShareGPT averages (placement.py).

from __future__ import annotations

import functools
import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np

from llmsched.theory.kv_quota import adapt_quotas, initial_quotas

# Device (A100-80GB SXM datasheet: 2039 GB/s, 312 TFLOP/s fp16 dense; Vidur device_skus.csv 312/80)
GPU_MEM_BYTES = 80e9
GPU_HBM_BPS = 2.039e12
GPU_FLOPS = 312e12
MFU = 0.5  # our assumption for prefill efficiency
MEM_UTIL = 0.9  # fraction of GPU memory usable for weights + KV (vLLM default gpu_memory_utilization)
S_OUT = 337  # MuxServe placement.py: average output length (ShareGPT)
S_IN = 161  # MuxServe placement.py: average prompt length
BLOCK_TOKENS = 16
# MuxServe placement.py: split patterns of one 8-GPU node into meshes
NODE_PATTERNS = ((8,), (4, 4), (4, 2, 2), (2, 2, 2, 2), (4, 2, 1, 1), (2, 2, 2, 1, 1),
                 (4, 1, 1, 1, 1), (2, 2, 1, 1, 1, 1), (2, 1, 1, 1, 1, 1, 1), (1,) * 8)
RATE_SCALE = {7: 1, 13: 2, 30: 4, 65: 8, 70: 8}  # placement.py rate_scale by model size (B params)


@dataclass(frozen=True)
class LLM:
    name: str
    params_b: float  # billions of parameters
    rate: float  # requests/s
    layers: int
    hidden: int
    kv_heads_ratio: float = 1.0  # n_kv_heads / n_heads (GQA < 1)

    @property
    def weight_bytes(self) -> float:
        return 2.0 * self.params_b * 1e9

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * 2 * self.layers * self.hidden * self.kv_heads_ratio  # K and V, fp16

    @property
    def scale(self) -> int:
        return RATE_SCALE.get(round(self.params_b), max(1, int(self.params_b // 8)))


def prefill_time_s(m: LLM, tokens: int, ngpu: int) -> float:
    """Roofline: max(compute 2*N*tokens / (F*MFU*ngpu), weights read once / (HBM*ngpu))."""
    return max(2 * m.params_b * 1e9 * tokens / (GPU_FLOPS * MFU * ngpu), m.weight_bytes / (GPU_HBM_BPS * ngpu))


def decode_time_s(m: LLM, batch: int, ngpu: int, ctx: int = S_IN + S_OUT // 2) -> float:
    """Memory-bound decode step: weights + the batch's KV read once per step."""
    return (m.weight_bytes + batch * ctx * m.kv_bytes_per_token) / (GPU_HBM_BPS * ngpu)


def min_mesh(m: LLM) -> int:
    for g in (1, 2, 4, 8):
        if m.weight_bytes <= 0.5 * g * GPU_MEM_BYTES * MEM_UTIL:  # leave half for KV
            return g
    raise ValueError(f"{m.name} does not fit on one 8-GPU node")


def mesh_estimate(ngpu: int, llms: list[LLM], iters: int = 30) -> dict[str, float]:
    """Served requests/s per LLM colocated on one mesh; memoised (`_mesh_estimate`), since the
    grouping search asks for the same (mesh size, LLM set) many times."""
    return dict(_mesh_estimate(int(ngpu), tuple(llms), int(iters)))


@functools.lru_cache(maxsize=1 << 16)
def _mesh_estimate(ngpu: int, llms: tuple[LLM, ...], iters: int) -> tuple[tuple[str, float], ...]:
    """Served requests/s per LLM colocated on one mesh (0 for all if weights do not fit).

    Round model (ours; conservative version of MuxServe's estimate): colocated LLMs take turns,
    one decode step each per round, plus the prefills of the requests that join per round, so
    round = sum_j t_dec_j(B_j) + sum_j (B_j / S_out) t_pre_j(S_in) and LLM i serves
    B_i / (S_out * round). B_i is the smallest batch meeting the rate, at most its KV share
    (split in proportion to rate x KV bytes per token); solved by fixed-point iteration."""
    if not llms:
        return ()
    mem = ngpu * GPU_MEM_BYTES * MEM_UTIL
    w = sum(m.weight_bytes for m in llms)
    if w >= mem:
        return tuple((m.name, 0.0) for m in llms)
    kv = mem - w
    share = np.array([m.rate * m.kv_bytes_per_token for m in llms], dtype=float)
    share = share / share.sum() if share.sum() > 0 else np.full(len(llms), 1 / len(llms))
    bmax = [max(1.0, float(int(sh * kv / ((S_IN + S_OUT) * m.kv_bytes_per_token)))) for m, sh in zip(llms, share)]
    B = list(bmax)
    rnd = 0.0
    for _ in range(iters):
        rnd = sum(decode_time_s(m, b, ngpu) + b / S_OUT * prefill_time_s(m, S_IN, ngpu) for m, b in zip(llms, B))
        B = [min(bm, max(1.0, float(np.ceil(m.rate * S_OUT * rnd)))) for m, bm in zip(llms, bmax)]
    rnd = sum(decode_time_s(m, b, ngpu) + b / S_OUT * prefill_time_s(m, S_IN, ngpu) for m, b in zip(llms, B))
    return tuple((m.name, min(m.rate, b / (S_OUT * rnd))) for m, b in zip(llms, B))


@dataclass
class MuxPlacement:
    meshes: list[tuple[int, int]]  # (node, mesh size)
    assignment: dict[str, int]  # llm name -> mesh index
    served: dict[str, float]  # llm -> estimated served requests/s
    total_served: float
    groupings_tried: int = 0

    def mesh_llms(self, j: int) -> list[str]:
        return [n for n, k in self.assignment.items() if k == j]


def _greedy(meshes: list[int], llms: list[LLM]) -> tuple[dict[str, int], dict[str, float]] | None:
    order = sorted(llms, key=lambda m: -m.rate * m.scale)
    on: list[list[LLM]] = [[] for _ in meshes]
    for m in order:
        best, best_gain = None, None
        for j, g in enumerate(meshes):
            if g < min_mesh(m):
                continue
            if sum(x.weight_bytes for x in on[j]) + m.weight_bytes >= g * GPU_MEM_BYTES * MEM_UTIL * 0.9:
                continue
            before = sum(mesh_estimate(g, on[j]).values())
            after = sum(mesh_estimate(g, [*on[j], m]).values())
            gain = after - before
            if best_gain is None or gain > best_gain + 1e-12 or (abs(gain - best_gain) <= 1e-12 and g < meshes[best]):
                best, best_gain = j, gain
        if best is None:
            return None
        on[best].append(m)
    assign = {m.name: j for j, ms in enumerate(on) for m in ms}
    served = {}
    for j, ms in enumerate(on):
        served.update(mesh_estimate(meshes[j], ms))
    return assign, served


def place_llms(llms: list[LLM], nodes: int, gpus_per_node: int = 8) -> MuxPlacement:
    """Best grouping x greedy placement by total estimated served rate."""
    if gpus_per_node != 8:
        raise ValueError("the split patterns assume 8-GPU nodes (MuxServe placement.py)")
    need = max(min_mesh(m) for m in llms)
    best: MuxPlacement | None = None
    tried = 0
    for combo in itertools.combinations_with_replacement(NODE_PATTERNS, nodes):
        meshes = [(n, g) for n, pat in enumerate(combo) for g in pat]
        sizes = [g for _, g in meshes]
        if max(sizes) < need or len(sizes) > len(llms):
            continue
        tried += 1
        res = _greedy(sizes, llms)
        if res is None:
            continue
        assign, served = res
        total = sum(served.values())
        if best is None or total > best.total_served + 1e-9:
            best = MuxPlacement(meshes, assign, served, total)
    if best is None:
        raise ValueError("no feasible placement: the LLMs do not fit the cluster")
    best.groupings_tried = tried
    return best


def naive_placement(llms: list[LLM], nodes: int) -> float:
    """Baseline (spatial partitioning): every LLM alone on its minimum mesh, first fit; served rate."""
    free = [8] * nodes
    total = 0.0
    for m in sorted(llms, key=lambda m: -m.weight_bytes):
        g = min_mesh(m)
        for n in range(nodes):
            if free[n] >= g:
                free[n] -= g
                total += mesh_estimate(g, [m])[m.name]
                break
    return total


# ------------------------------------------------------------------------------------------------
# ADBS: adaptive KV-quota batching on one mesh


class AdaptiveKVQuota:
    """MuxServe's adaptive batch scheduling for several LLMs sharing one mesh's KV blocks."""

    def __init__(self, llms: list[LLM], total_blocks: int, adapt_interval_s: float = 8.0,
                 adaptive: bool = True, max_batch: int = 256):
        self.llms = {m.name: m for m in llms}
        self.total_blocks = total_blocks
        self.adapt_interval_s = adapt_interval_s  # MuxServe scheduler.py adapt_interval
        self.adaptive = adaptive
        self.max_batch = max_batch
        self.quota = initial_quotas({m.name: m.rate * m.kv_bytes_per_token for m in llms}, total_blocks)
        self._rr = deque(self.llms)
        self.last_adapt = 0.0

    def schedule(self, waiting: dict[str, int], running: dict[str, int], used_blocks: dict[str, int],
                 blocks_per_req: dict[str, int], free_blocks: int | None = None) -> tuple[str, str, int] | None:
        """Next job: ("prefill", llm, n_requests) or ("decode", llm, batch), round robin, prefill first.
        free_blocks (optional): the mesh's unreserved blocks, a second limit on admissions (needed
        when quotas overlap, as in `simulate_mesh(..., sharing="temporal")`)."""
        for _ in range(len(self._rr)):
            n = self._rr[0]
            self._rr.rotate(-1)
            room = (self.quota[n] - used_blocks.get(n, 0)) // max(blocks_per_req[n], 1)
            if free_blocks is not None:
                room = min(room, free_blocks // max(blocks_per_req[n], 1))
            k = min(waiting.get(n, 0), room, self.max_batch - running.get(n, 0))
            if k > 0:
                return "prefill", n, int(k)
        for _ in range(len(self._rr)):
            n = self._rr[0]
            self._rr.rotate(-1)
            if running.get(n, 0) > 0:
                return "decode", n, int(running[n])
        return None

    def adapt(self, now: float, used_blocks: dict[str, int], waiting: dict[str, int],
              blocks_per_req: dict[str, int]) -> bool:
        """Move quota from under-used LLMs to saturated ones with a backlog (every interval)."""
        if not self.adaptive or now - self.last_adapt < self.adapt_interval_s:
            return False
        self.last_adapt = now
        backlog = {n: waiting.get(n, 0) * blocks_per_req[n] for n in self.quota}
        new = adapt_quotas(self.quota, used_blocks, backlog)  # shared with policies/batching/muxserve_adbs.py
        moved, self.quota = new != self.quota, new
        return moved


SHARING = ("adbs", "temporal")


def simulate_mesh(llms: list[LLM], ngpu: int, duration_s: float, seed: int = 0, adaptive: bool = True,
                  rate_schedule: dict[str, list[tuple[float, float]]] | None = None,
                  sharing: str = "adbs", warmup_s: float = 0.0) -> dict[str, float]:
    """Poisson arrivals per LLM (optionally piecewise rates [(t_start, rate)]) through ADBS on one
    mesh; returns completed requests/s per LLM. Requests: S_IN prompt, S_OUT output tokens.

    sharing: "adbs" = MuxServe's per-LLM KV quotas (adaptive unless `adaptive=False`);
    "temporal" = the LLMs take turns with the same prefill-first round robin but share the whole
    KV cache first come, first served (no quotas), as MuxServe's temporal-multiplexing baseline
    colocates the same LLMs without its quota scheduling. Neither models SM (MPS) partitioning:
    one job runs on the mesh at a time. warmup_s: count completions from then on only (the
    rate is over [warmup_s, duration_s])."""
    if not 0.0 <= warmup_s < duration_s:
        raise ValueError("warmup_s must be in [0, duration_s)")
    if sharing not in SHARING:
        raise ValueError(f"sharing must be one of {SHARING}, got {sharing!r}")
    rng = np.random.default_rng(seed)
    mem = ngpu * GPU_MEM_BYTES * MEM_UTIL - sum(m.weight_bytes for m in llms)
    bpr = {m.name: int(np.ceil((S_IN + S_OUT) / BLOCK_TOKENS)) for m in llms}
    blocks = {m.name: m.kv_bytes_per_token * BLOCK_TOKENS for m in llms}
    total_blocks = int(mem / np.mean(list(blocks.values())))
    sched = AdaptiveKVQuota(llms, total_blocks, adaptive=adaptive and sharing == "adbs")
    if sharing == "temporal":
        sched.quota = dict.fromkeys(sched.quota, total_blocks)
    arrivals: dict[str, list[float]] = {}
    for m in llms:
        sch = (rate_schedule or {}).get(m.name, [(0.0, m.rate)])
        ts: list[float] = []
        for j, (t0, r) in enumerate(sch):
            t1 = sch[j + 1][0] if j + 1 < len(sch) else duration_s
            if r > 0:
                k = rng.poisson(r * (t1 - t0))
                ts.extend(np.sort(rng.uniform(t0, t1, k)).tolist())
        arrivals[m.name] = sorted(ts)
    ptr = dict.fromkeys(arrivals, 0)
    waiting = dict.fromkeys(arrivals, 0)
    running: dict[str, list[int]] = {n: [] for n in arrivals}  # remaining tokens per running request
    used = dict.fromkeys(arrivals, 0)
    done = dict.fromkeys(arrivals, 0)
    now = 0.0
    while now < duration_s:
        for n in arrivals:
            while ptr[n] < len(arrivals[n]) and arrivals[n][ptr[n]] <= now:
                ptr[n] += 1
                waiting[n] += 1
        sched.adapt(now, used, waiting, bpr)
        job = sched.schedule(waiting, {n: len(r) for n, r in running.items()}, used, bpr,
                             free_blocks=total_blocks - sum(used.values()) if sharing == "temporal" else None)
        if job is None:
            nxt = [arrivals[n][ptr[n]] for n in arrivals if ptr[n] < len(arrivals[n])]
            if not nxt:
                break
            now = max(now, min(nxt))
            continue
        kind, n, k = job
        m = next(x for x in llms if x.name == n)
        if kind == "prefill":
            now += prefill_time_s(m, S_IN * k, ngpu)
            waiting[n] -= k
            used[n] += k * bpr[n]
            running[n].extend([S_OUT] * k)
        else:
            now += decode_time_s(m, k, ngpu)
            rem = [r - 1 for r in running[n]]
            fin = sum(1 for r in rem if r <= 0)
            running[n] = [r for r in rem if r > 0]
            if now >= warmup_s:
                done[n] += fin
            used[n] -= fin * bpr[n]
    return {n: done[n] / (duration_s - warmup_s) for n in done}
