"""The hardware and model catalogue: frozen dataclasses with a cited source for every number.

Owns GPU and model specifications and name lookup (case-insensitive, with aliases). Derived
quantities (FLOPs, bytes, KV capacity) live in `llmsched.sim.hardware.derived`; nothing here computes.
Must not import the engine, policies or cost models.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsched.sim.errors import InputError

GiB = 1024**3
TERA = 1e12
GIGA = 1e9


@dataclass(frozen=True)
class GPU:
    """One accelerator type, or a multi-GPU node of identical accelerators (`num_gpus` > 1).

    peak_flops:              dense bf16/fp16 tensor-core peak per GPU, FLOP/s (no sparsity)
    hbm_bandwidth_Bps:       device memory bandwidth per GPU, bytes/s
    memory_bytes:            device memory per GPU, bytes (marketed "N GB" read as N GiB: the
                             HBM/GDDR parts are binary-sized, e.g. nvidia-smi shows 81920 MiB on an
                             A100-80GB; our choice, documented in docs/hardware.md)
    link_bandwidth_Bps:      per-direction GPU-GPU bandwidth inside a node (NVLink or PCIe), bytes/s
    link_latency_s:          per-message latency of that link (assumption, see docs/hardware.md)
    num_gpus:                GPUs in the node; a node with num_gpus > 1 runs tensor-parallel over them
    active_power_w:          board power per GPU while it runs a batch, W: the datasheet's maximum
                             board power / TDP (0 = unknown: such a GPU's runs report no energy).
                             Energy per token is derived, not stored: active power x iteration time /
                             tokens in the iteration (the engine credits it per token, `energy_j`)
    idle_power_w:            power per GPU while it holds the model but runs nothing, W (see
                             IDLE_FRACTION: no vendor publishes it)
    node_sku:                name of a measured collective profile (Vidur) for this node, if any
    sources:                 citation per field
    """

    name: str
    peak_flops: float
    hbm_bandwidth_Bps: float
    memory_bytes: int
    link_bandwidth_Bps: float
    link_latency_s: float
    num_gpus: int = 1
    node_sku: str = ""
    aliases: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    active_power_w: float = 0.0
    idle_power_w: float = 0.0


@dataclass(frozen=True)
class VisionEncoder:
    """The vision encoder of a multimodal model: a ViT over fixed-size image tiles plus the projector
    that turns each tile into LLM tokens.

    layers, hidden, heads, ffn: the ViT layers that run (GELU MLP: two hidden x ffn GEMMs);
    patch_px: ViT patch side; tile_px: tile side (an image is cut into tiles of about tile_px^2
    pixels); max_slices: most slices of one image (an image larger than one tile becomes
    min(ceil(W*H / tile_px^2), max_slices) slices plus one downscaled overview tile);
    query_tokens: LLM tokens the projector makes per tile; marker_tokens: special tokens the prompt
    adds around each tile; projector_params: weights of the projector (resampler);
    projector_flops_per_tile: FLOPs of the projector per tile.
    """

    name: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    patch_px: int
    tile_px: int
    max_slices: int
    query_tokens: int
    marker_tokens: int
    projector_params: int
    projector_flops_per_tile: float
    bytes_per_param: int = 2
    source: str = ""

    @property
    def patches_per_tile(self) -> int:
        """ViT tokens of one tile."""
        return (self.tile_px // self.patch_px) ** 2

    @property
    def tokens_per_tile(self) -> int:
        """LLM prompt tokens one tile becomes."""
        return self.query_tokens + self.marker_tokens

    def tiles(self, width_px: int, height_px: int) -> int:
        """Tiles the encoder runs for one image of width_px x height_px (see the class docstring)."""
        area = int(width_px) * int(height_px)
        tile_area = self.tile_px * self.tile_px
        if area <= tile_area:
            return 1
        return min(-(-area // tile_area), self.max_slices) + 1


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer (Llama family: RMSNorm, RoPE, gated SiLU MLP, no biases).

    layers, hidden (d_model), heads (query heads), kv_heads (GQA groups), ffn (MLP inner size),
    vocab, bytes_per_param (2 = fp16/bf16), tied_embeddings (input and output embedding shared),
    context_tokens (max_position_embeddings of the config.json named in `source`),
    vision (the vision encoder of a multimodal model; None = text-only: images are rejected).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    bytes_per_param: int = 2
    tied_embeddings: bool = False
    aliases: tuple[str, ...] = ()
    source: str = ""
    #: context length (max_position_embeddings): the most tokens, prompt + output, one request may
    #: use; a server rejects a longer request (vLLM's OpenAI server: "maximum context length").
    context_tokens: int | None = None
    vision: VisionEncoder | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token over all layers (whole model, before any TP split)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param


# Link figures. NVLink numbers are per direction (half the datasheet's bidirectional total).
# PCIe: Gen3 x16 = 15.75 GB/s, Gen4 x16 = 31.5 GB/s per direction (PCI-SIG base specs 3.0/4.0:
# 8 and 16 GT/s per lane, 128b/130b encoding). Latencies: assumptions of a few microseconds per
# message (NCCL small-message all-reduce on NVLink measures ~7-40 us in Vidur's a100/h100
# all_reduce.csv; PCIe is set higher); documented in docs/hardware.md.
PCIE3_X16_Bps = 15.75 * GIGA
PCIE4_X16_Bps = 31.5 * GIGA

#: Idle power as a fraction of the maximum board power. Our assumption: vendors publish no idle
#: figure, and a GPU that holds a model's weights but runs nothing stays in a higher power state
#: than an empty one; 0.15 stands for that state.
IDLE_FRACTION = 0.15
_IDLE = "our assumption: IDLE_FRACTION (0.15) of the maximum board power (no vendor figure)"
_DS_A100 = "NVIDIA A100 Tensor Core GPU datasheet (2021): BF16 tensor 312 TFLOPS dense (624 sparse)"
_DS_H100 = "NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 tensor 1,979 TFLOPS with sparsity -> 989.5 dense"

GPUS: tuple[GPU, ...] = (
    GPU(
        "a10g", 70 * TERA, 600 * GIGA, 24 * GiB, PCIE4_X16_Bps, 10e-6,
        aliases=("nvidia-a10g", "a10g-24gb"),
        sources=(
            ("peak_flops", "AWS G5 A10G: no NVIDIA datasheet; 70 TFLOPS bf16 tensor dense as tabulated in "
                           "Baseten, 'NVIDIA A10 vs A10G for ML model inference' (2023) spec table, which says the "
                           "A10G has less tensor compute than the A10 (125); not checked against an NVIDIA document"),
            ("hbm_bandwidth_Bps", "same source: 24 GB GDDR6, 600 GB/s (shared with the NVIDIA A10 datasheet)"),
            ("memory_bytes", "NVIDIA A10 datasheet / AWS G5 instance page: 24 GB GDDR6"),
            ("link_bandwidth_Bps", "PCIe Gen4 x16 (PCI-SIG 4.0)"),
            ("active_power_w", "AWS does not publish the A10G's board power; the NVIDIA A10 datasheet's 150 W max TDP is assumed"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=150.0, idle_power_w=150.0 * IDLE_FRACTION,
    ),
    GPU(
        "a10", 125 * TERA, 600 * GIGA, 24 * GiB, PCIE4_X16_Bps, 10e-6,
        aliases=("nvidia-a10", "a10-24gb"),
        sources=(
            ("peak_flops", "NVIDIA A10 Tensor Core GPU datasheet: BF16 tensor 125 TFLOPS dense (250 sparse)"),
            ("hbm_bandwidth_Bps", "NVIDIA A10 datasheet: 600 GB/s GDDR6"),
            ("memory_bytes", "NVIDIA A10 datasheet: 24 GB GDDR6"),
            ("link_bandwidth_Bps", "NVIDIA A10 datasheet: PCIe Gen4 x16 64 GB/s (bidirectional)"),
            ("active_power_w", "NVIDIA A10 datasheet: max thermal design power 150 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=150.0, idle_power_w=150.0 * IDLE_FRACTION,
    ),
    GPU(
        "a100-40gb", 312 * TERA, 1555 * GIGA, 40 * GiB, 300 * GIGA, 5e-6, node_sku="a100_dgx",
        aliases=("a100", "a100-sxm4-40gb", "nvidia-a100-40gb"),
        sources=(
            ("peak_flops", _DS_A100),
            ("hbm_bandwidth_Bps", "NVIDIA A100 datasheet: A100 40GB SXM 1,555 GB/s HBM2"),
            ("memory_bytes", "NVIDIA A100 datasheet: 40 GB HBM2"),
            ("link_bandwidth_Bps", "NVIDIA A100 datasheet: NVLink 600 GB/s (bidirectional) -> 300 GB/s per direction"),
            ("active_power_w", "NVIDIA A100 datasheet: A100 SXM max TDP 400 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=400.0, idle_power_w=400.0 * IDLE_FRACTION,
    ),
    GPU(
        "a100-80gb", 312 * TERA, 2039 * GIGA, 80 * GiB, 300 * GIGA, 5e-6, node_sku="a100_dgx",
        aliases=("a100-sxm4-80gb", "nvidia-a100-80gb", "a100-80g"),
        sources=(
            ("peak_flops", _DS_A100),
            ("hbm_bandwidth_Bps", "NVIDIA A100 datasheet: A100 80GB SXM 2,039 GB/s HBM2e"),
            ("memory_bytes", "NVIDIA A100 datasheet: 80 GB HBM2e"),
            ("link_bandwidth_Bps", "NVIDIA A100 datasheet: NVLink 600 GB/s (bidirectional) -> 300 GB/s per direction"),
            ("active_power_w", "NVIDIA A100 datasheet: A100 80GB SXM max TDP 400 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=400.0, idle_power_w=400.0 * IDLE_FRACTION,
    ),
    GPU(
        "h100-80gb", 989.5 * TERA, 3350 * GIGA, 80 * GiB, 450 * GIGA, 5e-6, node_sku="h100_dgx",
        aliases=("h100", "h100-sxm", "h100-sxm5-80gb", "nvidia-h100"),
        sources=(
            ("peak_flops", _DS_H100),
            ("hbm_bandwidth_Bps", "NVIDIA H100 datasheet (SXM5): 3.35 TB/s HBM3"),
            ("memory_bytes", "NVIDIA H100 datasheet (SXM5): 80 GB"),
            ("link_bandwidth_Bps", "NVIDIA H100 datasheet: NVLink 900 GB/s (bidirectional) -> 450 GB/s per direction"),
            ("active_power_w", "NVIDIA H100 datasheet: H100 SXM max TDP up to 700 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=700.0, idle_power_w=700.0 * IDLE_FRACTION,
    ),
    GPU(
        "l4", 121 * TERA, 300 * GIGA, 24 * GiB, PCIE4_X16_Bps, 10e-6,
        aliases=("nvidia-l4", "l4-24gb"),
        sources=(
            ("peak_flops", "NVIDIA L4 datasheet: FP16/BF16 tensor 242 TFLOPS with sparsity -> 121 dense"),
            ("hbm_bandwidth_Bps", "NVIDIA L4 datasheet: 300 GB/s GDDR6"),
            ("memory_bytes", "NVIDIA L4 datasheet: 24 GB"),
            ("link_bandwidth_Bps", "NVIDIA L4 datasheet: PCIe Gen4 x16 64 GB/s (bidirectional)"),
            ("active_power_w", "NVIDIA L4 datasheet: max thermal design power 72 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=72.0, idle_power_w=72.0 * IDLE_FRACTION,
    ),
    GPU(
        "t4", 65 * TERA, 320 * GIGA, 16 * GiB, PCIE3_X16_Bps, 10e-6,
        aliases=("nvidia-t4", "t4-16gb"),
        sources=(
            ("peak_flops", "NVIDIA T4 datasheet: mixed precision (FP16/FP32) 65 TFLOPS"),
            ("hbm_bandwidth_Bps", "NVIDIA T4 datasheet: 320+ GB/s GDDR6"),
            ("memory_bytes", "NVIDIA T4 datasheet: 16 GB GDDR6"),
            ("link_bandwidth_Bps", "NVIDIA T4 datasheet: PCIe Gen3 x16 32 GB/s (bidirectional)"),
            ("active_power_w", "NVIDIA T4 datasheet: max power 70 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=70.0, idle_power_w=70.0 * IDLE_FRACTION,
    ),
    GPU(
        "v100-16gb", 125 * TERA, 900 * GIGA, 16 * GiB, 150 * GIGA, 5e-6,
        aliases=("v100", "v100-sxm2-16gb", "nvidia-v100"),
        sources=(
            ("peak_flops", "NVIDIA V100 datasheet (SXM2): tensor performance 125 TFLOPS"),
            ("hbm_bandwidth_Bps", "NVIDIA V100 datasheet: 900 GB/s HBM2"),
            ("memory_bytes", "NVIDIA V100 datasheet: 16 GB HBM2"),
            ("link_bandwidth_Bps", "NVIDIA V100 datasheet: NVLink 300 GB/s (bidirectional) -> 150 GB/s per direction"),
            ("active_power_w", "NVIDIA V100 datasheet (SXM2): max power 300 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=300.0, idle_power_w=300.0 * IDLE_FRACTION,
    ),
    GPU(
        "rtx-6000-ada", 364.25 * TERA, 960 * GIGA, 48 * GiB, PCIE4_X16_Bps, 10e-6,
        aliases=("rtx6000ada", "rtx-6000-ada-generation", "rtx6000-ada", "nvidia-rtx-6000-ada"),
        sources=(
            ("peak_flops", "NVIDIA RTX 6000 Ada datasheet: 1,457 TFLOPS FP8 tensor with sparsity -> 728.5 FP8 "
                           "dense -> 364.25 FP16 dense (Ada architecture whitepaper, Appendix: FP16 with FP32 "
                           "accumulate at full rate on RTX 6000 Ada)"),
            ("hbm_bandwidth_Bps", "NVIDIA RTX 6000 Ada datasheet: 960 GB/s GDDR6"),
            ("memory_bytes", "NVIDIA RTX 6000 Ada datasheet: 48 GB GDDR6"),
            ("link_bandwidth_Bps", "NVIDIA RTX 6000 Ada datasheet: PCIe Gen4 x16"),
            ("active_power_w", "NVIDIA RTX 6000 Ada datasheet: max power consumption 300 W"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=300.0, idle_power_w=300.0 * IDLE_FRACTION,
    ),
    # Helix's multi-GPU nodes (Google Cloud machines, reference/helix/upstream/artifact_evaluation/
    # single_cluster/config/machine_profiles.ini: T4x2 32 GB, T4x4 64 GB, L4x2 48 GB of VRAM; the
    # per-GPU model files name them "L4 24GB x 2", "T4 16GB x 4"). Each node serves one pipeline
    # stage with tensor parallelism over its GPUs across PCIe (no NVLink on g2 / n1+T4 machines).
    GPU(
        "l4x2", 121 * TERA, 300 * GIGA, 24 * GiB, PCIE4_X16_Bps, 10e-6, num_gpus=2,
        aliases=("2xl4",),
        sources=(("all", "2 x NVIDIA L4 (see l4) over PCIe Gen4; Helix machine_profiles.ini [L4x2] vram 48 GB"),),
        active_power_w=72.0, idle_power_w=72.0 * IDLE_FRACTION,
    ),
    GPU(
        "t4x2", 65 * TERA, 320 * GIGA, 16 * GiB, PCIE3_X16_Bps, 10e-6, num_gpus=2,
        aliases=("2xt4",),
        sources=(("all", "2 x NVIDIA T4 (see t4) over PCIe Gen3; Helix machine_profiles.ini [T4x2] vram 32 GB"),),
        active_power_w=70.0, idle_power_w=70.0 * IDLE_FRACTION,
    ),
    GPU(
        "t4x4", 65 * TERA, 320 * GIGA, 16 * GiB, PCIE3_X16_Bps, 10e-6, num_gpus=4,
        aliases=("4xt4",),
        sources=(("all", "4 x NVIDIA T4 (see t4) over PCIe Gen3; Helix machine_profiles.ini [T4x4] vram 64 GB"),),
        active_power_w=70.0, idle_power_w=70.0 * IDLE_FRACTION,
    ),
    # PerLLM's edge server class (arXiv 2405.14636 evaluation, as summarised by study.space: "Intel
    # Xeon Silver 4214R CPUs as edge devices"): one socket, inference on its AVX-512 cores.
    GPU(
        "xeon-silver-4214r", 0.9216 * TERA, 115.2 * GIGA, 192 * GiB, PCIE3_X16_Bps, 10e-6,
        aliases=("intel-xeon-silver-4214r", "xeon-4214r"),
        sources=(
            ("peak_flops", "Intel ARK, Xeon Silver 4214R: 12 cores, 2.40 GHz base, one AVX-512 FMA unit a core "
                           "-> 12 x 2.4e9 x 32 FP32 FLOP/cycle = 921.6 GFLOP/s (our derivation; no bf16 units)"),
            ("hbm_bandwidth_Bps", "Intel ARK: 6 DDR4-2400 channels -> 6 x 2400e6 x 8 B = 115.2 GB/s"),
            ("memory_bytes", "our choice: 192 GiB (6 x 32 GiB DIMMs; ARK: up to 1 TB); the paper's RAM is not public"),
            ("link_bandwidth_Bps", "PCIe Gen3 x16 (unused: one socket, no tensor parallelism)"),
            ("active_power_w", "Intel ARK, Xeon Silver 4214R: TDP 100 W (drawn whenever busy, llmsched.sim.energy)"),
            ("idle_power_w", _IDLE),
        ),
        active_power_w=100.0, idle_power_w=100.0 * IDLE_FRACTION,
    ),
    # The T4 running fp32 weights and math, as SpotServe's artifact serves its models (FasterTransformer
    # data_type=fp32 in Hsword/SpotServe@832b29f FasterTransformer/examples/cpp/multi_gpu_gpt/configs/
    # gpt_config_{6.7B,h6144,h7168}.ini line 11): the T4 has no tensor cores for fp32.
    GPU(
        "t4-fp32", 8.1 * TERA, 320 * GIGA, 16 * GiB, PCIE3_X16_Bps, 10e-6,
        aliases=("nvidia-t4-fp32",),
        sources=(
            ("peak_flops", "NVIDIA T4 datasheet: single-precision (FP32) 8.1 TFLOPS"),
            ("hbm_bandwidth_Bps", "NVIDIA T4 datasheet: 320+ GB/s GDDR6"),
            ("memory_bytes", "NVIDIA T4 datasheet: 16 GB GDDR6"),
            ("link_bandwidth_Bps", "NVIDIA T4 datasheet: PCIe Gen3 x16 32 GB/s (bidirectional)"),
        ),
    ),
)

_HF = "Hugging Face config.json of "

# MiniCPM-V 2.6's vision side. ViT: SigLIP-400M geometry (hidden 1152, MLP 4304, 16 heads, patch 14,
# 448 px tiles) with the last of its 27 layers dropped, 26 run: ggerganov/llama.cpp
# examples/llava/minicpmv-convert-image-encoder-to-gguf.py (default_vision_config; block_count = 26;
# emb_dim 3584 for minicpmv_version 3 = MiniCPM-V 2.6). Slicing: at most 9 slices of 448 px scale
# plus the overview image (Hugging Face openbmb/MiniCPM-V-2_6 config.json slice_config:
# max_slice_nums 9, scale_resolution 448, patch_size 14); the EPD paper's Table 3 lists 1, 3 and 10
# tiles ("#Patch") for 313x234, 787x444 and 4032x3024 images, which this rule reproduces.
# Projector: a one-layer perceiver resampler with 64 queries (query_num 64) into the LLM width 3584,
# 28 heads, keys/values from the 1152-wide ViT output (OpenBMB/MiniCPM-V resampler.py): weights
# kv_proj 1152x3584 + attention in/out projections 4 x 3584^2 + output proj 3584^2 = 68.4M; FLOPs per
# tile 2 x (1024 x 1152 x 3584 + 2 x 1024 x 3584^2 + 64 x 2 x 3584^2) + attention 4 x 64 x 1024 x 3584.
# Marker tokens: <slice>/<image> start and end around each tile's 64 query tokens (our count; the
# per-image id tokens are omitted).
_MINICPMV26_VIT = VisionEncoder(
    "siglip-400m-minicpmv2.6", 26, 1152, 16, 4304, 14, 448, 9, 64, 2,
    projector_params=1152 * 3584 + 5 * 3584 * 3584,
    projector_flops_per_tile=2.0 * (1024 * 1152 * 3584 + 2 * 1024 * 3584**2 + 64 * 2 * 3584**2)
    + 4.0 * 64 * 1024 * 3584,
    source="llama.cpp minicpmv-convert-image-encoder-to-gguf.py; openbmb/MiniCPM-V-2_6 config.json; "
           "OpenBMB/MiniCPM-V resampler.py",
)

MODELS: tuple[Model, ...] = (
    Model("llama-2-7b", 32, 4096, 32, 32, 11008, 32000, context_tokens=4096,
          aliases=("llama2-7b", "meta-llama/llama-2-7b-hf", "llama-2-7b-hf", "llama-7b"),
          source=_HF + "meta-llama/Llama-2-7b-hf; also vidur/derived/model_configs.csv (vocab 32768 there); "
                       "LLaMA-1-7B ('llama-7b') has the same geometry (LLaMA paper, Touvron et al. 2023, Table 2)"),
    Model("llama-2-13b", 40, 5120, 40, 40, 13824, 32000, context_tokens=4096,
          aliases=("llama2-13b", "meta-llama/llama-2-13b-hf", "llama-2-13b-hf"),
          source=_HF + "meta-llama/Llama-2-13b-hf"),
    Model("llama-2-70b", 80, 8192, 64, 8, 28672, 32000, context_tokens=4096,
          aliases=("llama2-70b", "meta-llama/llama-2-70b-hf", "llama-2-70b-hf", "llama70b"),
          source=_HF + "meta-llama/Llama-2-70b-hf; Helix AE model config llama70b/config.json"),
    Model("llama-3.1-8b", 32, 4096, 32, 8, 14336, 128256, context_tokens=131072,
          aliases=("llama3.1-8b", "meta-llama/llama-3.1-8b", "llama-3-8b", "meta-llama-3-8b"),
          source=_HF + "meta-llama/Llama-3.1-8B (same geometry as Meta-Llama-3-8B in vidur/derived/model_configs.csv)"),
    Model("llama-3.1-70b", 80, 8192, 64, 8, 28672, 128256, context_tokens=131072,
          aliases=("llama3.1-70b", "meta-llama/llama-3.1-70b", "llama-3-70b"),
          source=_HF + "meta-llama/Llama-3.1-70B (= Meta-Llama-3-70B in vidur/derived/model_configs.csv)"),
    Model("llama-3.2-3b", 28, 3072, 24, 8, 8192, 128256, tied_embeddings=True, context_tokens=131072,
          aliases=("llama3.2-3b", "meta-llama/llama-3.2-3b"),
          source=_HF + "meta-llama/Llama-3.2-3B (tie_word_embeddings: true)"),
    Model("mistral-7b", 32, 4096, 32, 8, 14336, 32000, context_tokens=32768,
          aliases=("mistral-7b-v0.1", "mistral-7b-instruct-v0.2", "mistralai/mistral-7b-instruct-v0.2"),
          source=_HF + "mistralai/Mistral-7B-v0.1 and Mistral-7B-Instruct-v0.2 (v0.3 has vocab 32768)"),
    Model("codellama-34b", 48, 8192, 64, 8, 22016, 32000, context_tokens=16384,
          aliases=("codellama/codellama-34b-instruct-hf", "code-llama-34b", "codellama-34b-instruct"),
          source=_HF + "codellama/CodeLlama-34b-hf; vidur/derived/model_configs.csv (vocab 32768 there)"),
    Model("yi-34b", 60, 7168, 56, 8, 20480, 64000, context_tokens=4096,
          aliases=("01-ai/yi-34b",),
          source=_HF + "01-ai/Yi-34B (max_position_embeddings 4096)"),
    Model("yi-34b-200k", 60, 7168, 56, 8, 20480, 64000, context_tokens=200000,
          aliases=("01-ai/yi-34b-200k",),
          source=_HF + "01-ai/Yi-34B-200K (same geometry as Yi-34B, max_position_embeddings 200000)"),
    Model("minicpm-v-2.6", 28, 3584, 28, 4, 18944, 151666, context_tokens=32768, vision=_MINICPMV26_VIT,
          aliases=("minicpm-v-2_6", "openbmb/minicpm-v-2_6", "minicpmv-2.6"),
          source=_HF + "openbmb/MiniCPM-V-2_6 (its LLM is Qwen2-7B: 28 layers, hidden 3584, 28 heads, 4 KV "
                       "heads, MLP 18944; QKV biases not modelled; vocab 151666, max_position_embeddings 32768); "
                       "EPD paper (arXiv 2501.05460) App. E.2: SigLip-400M + Qwen2-7B, 8B parameters"),
    Model("llama-1-30b", 60, 6656, 52, 52, 17920, 32000, context_tokens=4096,
          aliases=("llama-30b", "llama1-30b", "llama30b", "llama-1-33b"),
          source="Helix AE model config llama30b/config.json (reference/helix/upstream/.../llama30b/config.json)"),
    # SpotServe's three models as its artifact runs them (Hsword/SpotServe@832b29f, FasterTransformer/examples/
    # cpp/multi_gpu_gpt/configs/gpt_config_<m>.ini: [megatron_6.7B_exp] L38-47, [megatron_20B_exp] L49-58,
    # [megatron_30B_exp] L60-69: head_num, size_per_head, vocab_size, real_layers, inter_size; data_type=fp32
    # L11, so bytes_per_param 4; max_seq_len 640 L3). GPT/OPT-style MLP (two hidden x inter GEMMs) written
    # in the catalogue's gated-MLP form with ffn = 2/3 inter_size (rounded: 0.003% fewer weights); biases
    # and the learned position table are not counted; input and output embedding tied (Megatron GPT).
    Model("spotserve-6.7b", 32, 4096, 32, 32, 10923, 51200, bytes_per_param=4, tied_embeddings=True,
          context_tokens=640, aliases=("opt-6.7b-spotserve",),
          source="Hsword/SpotServe gpt_config_6.7B.ini [megatron_6.7B_exp] (paper: OPT-6.7B)"),
    Model("spotserve-20b", 44, 6144, 48, 48, 16384, 51200, bytes_per_param=4, tied_embeddings=True,
          context_tokens=640, aliases=("gpt-20b-spotserve",),
          source="Hsword/SpotServe gpt_config_h6144.ini [megatron_20B_exp] (paper: GPT-20B)"),
    Model("spotserve-30b", 48, 7168, 56, 56, 19115, 50304, bytes_per_param=4, tied_embeddings=True,
          context_tokens=640, aliases=("llama-30b-spotserve",),
          source="Hsword/SpotServe gpt_config_h7168.ini [megatron_30B_exp] (paper: LLaMA-30B; the artifact's "
                 "shape, not LLaMA-30B's 60 x 6656)"),
)


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def _index(items) -> dict[str, object]:
    out: dict[str, object] = {}
    for it in items:
        for key in (it.name, *it.aliases):
            out[_norm(key)] = it
    return out


_GPU_INDEX = _index(GPUS)
_MODEL_INDEX = _index(MODELS)


def gpu_names() -> list[str]:
    return [g.name for g in GPUS]


def model_names() -> list[str]:
    return [m.name for m in MODELS]


def get_gpu(name: str | GPU) -> GPU:
    """The catalogue GPU (or node) by case-insensitive name or alias; unknown -> InputError."""
    if isinstance(name, GPU):
        return name
    g = _GPU_INDEX.get(_norm(name))
    if g is None:
        raise InputError("hardware catalogue", "gpu", f"unknown GPU {name!r}",
                         f"use one of: {', '.join(gpu_names())}")
    return g  # type: ignore[return-value]


def get_model(name: str | Model) -> Model:
    """The catalogue model by case-insensitive name or alias; unknown -> InputError."""
    if isinstance(name, Model):
        return name
    m = _MODEL_INDEX.get(_norm(name))
    if m is None:
        raise InputError("hardware catalogue", "model", f"unknown model {name!r}",
                         f"use one of: {', '.join(model_names())}")
    return m  # type: ignore[return-value]
