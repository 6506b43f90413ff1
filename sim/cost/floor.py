"""The memory-bandwidth floor of an iteration: no cost model may price a batch below it.

Every iteration streams each rank's share of the transformer-layer weights and the cached K/V of
every decoding sequence through HBM at least once, so it takes at least

    floor = layers * (layer weight bytes / tp + decode_context_tokens * layer KV bytes per token / tp)
            / (catalogue HBM bandwidth per GPU)

(weights and KV split evenly over the tp ranks, which read in parallel; the LM head, embeddings,
activations and prefill KV reads are left out, so the bound is conservative). Byte counts come from
`llmsched.sim.hardware.derived`; the bandwidth is the catalogue's peak (docs/hardware.md).
"""

from __future__ import annotations

import numpy as np

from llmsched.sim.cost.base import BatchShape
from llmsched.sim.hardware import derived as hw
from llmsched.sim.hardware import effective_tp, get_gpu, get_model


def memory_floor_s(model: str, gpu: str, tp: int, shape: BatchShape) -> np.ndarray:
    """Lower bound (seconds) on each iteration of `shape` for `model` on `gpu` at tensor-parallel `tp`."""
    m, g = get_model(model), get_gpu(gpu)
    tp = effective_tp(m, g, tp)
    busy = shape.total_tokens > 0
    weights = hw.layer_weight_bytes(m, tp) * m.layers
    kv = shape.decode_context_tokens.astype(np.float64) * float(hw.layer_kv_bytes_per_token(m, tp) * m.layers)
    return np.where(busy, (weights + kv) / g.hbm_bandwidth_Bps, 0.0)
