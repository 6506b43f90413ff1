"""The encode stage of a multimodal model: seconds to run its vision encoder over a batch of image
tiles, and the bytes of the embeddings it hands to prefill.

Owns the `EncodeCost` contract and its two implementations: `EncodeRoofline` (the named term
"encode": a roofline of the ViT layers and the projector, with the GPU's fitted efficiency
factors, plus an optional measured host term per tile for image preprocessing) and
`LinearEncodeCost` (a line in the tile count, for tests and what-if studies), and
`host_s_per_tile_from_stage`, which derives that host term from a measured stage time.
Element-wise over tile counts with +, -, *, /, max and np.where only (bit-identical for one or
many batches). The vision geometry lives in the catalogue (`llmsched.sim.hardware.VisionEncoder`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from llmsched.sim.cost.roofline import RooflineParams
from llmsched.sim.hardware import GPU, Model, VisionEncoder, get_gpu, get_model


@runtime_checkable
class EncodeCost(Protocol):
    """Seconds of one encode batch, and what the stage produces.

    tokens_per_tile: LLM prompt tokens one tile becomes (image_tokens / tokens_per_tile = tiles)
    embedding_bytes_per_token: bytes of one image token's embedding sent from encode to prefill
    """

    @property
    def name(self) -> str: ...
    @property
    def tokens_per_tile(self) -> int: ...
    @property
    def embedding_bytes_per_token(self) -> float: ...

    def encode_times(self, tiles: np.ndarray) -> np.ndarray:
        """Seconds of an encoder forward over `tiles` tiles (element-wise; 0 for 0 tiles)."""
        ...


def tiles_of(image_tokens: int, cost: EncodeCost) -> int:
    """Tiles a request's `image_tokens` come from (rounded up: partial tiles are whole tiles)."""
    return -(-int(image_tokens) // int(cost.tokens_per_tile)) if image_tokens > 0 else 0


def encode_time_s(cost: EncodeCost, tiles: int) -> float:
    """Convenience: seconds of one batch of `tiles` tiles as a Python float."""
    return float(cost.encode_times(np.array([int(tiles)], dtype=np.int64))[0])


@dataclass(frozen=True, eq=False)
class EncodeRoofline:
    """Roofline seconds of a vision encoder over a batch of `tiles` tiles on one GPU.

    With T = tiles x patches_per_tile ViT tokens, h = hidden, f = ffn, L = patches per tile, per layer:
      linear = max(2 W T / (peak eff_compute), (W bytes + T act_bytes) / (bw eff_memory))
               (W = 4h^2 + 2hf weights; act_bytes = (18h + 4f) x bytes per token, counted op by op:
               LayerNorm 2h, QKV h + 3h, O h + h, two residual adds 3h each, LayerNorm 2h,
               fc1 h + f, GELU 2f, fc2 f + h)
      attn   = max(tiles 4 h L^2 / (peak eff_attention), 4 h T bytes / (bw eff_memory))
               + attention_overhead_s   (full attention inside each tile: L^2 pairs)
      layer  = linear + attn + layer_overhead_s
    projector = max(tiles x projector FLOPs / (peak eff_compute), projector bytes / (bw eff_memory))
    host      = tiles x host_s_per_tile
    encode    = layers x layer + projector + iteration_overhead_s + host;  0 s for 0 tiles.
    The efficiency factors and overheads are the GPU's roofline fit (measured on LLM iterations,
    `llmsched.sim.cost.fitted_params`); no ViT measurement was available to fit them separately.
    host_s_per_tile is the work outside the GPU roofline that the process driving the encoder does
    per tile before the ViT runs (image preprocessing: resizing, slicing and normalising the
    picture on the CPU, as the Hugging Face processor that vLLM calls does), serially with it. It
    is 0 in the catalogue (a GPU-only roofline); a reproduction sets it from a measurement
    (`host_s_per_tile_from_stage`). Per tile, not per image, because the encode stage sees tiles:
    for requests whose images share one resolution the two are the same.
    """

    vision: VisionEncoder
    gpu: GPU
    llm_hidden: int
    params: RooflineParams = field(default_factory=RooflineParams)
    host_s_per_tile: float = 0.0
    name: str = "encode-roofline"
    _c: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.host_s_per_tile) and self.host_s_per_tile >= 0.0):
            raise ValueError(f"host_s_per_tile must be a finite number of seconds >= 0, got {self.host_s_per_tile!r}")
        v, g, p = self.vision, self.gpu, self.params
        h, f, b = float(v.hidden), float(v.ffn), float(v.bytes_per_param)
        flops, bw = g.peak_flops, g.hbm_bandwidth_Bps
        w = 4.0 * h * h + 2.0 * h * f
        L = float(v.patches_per_tile)
        c = {
            "lin_flop_s_per_token": 2.0 * w / (flops * p.eff_compute),
            "lin_weight_s": w * b / (bw * p.eff_memory),
            "lin_act_s_per_token": (18.0 * h + 4.0 * f) * b / (bw * p.eff_memory),
            "attn_flop_s_per_tile": 4.0 * h * L * L / (flops * p.eff_attention),
            "attn_io_s_per_token": 4.0 * h * b / (bw * p.eff_memory),
            "proj_flop_s_per_tile": float(v.projector_flops_per_tile) / (flops * p.eff_compute),
            "proj_weight_s": float(v.projector_params) * b / (bw * p.eff_memory),
        }
        object.__setattr__(self, "_c", c)

    @property
    def tokens_per_tile(self) -> int:
        return self.vision.tokens_per_tile

    @property
    def embedding_bytes_per_token(self) -> float:
        return float(self.llm_hidden * self.vision.bytes_per_param)

    @staticmethod
    def create(model: str | Model, gpu: str | GPU, params: RooflineParams | None = None,
               host_s_per_tile: float = 0.0) -> EncodeRoofline:
        m, g = get_model(model), get_gpu(gpu)
        if m.vision is None:
            raise ValueError(f"model {m.name!r} has no vision encoder")
        return EncodeRoofline(m.vision, g, m.hidden, params or RooflineParams(), host_s_per_tile)

    def with_host(self, host_s_per_tile: float) -> EncodeRoofline:
        """The same roofline with `host_s_per_tile` seconds of host work per tile."""
        return EncodeRoofline(self.vision, self.gpu, self.llm_hidden, self.params, host_s_per_tile, self.name)

    def components(self, tiles) -> dict[str, np.ndarray]:
        """Per-layer seconds (linear, attention, layer) and per-batch ones (projector, overhead,
        host, total)."""
        c, p = self._c, self.params
        n = np.asarray(tiles, dtype=np.float64)
        busy = n > 0
        t = n * float(self.vision.patches_per_tile)
        lin = np.maximum(t * c["lin_flop_s_per_token"], np.where(busy, c["lin_weight_s"], 0.0) + t * c["lin_act_s_per_token"])
        attn = np.maximum(n * c["attn_flop_s_per_tile"], t * c["attn_io_s_per_token"])
        attn = attn + np.where(busy, p.attention_overhead_s, 0.0)
        layer = lin + attn + np.where(busy, p.layer_overhead_s, 0.0)
        proj = np.where(busy, np.maximum(n * c["proj_flop_s_per_tile"], c["proj_weight_s"]), 0.0)
        over = np.where(busy, p.iteration_overhead_s, 0.0)
        host = n * self.host_s_per_tile
        total = layer * float(self.vision.layers) + proj + over + host
        return {"linear": lin, "attention": attn, "layer": layer, "projector": proj, "overhead": over,
                "host": host, "encode": total}

    def encode_times(self, tiles: np.ndarray) -> np.ndarray:
        return self.components(tiles)["encode"]


@dataclass(frozen=True, eq=False)
class LinearEncodeCost:
    """seconds = batch_s + tile_s x tiles for a non-empty batch (0 for none): tests and what-ifs."""

    batch_s: float
    tile_s: float
    tokens_per_tile: int = 64
    embedding_bytes_per_token: float = 0.0
    name: str = "encode-linear"

    def encode_times(self, tiles: np.ndarray) -> np.ndarray:
        n = np.asarray(tiles, dtype=np.float64)
        return np.where(n > 0, self.batch_s + self.tile_s * n, 0.0)


def host_s_per_tile_from_stage(stage_s: float, tiles: int, gpu_s: float) -> float:
    """Host seconds per tile that close a measured stage: (stage_s - gpu_s) / tiles.

    stage_s: a measured stage that ran `tiles` tiles of preprocessing + encoding (and whatever
    else `gpu_s` covers); gpu_s: the modelled seconds of everything in that stage except the host
    work (e.g. the encode roofline without host term + the LLM prefill roofline). Raises
    ValueError when the model already exceeds the measurement (no host time left to assign).
    """
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles!r}")
    if not (np.isfinite(stage_s) and np.isfinite(gpu_s)) or stage_s < gpu_s:
        raise ValueError(f"the modelled {gpu_s!r} s exceed the measured stage {stage_s!r} s: no host time to assign")
    return (float(stage_s) - float(gpu_s)) / int(tiles)


def build_encode(model: str, gpu: str) -> EncodeRoofline | None:
    """The catalogue encode cost of `model` on one `gpu` (its fitted factors); None if text-only."""
    from llmsched.sim.cost import fitted_params

    m = get_model(model)
    if m.vision is None:
        return None
    return EncodeRoofline.create(m, gpu, fitted_params(gpu))
