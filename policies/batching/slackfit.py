"""SuperServe's SlackFit (Khare et al., arXiv 2312.16733) and its fixed-model baseline.

SlackFit serves a latency-accuracy trade-off space of model variants (`llmsched.sim.variants`):
when the instance is free it takes the waiting queue, up to the batch cap, as the next batch and
runs it with the most accurate variant whose batch latency fits the slack of the oldest waiting
request (its arrival + the SLO - now). A growing queue means a bigger batch and a smaller slack,
so SlackFit moves to faster, less accurate variants under bursts and back when the burst passes.
If no variant fits the whole batch, the batch shrinks to the largest one the fastest variant
serves within the slack; if even one request does not fit (the head is already late), the
fastest variant drains the whole batch.

The baseline (`fixed-variant`, Clipper+ in the paper: one static point of the trade-off space)
applies the same batching rule with one variant. INFaaS-style model switching is `slackfit` with
`deployment = "separate-models"`: the same choices, but every switch pays a model load.

Unknown paper details and our choices (docs/policies.md): the batch is the queue head up to the
cap, served as one static batch (no request joins a running batch); the paper's slack buckets
are replaced by the exact latency profile; requests past their deadline are still served (not
dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import Param, declare, integer, number, one_of, text
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder
from llmsched.sim.variants import DEPLOYMENTS, VARIANT_SETS, ModelVariant, variant_set

DEFAULT_VARIANTS = "resnet-imagenet"
#: Our default SLO: 50 ms (the paper's SLO values were not retrievable; classification SLOs in the
#: Clipper/INFaaS line of work are tens of milliseconds).
DEFAULT_SLO_S = 0.05
#: Our default batch cap (the paper profiles batch sizes up to a power of two; its cap was not retrievable).
DEFAULT_MAX_BATCH = 64


def _variants(variants: str, custom: Any, gpu: str, deployment: str) -> tuple[ModelVariant, ...]:
    """Explicit variants (`custom`: tables {name, accuracy, base_s, per_request_s, actuation_s?}) if
    given, else the named set on `gpu`; sorted fastest first."""
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
    if custom is None:
        return variant_set(variants, gpu, deployment)
    variants = custom
    if not isinstance(variants, Sequence) or isinstance(variants, str) or not variants:
        raise ValueError("variants must be a variant-set name or a non-empty list of "
                         "{name, accuracy, base_s, per_request_s} tables")
    out = []
    for i, v in enumerate(variants):
        d = dict(v) if isinstance(v, (Mapping, tuple, list)) else None
        if d is None or not {"accuracy", "base_s", "per_request_s"} <= set(d):
            raise ValueError(f"variants[{i}] must be a table with accuracy, base_s and per_request_s")
        out.append(ModelVariant(str(d.get("name", f"v{i}")), float(d["accuracy"]), float(d["base_s"]),
                                float(d["per_request_s"]), float(d.get("actuation_s", 0.0))))
    return tuple(sorted(out, key=lambda v: (v.per_request_s, v.base_s)))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def fit_batch(variants: Sequence[ModelVariant], queued: int, slack_s: float) -> tuple[ModelVariant, int]:
    """SlackFit's choice for `queued` requests (already capped) with `slack_s` left to the head's
    deadline: the most accurate variant whose latency for all of them fits, else the fastest variant
    with the largest batch that fits, else the fastest variant with all of them."""
    for v in sorted(variants, key=lambda v: -v.accuracy):
        if v.latency_s(queued) <= slack_s:
            return v, queued
    fastest = variants[0]
    fits = min(fastest.max_batch_within(slack_s), queued)
    return fastest, (fits if fits >= 1 else queued)


@register(BATCHING, "slackfit")
class SlackFit:
    """SuperServe's SlackFit (arXiv 2312.16733): each static batch runs the most accurate model variant whose latency fits the oldest request's slack to the SLO.

    variants: a variant-set name (`llmsched.sim.variants.VARIANT_SETS`); custom_variants: a list
    of tables {name, accuracy, base_s, per_request_s, actuation_s} used instead; deployment:
    "subnetworks" (SubNetAct, no actuation delay) or "separate-models" (a switch loads the model);
    slo_s: the latency target (at least the fastest variant's single-request latency); max_batch:
    the batch cap.
    """

    PARAMS = declare(
        slo_s=number(0, low_open=True, doc="latency target per request, s (>= the fastest variant's latency)"),
        variants=one_of(*VARIANT_SETS, doc="a bundled variant set"),
        custom_variants=Param("list", optional=True, doc="tables {name, accuracy in [0, 1], base_s, "
                                                         "per_request_s, actuation_s} instead of the set"),
        deployment=one_of(*DEPLOYMENTS, doc="subnetworks (no actuation delay) or separate-models (load on switch)"),
        max_batch=integer(1, doc="requests per batch at most"))

    def __init__(self, slo_s: float = DEFAULT_SLO_S, variants: str = DEFAULT_VARIANTS,
                 custom_variants: Any = None, deployment: str = "subnetworks", max_batch: int = DEFAULT_MAX_BATCH,
                 instance_spec: Any = None) -> None:
        gpu = getattr(instance_spec, "gpu", "a100-80gb")
        self.variants = _variants(variants, custom_variants, gpu, deployment)
        self.deployment = deployment
        self.max_batch = _positive_int("max_batch", max_batch)
        if isinstance(slo_s, bool) or not isinstance(slo_s, (int, float)) or not math.isfinite(slo_s):
            raise ValueError(f"slo_s must be a finite number of seconds, got {slo_s!r}")
        fastest_s = float(self.variants[0].latency_s(1))
        if slo_s < fastest_s:
            raise ValueError(f"slo_s = {slo_s} s is below the fastest variant's latency "
                             f"({self.variants[0].name}: {fastest_s:.4g} s for one request)")
        self.slo_s = float(slo_s)
        self._batch_variant: ModelVariant | None = None  # the variant of the batch in progress

    def choose(self, queued: int, slack_s: float) -> tuple[ModelVariant, int]:
        return fit_batch(self.variants, queued, slack_s)

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view)
        if b.continue_static_batch():
            b.variant = self._batch_variant
            return b.plan()
        self._batch_variant = None
        waiting = view.waiting
        if not waiting:
            return b.plan()
        queued = min(len(waiting), self.max_batch, view.max_batch_requests)
        slack_s = view.arrival_s(waiting[0]) + self.slo_s - view.now
        variant, size = self.choose(queued, slack_s)
        for rid in waiting[:size]:
            if not b.admit(rid):
                break
        if b.admitted:
            self._batch_variant = variant
            b.variant = variant
        return b.plan()


@register(BATCHING, "fixed-variant")
class FixedVariant(SlackFit):
    """One static point of the latency-accuracy space (SuperServe's Clipper+ baseline): SlackFit's batching with a single model variant.

    variant: the name of one variant of `variants` / `custom_variants` (default: the most accurate).
    """

    PARAMS = declare(variant=text(doc="the variant's name ('' = the most accurate)"), deployment=None)

    def __init__(self, variant: str = "", slo_s: float = DEFAULT_SLO_S, variants: str = DEFAULT_VARIANTS,
                 custom_variants: Any = None, max_batch: int = DEFAULT_MAX_BATCH, instance_spec: Any = None) -> None:
        super().__init__(slo_s=slo_s, variants=variants, custom_variants=custom_variants, deployment="subnetworks",
                         max_batch=max_batch, instance_spec=instance_spec)
        names = [v.name for v in self.variants]
        chosen = variant or max(self.variants, key=lambda v: v.accuracy).name
        if chosen not in names:
            raise ValueError(f"unknown variant {chosen!r}; known: {', '.join(names)}")
        self.variant = chosen
        self.variants = tuple(v for v in self.variants if v.name == chosen)
        if self.slo_s < float(self.variants[0].latency_s(1)):
            raise ValueError(f"slo_s = {self.slo_s} s is below {chosen}'s latency for one request "
                             f"({float(self.variants[0].latency_s(1)):.4g} s)")


__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_SLO_S", "DEFAULT_VARIANTS", "FixedVariant", "SlackFit", "fit_batch"]
