"""Quantities derived from the catalogue: parameter counts, weight and KV bytes, per-layer FLOPs and
bytes of an iteration, the tensor-parallel layout, and the KV capacity of an instance.

Pure arithmetic over `Model`/`GPU`; array arguments are handled element-wise with +,-,*,/ only.
Must not import cost models or the engine.
"""

from __future__ import annotations

import math

import numpy as np

from llmsched.sim.errors import InputError
from llmsched.sim.hardware.catalogue import GPU, Model, get_gpu, get_model, gpu_names

# vLLM's default fraction of GPU memory the engine may use (vllm/engine/arg_utils.py
# `gpu_memory_utilization: float = 0.90`; vLLM docs "Engine Arguments": default 0.9).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# vLLM defaults used to size the activation reserve when none is given: max_num_seqs = 256
# (vllm/config.py SchedulerConfig) and a 2048-token profiling batch (vLLM's default
# max_num_batched_tokens without chunked prefill for 2k-context models; our choice for all models).
DEFAULT_PROFILE_TOKENS = 2048
DEFAULT_PROFILE_SEQS = 256
LOGIT_BYTES = 4  # vLLM samples from fp32 logits


# ---- parameter counts ------------------------------------------------------------------------

def attention_params_per_layer(m: Model) -> int:
    """Q, K, V and O projections (no biases in the Llama family)."""
    q = m.heads * m.head_dim
    kv = m.kv_heads * m.head_dim
    return m.hidden * q + 2 * m.hidden * kv + q * m.hidden


def mlp_params_per_layer(m: Model) -> int:
    """Gated MLP: gate, up (hidden x ffn each) and down (ffn x hidden)."""
    return 3 * m.hidden * m.ffn


def linear_params_per_layer(m: Model) -> int:
    return attention_params_per_layer(m) + mlp_params_per_layer(m)


def params_per_layer(m: Model) -> int:
    """Linear weights plus the two RMSNorm weight vectors."""
    return linear_params_per_layer(m) + 2 * m.hidden


def embedding_params(m: Model) -> int:
    """Input embedding, output head (unless tied) and the final norm."""
    heads = 1 if m.tied_embeddings else 2
    return heads * m.vocab * m.hidden + m.hidden


def param_count(model: str | Model) -> int:
    m = get_model(model)
    return m.layers * params_per_layer(m) + embedding_params(m)


def weight_bytes(model: str | Model) -> int:
    m = get_model(model)
    return param_count(m) * m.bytes_per_param


# ---- tensor-parallel layout ------------------------------------------------------------------

def effective_tp(model: str | Model, gpu: str | GPU, tp: int = 1) -> int:
    """The tensor-parallel degree an instance runs at, validated.

    A multi-GPU node (l4x2, t4x2, t4x4) always runs TP over all its GPUs: tp=1 or tp=num_gpus
    both mean num_gpus. On a single-GPU type, tp > 1 means tp identical GPUs joined by its link.
    """
    m, g = get_model(model), get_gpu(gpu)
    tp = int(tp)
    if g.num_gpus > 1:
        if tp not in (1, g.num_gpus):
            raise InputError("instance", "tp", f"node {g.name} has {g.num_gpus} GPUs but tp={tp}",
                             f"use tp=1 or tp={g.num_gpus} on {g.name} (TP spans the node)")
        tp = g.num_gpus
    if tp < 1 or m.heads % tp != 0:
        raise InputError("instance", "tp", f"tp={tp} must be >= 1 and divide {m.name}'s {m.heads} heads",
                         f"use a divisor of {m.heads}, e.g. 1, 2, 4 or 8")
    return tp


def kv_heads_per_gpu(m: Model, tp: int) -> int:
    """KV heads each rank stores; with tp > kv_heads, vLLM replicates KV heads (ceil)."""
    return -(-m.kv_heads // tp)


def kv_bytes_per_token(model: str | Model) -> int:
    """K and V for every layer, whole model (all ranks together at TP=1)."""
    m = get_model(model)
    return 2 * m.layers * m.kv_heads * m.head_dim * m.bytes_per_param


def kv_bytes_per_token_per_gpu(m: Model, tp: int) -> int:
    return 2 * m.layers * kv_heads_per_gpu(m, tp) * m.head_dim * m.bytes_per_param


# ---- per-layer work of an iteration (per GPU, element-wise over arrays) --------------------------

def layer_linear_flops(m: Model, tokens, tp: int = 1):
    """2 FLOPs per weight per token for the QKV, O, gate/up and down GEMMs, split over tp ranks."""
    return tokens * (2.0 * linear_params_per_layer(m) / tp)


def layer_attention_flops(m: Model, pairs, tp: int = 1):
    """Score (QK^T) and value (PV) products: 2*head_dim FLOPs each per (query, key) pair per head."""
    return pairs * (4.0 * m.head_dim * (m.heads // tp))


def layer_weight_bytes(m: Model, tp: int = 1) -> float:
    """Linear weights read once per iteration per rank (norm weights, replicated, included)."""
    return (linear_params_per_layer(m) / tp + 2 * m.hidden) * m.bytes_per_param


def layer_kv_bytes_per_token(m: Model, tp: int = 1) -> int:
    """K and V of one token in one layer on one rank."""
    return 2 * kv_heads_per_gpu(m, tp) * m.head_dim * m.bytes_per_param


def layer_activation_elems_per_token(m: Model, tp: int = 1) -> float:
    """Activation elements read + written per token per layer per rank by the non-attention ops.

    Counted op by op (h = hidden, q = heads*head_dim/tp, k = kv_heads_per_gpu*head_dim, f = ffn/tp):
    input norm 2h; QKV GEMM h in + (q+2k) out; RoPE 2(q+k); O GEMM q in + h out;
    two residual adds 3h each; post-attention norm 2h; gate/up GEMM h in + 2f out;
    SiLU*mul 2f in + f out; down GEMM f in + h out.
    """
    h = m.hidden
    q = m.heads * m.head_dim / tp
    k = kv_heads_per_gpu(m, tp) * m.head_dim
    f = m.ffn / tp
    return 2 * h + (h + q + 2 * k) + 2 * (q + k) + (q + h) + 6 * h + 2 * h + (h + 2 * f) + 3 * f + (f + h)


def layer_linear_bytes(m: Model, tokens, tp: int = 1):
    """Weights once per iteration (if any token) + per-token activation traffic."""
    act = layer_activation_elems_per_token(m, tp) * m.bytes_per_param
    return np.where(np.asarray(tokens) > 0, layer_weight_bytes(m, tp), 0.0) + tokens * act


def layer_attention_bytes(m: Model, query_tokens, context_tokens, tp: int = 1):
    """KV of `context_tokens` read, KV of the new tokens written, Q read and output written."""
    kv = layer_kv_bytes_per_token(m, tp)
    qo = 2.0 * (m.heads // tp) * m.head_dim * m.bytes_per_param
    return context_tokens * float(kv) + query_tokens * (kv + qo)


def layer_work(model: str | Model, shape, tp: int = 1) -> dict[str, np.ndarray]:
    """Per-layer, per-rank FLOPs and bytes of each part of a batch shape (see BatchShape).

    Keys: linear_flops, linear_bytes (all tokens share one weight read), prefill_attn_flops,
    prefill_attn_bytes (chunks read their cached context: prefill_context_tokens),
    decode_attn_flops, decode_attn_bytes (each decode attends to its context plus itself).
    """
    m = get_model(model)
    pt = shape.prefill_tokens.astype(np.float64)
    dt = shape.decode_tokens.astype(np.float64)
    dctx = shape.decode_context_tokens.astype(np.float64)
    tokens = pt + dt
    return {
        "linear_flops": layer_linear_flops(m, tokens, tp),
        "linear_bytes": layer_linear_bytes(m, tokens, tp),
        "prefill_attn_flops": layer_attention_flops(m, shape.prefill_attention_pairs.astype(np.float64), tp),
        "prefill_attn_bytes": layer_attention_bytes(
            m, pt, shape.prefill_context_tokens.astype(np.float64) - pt, tp),
        "decode_attn_flops": layer_attention_flops(m, dctx + dt, tp),
        "decode_attn_bytes": layer_attention_bytes(m, dt, dctx, tp),
    }


# ---- KV capacity -------------------------------------------------------------------------------

def activation_reserve_bytes(model: str | Model, tp: int = 1, profile_tokens: int = DEFAULT_PROFILE_TOKENS,
                             profile_seqs: int = DEFAULT_PROFILE_SEQS) -> int:
    """Peak activation memory of a profiling forward pass, per rank (our estimate of what vLLM's
    profile run measures): residual + normed input (2h) and gate/up output + SiLU output (3f/tp)
    per token, in bytes_per_param, plus fp32 logits for `profile_seqs` sequences (vocab/tp each)."""
    m = get_model(model)
    per_token = (2 * m.hidden + 3 * m.ffn // tp) * m.bytes_per_param
    return profile_tokens * per_token + profile_seqs * (m.vocab // tp) * LOGIT_BYTES


def kv_capacity_tokens(model: str | Model, gpu: str | GPU, tp: int = 1,
                       gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
                       activation_reserve: int | None = None) -> int:
    """KV tokens an instance can hold once weights and activations are placed.

    Per rank: usable = gpu_memory_utilization * memory_bytes - weight_bytes / tp - activation reserve;
    tokens = floor(usable / KV bytes per token per rank). Weights are split evenly over the TP ranks
    (vLLM shards embeddings and the LM head by vocabulary; the replicated norms are < 0.01%).
    The CUDA context and NCCL buffers are not modelled. A model that does not fit -> InputError.
    """
    m, g = get_model(model), get_gpu(gpu)
    tp = effective_tp(m, g, tp)
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise InputError("instance", "gpu_memory_utilization", f"{gpu_memory_utilization} not in (0, 1]",
                         "use a fraction such as 0.9 (vLLM's default)")
    reserve = activation_reserve_bytes(m, tp) if activation_reserve is None else int(activation_reserve)
    usable = gpu_memory_utilization * g.memory_bytes - weight_bytes(m) / tp - reserve
    per_token = kv_bytes_per_token_per_gpu(m, tp)
    tokens = math.floor(usable / per_token) if usable > 0 else 0
    if tokens < 1:
        need = (weight_bytes(m) / tp + reserve) / gpu_memory_utilization / 2**30
        raise InputError(
            "instance", "gpu",
            f"{m.name} ({weight_bytes(m) / 2**30:.1f} GiB of weights) does not fit on {g.name} at tp={tp}: "
            f"each rank needs > {need:.1f} GiB, has {g.memory_bytes / 2**30:.0f} GiB",
            _fit_suggestion(m, g, tp, gpu_memory_utilization))
    return tokens


def _fits(m: Model, g: GPU, tp: int, util: float) -> bool:
    usable = util * g.memory_bytes - weight_bytes(m) / tp - activation_reserve_bytes(m, tp)
    return usable >= kv_bytes_per_token_per_gpu(m, tp)


def _fit_suggestion(m: Model, g: GPU, tp: int, util: float) -> str:
    """The smallest larger TP on this GPU that fits, and the single GPUs that fit at this TP."""
    tps = [t for t in (2, 4, 8, 16) if t > tp and m.heads % t == 0 and g.num_gpus == 1 and _fits(m, g, t, util)]
    bigger = [x.name for x in map(get_gpu, gpu_names()) if x.num_gpus == 1 and _fits(m, x, tp, util)]
    parts = []
    if tps:
        parts.append(f"use tp={tps[0]} on {g.name}")
    if bigger:
        parts.append(f"use a GPU with more memory at tp={tp}: {', '.join(bigger)}")
    return " or ".join(parts) or "use more GPUs (tensor parallelism) on a GPU with more memory"


# ---- vision encoder (multimodal models) ---------------------------------------------------------

def vision_layer_params(v) -> int:
    """One ViT layer: Q, K, V, O (h x h each, with biases), the GELU MLP (h x f and f x h, with
    biases) and two LayerNorms (weight and bias)."""
    h, f = v.hidden, v.ffn
    return 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h


def vision_param_count(model: str | Model) -> int:
    """Weights of a multimodal model's vision side: the ViT layers that run, its patch embedding
    (3 x patch^2 x h) and the projector; 0 for a text-only model. (Position embeddings, a few
    million, are not counted.)"""
    m = get_model(model)
    v = m.vision
    if v is None:
        return 0
    return v.layers * vision_layer_params(v) + 3 * v.patch_px**2 * v.hidden + v.projector_params


def image_tokens(model: str | Model, width_px: int, height_px: int) -> int:
    """LLM prompt tokens one image of this size becomes in `model` (tiles x tokens per tile)."""
    m = get_model(model)
    if m.vision is None:
        raise InputError("workload", "images", f"model {m.name!r} is text-only and takes no images",
                         "use a multimodal model (e.g. minicpm-v-2.6) or drop the images")
    return m.vision.tiles(width_px, height_px) * m.vision.tokens_per_tile
