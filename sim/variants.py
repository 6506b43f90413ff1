"""Model variants: models that trade accuracy for latency, and the catalogue of variant sets.

Owns `ModelVariant` (an accuracy, a batch-latency profile and an actuation delay: what a batching
policy hands the engine in `Plan.variant` to run one batch with that model) and the named sets of
variants that SuperServe-style policies choose from. The engine uses a plan's variant as the cost
model of that batch (`ModelVariant.iteration_times`), adds its actuation delay when the instance
switches to it from another variant, and credits every token the batch produces with the
variant's accuracy (the `accuracy` column of the run results).

Latency profile: affine in the batch's request count, `latency_s(n) = base_s + per_request_s * n`,
the shape of the batch-latency profiles of image classifiers that SuperServe (Khare et al., arXiv
2312.16733) and its predecessors (Clipper, INFaaS) profile. The paper's own profile points were not
retrievable here (its body is not in the stored corpus), so the bundled set is built from public
numbers instead, named per field below:

* accuracy: ImageNet-1K top-1 of torchvision's ResNet-18/34/50/101/152 (IMAGENET1K_V1 weights),
  the "acc@1" of each model's page (pytorch.org/vision/stable/models, e.g. resnet50: 76.13);
* per_request_s: 2 x GMACs x 1e9 FLOP / (GPU peak FLOP/s x `COMPUTE_EFFICIENCY`), with the "GFLOPS"
  torchvision lists per model (multiply-accumulates, e.g. resnet50: 4.09) and the GPU's dense
  fp16 peak from the hardware catalogue;
* base_s: `LAUNCH_OVERHEAD_S`, a per-batch fixed cost (our choice, see below);
* actuation_s: "subnetworks" (SubNetAct: the variants are paths through one resident weight-shared
  super-network, actuated by control-flow operators, "near-instantaneous" in the paper's abstract)
  = 0; "separate-models" (INFaaS-style model switching: the next model's weights are loaded onto
  the GPU on the critical path) = weight bytes (fp16) over PCIe Gen4 x16, a lower bound on a load
  that in practice also pays framework initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched.sim.cost.base import BatchShape
from llmsched.sim.swap import PCIE4_X16_BANDWIDTH_BPS

#: Fraction of the GPU's dense fp16 peak a batched CNN forward pass reaches. Our choice (not
#: calibrated against a measurement): convolution layers of ResNets at batch sizes 8-64 typically
#: reach a quarter to a half of tensor-core peak; the reproduction's comparisons are between
#: policies on one profile, so this scales every variant alike.
COMPUTE_EFFICIENCY = 0.3
#: Fixed cost of one batch (kernel launches, input copy, framework dispatch). Our choice: 1 ms.
LAUNCH_OVERHEAD_S = 1e-3
DEPLOYMENTS = ("subnetworks", "separate-models")


@dataclass(frozen=True)
class ModelVariant:
    """One model of a latency-accuracy trade-off space.

    accuracy: in [0, 1] (top-1 as a fraction); base_s + per_request_s * n: seconds to run a batch
    of n requests; actuation_s: seconds to switch an instance to this variant from another one.
    """

    name: str
    accuracy: float
    base_s: float
    per_request_s: float
    actuation_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"variant {self.name!r}: accuracy must be in [0, 1], got {self.accuracy}")
        if not (self.base_s >= 0 and self.per_request_s > 0 and self.actuation_s >= 0):
            raise ValueError(f"variant {self.name!r}: base_s and actuation_s must be >= 0 s and per_request_s > 0 s")

    def latency_s(self, batch_requests: int | np.ndarray) -> float | np.ndarray:
        return self.base_s + self.per_request_s * batch_requests

    def max_batch_within(self, seconds: float) -> int:
        """The largest batch whose latency is at most `seconds` (0 if not even one request fits)."""
        if seconds < self.base_s + self.per_request_s:
            return 0
        return int((seconds - self.base_s) // self.per_request_s)

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        """The variant as a cost model: a batch's seconds depend only on its request count."""
        return np.asarray(self.base_s + self.per_request_s * np.asarray(shape.num_requests, dtype=np.float64))


@dataclass(frozen=True)
class VariantPoint:
    """A catalogue entry: accuracy (fraction), multiply-accumulates per request, weights."""

    name: str
    accuracy: float
    gmacs: float
    params: int
    source: str


_TV = "torchvision model page (pytorch.org/vision/stable/models), IMAGENET1K_V1: acc@1, GFLOPS, num_params"
#: Named variant sets (sorted fastest first). "resnet-imagenet": torchvision's ResNets.
VARIANT_SETS: dict[str, tuple[VariantPoint, ...]] = {
    "resnet-imagenet": (
        VariantPoint("resnet18", 0.69758, 1.81, 11_689_512, _TV),
        VariantPoint("resnet34", 0.73314, 3.66, 21_797_672, _TV),
        VariantPoint("resnet50", 0.76130, 4.09, 25_557_032, _TV),
        VariantPoint("resnet101", 0.77374, 7.80, 44_549_160, _TV),
        VariantPoint("resnet152", 0.78312, 11.51, 60_192_808, _TV),
    ),
}


def variants_from_points(points: tuple[VariantPoint, ...], peak_flops: float, deployment: str = "subnetworks",
                         efficiency: float = COMPUTE_EFFICIENCY,
                         launch_s: float = LAUNCH_OVERHEAD_S) -> tuple[ModelVariant, ...]:
    """Latency profiles of `points` on a GPU of `peak_flops` (see the module docstring)."""
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
    out = []
    for p in points:
        load_s = 0.0 if deployment == "subnetworks" else 2.0 * p.params / PCIE4_X16_BANDWIDTH_BPS
        out.append(ModelVariant(p.name, p.accuracy, launch_s, 2.0 * p.gmacs * 1e9 / (peak_flops * efficiency), load_s))
    return tuple(sorted(out, key=lambda v: (v.per_request_s, v.base_s)))


def variant_set(name: str, gpu: str, deployment: str = "subnetworks") -> tuple[ModelVariant, ...]:
    """The named set's variants on catalogue GPU `gpu`; ValueError naming the known sets."""
    if name not in VARIANT_SETS:
        raise ValueError(f"unknown variant set {name!r}; known: {', '.join(sorted(VARIANT_SETS))}")
    from llmsched.sim.hardware import get_gpu

    return variants_from_points(VARIANT_SETS[name], get_gpu(gpu).peak_flops, deployment)
