"""Per-node compute capacity T_i(k) from the Helix per-layer profiles, and the two flow bounds.

Reads data/helix/tables once (cached); no graph or solver code here.
"""

# Method ("typical batch", Helix `simulator/model_manager/llama2_70b/helper.py` and
# `<gpu>/llama2_70b_<gpu>.py::get_typical_token_throughput`, re-implemented from the formulas):
# a node holding k of L layers spends a fraction r = k*t_g / ((L-k)*t_avg + k*t_g) of a request's
# round trip computing, so a KV high-water mark of 30% of its cache gives a typical batch of
# prompt and decode tokens; the throughput is those tokens over k times the interpolated per-layer
# prompt + decode time. Per-type layer times 1/perf_g are refined by 10 fixed-point iterations
# (Helix `llama2_70b.py` L24-L80). Constants: AVG_INPUT_LEN 750, AVG_OUTPUT_LEN 240, KV_CACHE_HWM 0.3,
# VLLM_BLOCK_SIZE 16 (`simulator/event_simulator/utils.py` L37-L44). The node's NIC caps it at
# min(NIC in, NIC out) / activation bytes (Helix `ilp_layout.py` L234-L241).

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from llmsched.sim.errors import InputError
from llmsched.theory.placement.io import DATA_DIR
from llmsched.theory.placement.spec import ModelSpec, PlacementCluster

AVG_INPUT_LEN = 750  # Helix utils.py L37
AVG_OUTPUT_LEN = 240  # L38
KV_CACHE_HWM = 0.3  # L44
VLLM_BLOCK_SIZE = 16  # L42
FIXED_POINT_ITERATIONS = 10  # llama2_70b.py L38 `for iteration in range(10)`
PIPELINED_ITERATIONS = 30  # ours: enough for the wait factors to settle (checked in tests)

# Initial guesses (Helix llama2_70b.py L26/L31/L35, llama1_30b.py L26/L31/L35).
TYPICAL_LAYERS = {
    "LLaMA-2-70B": ({"A100": 8, "V100": 3, "L4": 4, "L4x2": 9, "T4": 3, "T4x2": 6, "T4x4": 12},
                    {"A100": 12, "V100": 4, "L4": 7, "L4x2": 14, "T4": 4, "T4x2": 9, "T4x4": 18}),
    "LLaMA-1-30B": ({"A100": 12, "V100": 4, "L4": 8, "L4x2": 14, "T4": 4, "T4x2": 10, "T4x4": 20},
                    {"A100": 18, "V100": 7, "L4": 11, "L4x2": 22, "T4": 7, "T4x2": 15, "T4x4": 30}),
}
NORMALIZED_PERF = {
    "LLaMA-2-70B": {"A100": 80, "V100": 40, "L4": 20, "L4x2": 30, "T4": 12.5, "T4x2": 20, "T4x4": 30},
    "LLaMA-1-30B": {"A100": 48, "V100": 25, "L4": 9, "L4x2": 15, "T4": 8, "T4x2": 15, "T4x4": 23},
}
# Helix switches to the larger typical-layer guess when the cluster holds < 1.2 model copies
# under the smaller one (llama2_70b.py L27-L30).
TYPICAL_SWITCH_COPIES = 1.2


@dataclass(frozen=True)
class GpuProfile:
    """Per-layer profile of one GPU type for one model (times in seconds)."""

    gpu_type: str
    max_layers: int
    prompt_tokens: tuple[int, ...]
    prompt_time_s: tuple[float, ...]
    decode_tokens: tuple[int, ...]
    decode_time_s: tuple[float, ...]
    vllm_blocks: tuple[int, ...]  # index k-1 -> vLLM KV blocks when k layers are loaded
    prompt_max_tokens: tuple[int, ...]
    decode_max_tokens: tuple[int, ...]

    def kv_entries(self, k: int) -> int:
        """KV capacity in token x layer entries (Helix: 16 x blocks x layers)."""
        return VLLM_BLOCK_SIZE * self.vllm_blocks[k - 1] * k

    def prompt_time(self, tokens: float) -> float:
        return _interp(self.prompt_tokens, self.prompt_time_s, tokens)

    def decode_time(self, tokens: float) -> float:
        return _interp(self.decode_tokens, self.decode_time_s, tokens)


def _interp(xs: tuple[int, ...], ys: tuple[float, ...], x: float) -> float:
    """Piecewise-linear interpolation; beyond the last point extrapolate from the last segment."""
    if x <= xs[-1]:
        return float(np.interp(x, xs, ys))
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + slope * (x - xs[-1])


@lru_cache(maxsize=8)
def load_profiles(profile_key: str, tables_dir: str | None = None) -> dict[str, GpuProfile]:
    """GPU type -> profile, read from `data/helix/tables/` (copied from the Helix artifact)."""
    tdir = Path(tables_dir) if tables_dir else DATA_DIR / "tables"
    curves: dict[tuple[str, str], list[tuple[int, float]]] = {}
    with open(tdir / "bs2time_all.csv") as fh:
        for row in csv.DictReader(fh):
            if row["model"] != profile_key:
                continue
            key = (row["gpu_config"], row["phase"])
            curves.setdefault(key, []).append((int(row["batch_tokens"]), float(row["layer_time_ms"]) * 1e-3))
    layer_rows: dict[str, list[dict]] = {}
    names: dict[str, str] = {}
    with open(tdir / "per_gpu_layer_tables.csv") as fh:
        for row in csv.DictReader(fh):
            if row["model"] != profile_key:
                continue
            layer_rows.setdefault(row["gpu_config"], []).append(row)
            names[row["gpu_config"]] = row["machine_name"]
    if not layer_rows:
        raise InputError(str(tdir), "model", f"no profiles for {profile_key!r}")
    out = {}
    for cfg, rows in layer_rows.items():
        rows.sort(key=lambda r: int(r["num_layers_on_node"]))
        # a repeated batch size keeps its last value, as Helix's dict-based loader does
        p = sorted(dict(curves[(cfg, "prompt")]).items())
        d = sorted(dict(curves[(cfg, "decode")]).items())
        out[names[cfg]] = GpuProfile(
            names[cfg], len(rows),
            tuple(x for x, _ in p), tuple(y for _, y in p),
            tuple(x for x, _ in d), tuple(y for _, y in d),
            tuple(int(r["vllm_num_blocks"]) for r in rows),
            tuple(int(r["prompt_max_tokens"]) for r in rows),
            tuple(int(r["decode_max_tokens"]) for r in rows),
        )
    return out


@dataclass(frozen=True)
class TypicalBatch:
    """The batch behind T_i(k): per iteration, `prompt_tokens` prompt and `decode_tokens` decode
    tokens, of which one iteration in `iterations_per_prompt` carries a whole prompt when the
    typical prompt share is below one request (Helix's rescaling case; 1.0 otherwise)."""

    prompt_tokens: int
    decode_tokens: int
    iterations_per_prompt: float
    tokens_per_s: float


def typical_batch(prof: GpuProfile, k: int, L: int, type_counts: dict[str, int],
                  typical_layers: dict[str, int], perf: dict[str, float],
                  wait: dict[str, float] | None = None) -> TypicalBatch:
    """The typical batch of a node of `prof`'s type holding k layers.

    wait: per-type sojourn / service ratio of one pass through a node (None = 1 for every type,
    Helix's round trip of pure compute; see `iteration_wait_factor` for the pipelined model)."""
    w = wait or dict.fromkeys(type_counts, 1.0)
    layer_time = {g: 1.0 / perf[g] for g in type_counts}
    num = sum(type_counts[g] * typical_layers[g] * layer_time[g] * w[g] for g in type_counts)
    den = sum(type_counts[g] * typical_layers[g] for g in type_counts)
    batch_time = k * layer_time[prof.gpu_type]
    round_trip = (L - k) * (num / den) + batch_time * w[prof.gpu_type]
    ratio = batch_time / round_trip
    seq = AVG_INPUT_LEN + AVG_OUTPUT_LEN
    avail = int(KV_CACHE_HWM * prof.kv_entries(k) / k)
    prompt_req = avail / seq * ratio / AVG_OUTPUT_LEN
    prompt_tok = round(prompt_req * AVG_INPUT_LEN)
    decode_tok = round(avail / seq * ratio)
    if prompt_req > 1:  # linear region: one typical request per batch
        prompt_req, prompt_tok, decode_tok = 1, AVG_INPUT_LEN, AVG_OUTPUT_LEN
    if prompt_req >= 1:
        tokens = prompt_tok + decode_tok
        t = k * (prof.prompt_time(prompt_tok) + prof.decode_time(decode_tok))
        return TypicalBatch(prompt_tok, decode_tok, 1.0, tokens / t)
    # rescale the batch to one whole prompt
    r = 1.0 / prompt_req
    tokens = r * (prompt_tok + decode_tok)
    t = k * (prof.prompt_time(int(prompt_tok * r)) + prof.decode_time(decode_tok) * r)
    return TypicalBatch(prompt_tok, decode_tok, r, tokens / t)


def iteration_wait_factor(prof: GpuProfile, batch: TypicalBatch) -> float:
    """Sojourn of one pass through a busy node over its mean iteration time (ours, not Helix's).

    An item reaching a node that is always busy waits for the residual of the running iteration,
    E[t^2] / (2 E[t]) by the inspection paradox, then rides one iteration, E[t] on average:
    W = 1 + E[t^2] / (2 E[t]^2). Iterations of the typical batch carry `decode_tokens` decodes, and
    one in `iterations_per_prompt` also a whole prompt, so prompt iterations are long and rare and
    W exceeds 1.5 (the value for identical iterations). Layer counts cancel in the ratio."""
    t_dec = prof.decode_time(batch.decode_tokens)
    prompt = round(batch.prompt_tokens * batch.iterations_per_prompt)
    t_pro = prof.prompt_time(prompt) + t_dec
    q = 1.0 / batch.iterations_per_prompt
    mean = (1 - q) * t_dec + q * t_pro
    second = (1 - q) * t_dec**2 + q * t_pro**2
    return 1.0 + second / (2.0 * mean**2)


CAPACITY_MODELS = ("helix", "pipelined", "realisable")
# "realisable" (ours) keeps Helix's T_i(k) per node and adds, per placement, the bandwidth-delay x KV
# cap of `realisable.py`; the placement-free T_i(k) below are Helix's for it.


def _typical_setup(model: ModelSpec, type_counts: dict[str, int], capacity_model: str = "helix"):
    """(profiles, typical layers, per-type perf, per-type wait) after the fixed point, for this mix.

    "helix": Helix's fixed point on perf with a round trip of pure compute (wait 1).
    "pipelined" (ours): the same fixed point, with each type's wait factor recomputed from its
    typical batch at every iteration, so the round trip includes the wait at each busy node."""
    if capacity_model not in CAPACITY_MODELS:
        raise InputError("capacity model", capacity_model, "unknown", f"use one of {CAPACITY_MODELS}")
    if capacity_model == "realisable":
        capacity_model = "helix"
    profiles = load_profiles(model.profile_key)
    for g in type_counts:
        if g not in profiles:
            raise InputError("cluster", "type", f"no {model.name} profile for GPU type {g!r}",
                             f"use one of {sorted(profiles)}")
    small, large = TYPICAL_LAYERS[model.profile_key]
    typical = dict(small)
    if sum(type_counts[g] * small[g] for g in type_counts) < model.num_layers * TYPICAL_SWITCH_COPIES:
        typical = dict(large)
    perf = {g: float(NORMALIZED_PERF[model.profile_key][g]) for g in type_counts}
    wait = dict.fromkeys(type_counts, 1.0)
    iterations = FIXED_POINT_ITERATIONS if capacity_model == "helix" else PIPELINED_ITERATIONS
    for _ in range(iterations):
        batches = {g: typical_batch(profiles[g], typical[g], model.num_layers, type_counts, typical, perf, wait)
                   for g in type_counts}
        perf = {g: batches[g].tokens_per_s * typical[g] for g in type_counts}
        if capacity_model == "pipelined":
            wait = {g: iteration_wait_factor(profiles[g], batches[g]) for g in type_counts}
    return profiles, typical, perf, wait


def typical_batch_table(model: ModelSpec, type_counts: dict[str, int],
                        capacity_model: str = "helix") -> dict[str, list[TypicalBatch]]:
    """GPU type -> [batch behind T(1), ..., T(K)] (index k-1), for this cluster's type mix."""
    profiles, typical, perf, wait = _typical_setup(model, type_counts, capacity_model)
    return {g: [typical_batch(profiles[g], k, model.num_layers, type_counts, typical, perf, wait)
                for k in range(1, profiles[g].max_layers + 1)] for g in type_counts}


def typical_capacity_table(model: ModelSpec, type_counts: dict[str, int],
                           capacity_model: str = "helix") -> dict[str, list[float]]:
    """GPU type -> [T(1), ..., T(K)] compute-only tokens/s (index k-1), for this cluster's type mix."""
    return {g: [b.tokens_per_s for b in batches]
            for g, batches in typical_batch_table(model, type_counts, capacity_model).items()}


def node_capacities(cluster: PlacementCluster, model: ModelSpec,
                    capacity_model: str = "helix") -> list[list[float]]:
    """T_i(k) for every node i: [T_i(1), ..., T_i(K_i)], compute capped by the NIC."""
    table = typical_capacity_table(model, cluster.type_counts(), capacity_model)
    out = []
    for nd in cluster.nodes:
        nic = min(nd.nic_in_Bps, nd.nic_out_Bps) / model.activation_bytes
        out.append([min(t, nic) for t in table[nd.gpu_type]])
    return out


def infinite_network_bound(caps: list[list[float]], num_layers: int) -> float:
    """UB = sum_i max_k k*T_i(k) / L: the flow with an infinitely fast network (Helix
    `ilp_layout.py::get_flow_upper_bound`). No placement can exceed it: each unit of flow needs L
    layer-passes and node i supplies at most max_k k*T_i(k) layer-passes per second."""
    return sum(max(k * t for k, t in enumerate(c, start=1)) for c in caps) / num_layers


def coverage_bound(caps: list[list[float]], num_layers: int, iters: int = 100) -> float:
    """A tighter network-free bound (ours): F* <= sup{F : F <= U(F)} with
    U(F) = sum_i max_k k * min(T_i(k), F) / L.

    Proof: in any feasible flow of value F every unit passes each of the L layers once, so
    sum_i f_i k_i >= L F, and f_i <= min(T_i(k_i), F) (a node cannot carry more than the whole
    flow). Hence L F <= sum_i k_i min(T_i(k_i), F) <= L U(F). U(F)/F is non-increasing, so the set
    {F <= U(F)} is an interval [0, F_bar]; found by bisection. U(F) <= the infinite-network bound."""
    def U(F: float) -> float:
        return sum(max(k * min(t, F) for k, t in enumerate(c, start=1)) for c in caps) / num_layers

    lo, hi = 0.0, infinite_network_bound(caps, num_layers)
    if hi <= U(hi) + 1e-12:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if mid <= U(mid) * (1 + 1e-12) + 1e-9:  # float noise where U(F) == F exactly
            lo = mid
        else:
            hi = mid
    return hi
