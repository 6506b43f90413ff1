"""Parallelism configurations of one model on a pool of GPUs: replicas × tensor × pipeline degree,
and how a configuration runs on the engine.

Owns the configuration space (`feasible_configs`), the mapping of a configuration onto engine
instances (`deployment`), and the pipeline cost term (`PipelineCost`). Planners that search the
space (`llmsched.policies.planning`) and reproductions use these; nothing here decides.

How a pipeline runs (vLLM's virtual engines, `vllm/engine/llm_engine.py` with
`pipeline_parallel_size` > 1): a PP = p instance keeps p schedulers ("virtual engines"), each with
1/p of the KV blocks, whose micro-batches occupy different stages at once. We model one PP
instance as p engine instances, each: the whole model's iteration time at TP = t (the stages
run one after the other for a micro-batch) plus (p − 1) activation hand-offs over the GPUs' link,
and the KV tokens the t·p GPUs hold together divided by p. Not modelled (our choice, documented in
docs/policies.md): stage imbalance, pipeline bubbles when fewer than p micro-batches are ready,
and the scheduling coupling of the virtual engines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.cost import build
from llmsched.sim.cost.base import BatchShape, CostModel
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import activation_reserve_bytes, get_gpu, get_model
from llmsched.sim.hardware.derived import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    kv_bytes_per_token,
    weight_bytes,
)

DEGREES = (1, 2, 4, 8, 16)  # power-of-two TP / PP degrees, as serving stacks deploy them


@dataclass(frozen=True, order=True)
class ParallelConfig:
    """replicas independent copies of the model, each on tp × pp GPUs."""

    replicas: int
    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.tp * self.pp

    def label(self) -> str:
        return f"R{self.replicas}-TP{self.tp}-PP{self.pp}"


def kv_tokens_per_replica(model: str, gpu: str, tp: int, pp: int,
                          gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION) -> int:
    """KV tokens one replica's tp × pp GPUs hold together: per GPU, utilization × memory −
    weights/(tp·pp) − the activation reserve at TP = tp; each token's KV is spread over all tp·pp
    GPUs (layers over stages, KV heads over ranks). 0 when the weights do not fit."""
    m, g = get_model(model), get_gpu(gpu)
    n = tp * pp
    usable = gpu_memory_utilization * g.memory_bytes - weight_bytes(m) / n - activation_reserve_bytes(m, tp)
    if usable <= 0:
        return 0
    return math.floor(usable * n / kv_bytes_per_token(m))


def check_config(model: str, gpu: str, config: ParallelConfig, n_gpus: int) -> str | None:
    """None if `config` can be deployed on `n_gpus` GPUs, else why not (one phrase)."""
    m = get_model(model)
    if min(config.replicas, config.tp, config.pp) < 1:
        return "replicas, tp and pp must be >= 1"
    if config.gpus > n_gpus:
        return f"needs {config.gpus} GPUs, the pool has {n_gpus}"
    if m.heads % config.tp:
        return f"tp={config.tp} does not divide {m.name}'s {m.heads} attention heads"
    if config.pp > m.layers:
        return f"pp={config.pp} is more stages than {m.name}'s {m.layers} layers"
    if config.tp > get_gpu(gpu).num_gpus * 8:
        return f"tp={config.tp} spans more than one 8-GPU node"
    if kv_tokens_per_replica(model, gpu, config.tp, config.pp) < config.pp * 16:
        return f"{m.name} does not fit on {config.tp * config.pp} x {gpu}"
    return None


def feasible_configs(model: str, gpu: str, n_gpus: int) -> list[ParallelConfig]:
    """Every deployable (replicas, tp, pp) with power-of-two tp and pp, in sorted order."""
    out = []
    for tp in DEGREES:
        for pp in DEGREES:
            for replicas in range(1, n_gpus // (tp * pp) + 1):
                c = ParallelConfig(replicas, tp, pp)
                if check_config(model, gpu, c, n_gpus) is None:
                    out.append(c)
    return sorted(out)


@dataclass(frozen=True)
class PipelineCost:
    """A TP = t cost model plus the hand-offs of a pp-stage pipeline: each iteration adds
    (pp − 1) × (link latency + activation bytes / link bandwidth), activations = tokens × hidden ×
    bytes per parameter / t (each rank sends its shard). Element-wise over iterations."""

    base: CostModel
    pp: int
    hidden_bytes_per_token: float
    link_bandwidth_Bps: float
    link_latency_s: float
    name: str = "pipeline"

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        t = np.asarray(self.base.iteration_times(shape), dtype=np.float64)
        if self.pp == 1:
            return t
        tokens = (np.asarray(shape.prefill_tokens, dtype=np.float64)
                  + np.asarray(shape.decode_tokens, dtype=np.float64))
        hop = self.link_latency_s + tokens * self.hidden_bytes_per_token / self.link_bandwidth_Bps
        return np.where(t > 0, t + (self.pp - 1) * hop, 0.0)


@dataclass(frozen=True)
class Deployment:
    """A configuration as engine instances: the cluster and one cost model per instance."""

    config: ParallelConfig
    cluster: ClusterSpec
    cost_models: tuple[CostModel, ...]


def deployment(model: str, gpu: str, config: ParallelConfig, n_gpus: int, *, batching: str = "sarathi",
               token_budget: int = 512, router: str = "round-robin") -> Deployment:
    """The engine instances that run `config`: replicas × pp virtual engines (see the module
    docstring), each with its share of the replica's KV and the pipeline cost. An infeasible
    configuration is an InputError naming the field."""
    why = check_config(model, gpu, config, n_gpus)
    if why is not None:
        raise InputError("parallel config", config.label(), why, "choose one of feasible_configs(...)")
    m, g = get_model(model), get_gpu(gpu)
    kv_per_engine = kv_tokens_per_replica(model, gpu, config.tp, config.pp) // config.pp
    spec = InstanceSpec(model=model, gpu=gpu, tp=config.tp, batching=batching, token_budget=token_budget,
                        kv_capacity_tokens=kv_per_engine, count=config.replicas * config.pp)
    cost = PipelineCost(build("roofline", model, gpu, config.tp), config.pp,
                        m.hidden * m.bytes_per_param / config.tp, g.link_bandwidth_Bps, g.link_latency_s)
    cluster = ClusterSpec(instances=(spec,), router=router, router_params=freeze_params({}))
    return Deployment(config, cluster, tuple(cost for _ in range(spec.count)))
