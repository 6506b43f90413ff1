"""Hardware and model catalogue plus derived quantities (FLOPs, bytes, KV capacity).

`catalogue` holds the cited specs and name lookup; `derived` the arithmetic over them.
Nothing here knows about cost models or the engine.
"""

from llmsched.sim.hardware.catalogue import (
    GPU,
    GPUS,
    MODELS,
    Model,
    VisionEncoder,
    get_gpu,
    get_model,
    gpu_names,
    model_names,
)
from llmsched.sim.hardware.derived import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    activation_reserve_bytes,
    effective_tp,
    kv_bytes_per_token,
    kv_capacity_tokens,
    layer_work,
    param_count,
    weight_bytes,
)

# Short aliases: sim.hardware.model("llama-2-7b"), sim.hardware.gpu("a100-80gb").
model = get_model
gpu = get_gpu

__all__ = [
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "GPU",
    "GPUS",
    "MODELS",
    "Model",
    "VisionEncoder",
    "activation_reserve_bytes",
    "effective_tp",
    "get_gpu",
    "get_model",
    "gpu",
    "gpu_names",
    "kv_bytes_per_token",
    "kv_capacity_tokens",
    "layer_work",
    "model",
    "model_names",
    "param_count",
    "weight_bytes",
]
