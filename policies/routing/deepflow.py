"""DeepFlow / DeepServe `dist_sched` (Hu et al., arXiv 2501.14417, as outlined in
notes/fairness_locality.md §5.2; the listing itself is not public): an offline heatmap over
(prefill length, decode length) ranks instance types; a load-balance check over the candidates;
locality-aware choice by prefix match when balanced, least-load when not. The published listing
has the least-load call commented out ("deepflow-published"); "deepflow" completes it.

Owns the heatmap (computed once from the cost models the run simulates the instances with) and
nothing else.
"""

from __future__ import annotations

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, flag, integer, number
from llmsched.sim.policy_api import ClusterView

PREFILL_BINS = (128, 512, 2048, 8192, 32768)  # our choice: powers of 4 up to long context
DECODE_BINS = (16, 64, 256, 1024, 4096)  # our choice


def _bin(x: int, edges: tuple[int, ...]) -> int:
    return min(int(np.searchsorted(edges, x)), len(edges) - 1)


def estimated_latency_s(cost, prefill_tokens: int, decode_tokens: int, batch: int) -> float:
    """One request's latency on an instance type from its cost model: the prefill as one
    iteration plus `decode_tokens` iterations of a `batch`-wide decode at mid-request context."""
    from llmsched.sim.cost.base import BatchShape

    p, d = int(prefill_tokens), int(decode_tokens)
    pre = BatchShape.single(prefill_tokens=p, prefill_attention_pairs=p * (p + 1) // 2,
                            prefill_context_tokens=p, num_requests=1)
    dec = BatchShape.single(decode_tokens=batch, decode_context_tokens=batch * (p + d // 2), num_requests=batch)
    return float(cost.iteration_times(pre)[0]) + d * float(cost.iteration_times(dec)[0])


def build_heatmap(costs: list, batch: int, slack: float) -> dict[tuple[int, int], frozenset]:
    """Cell (prefill bin, decode bin) -> the instance types (indices into `costs`, one cost model
    per type) whose estimated latency is within (1 + slack) of the best type's."""
    out = {}
    for a, p in enumerate(PREFILL_BINS):
        for b, d in enumerate(DECODE_BINS):
            lat = [estimated_latency_s(c, p, d, batch) for c in costs]
            finite = [x for x in lat if np.isfinite(x)]
            best = min(finite) if finite else np.nan
            out[(a, b)] = frozenset(i for i, x in enumerate(lat)
                                    if not np.isfinite(x) or not np.isfinite(best) or x <= (1 + slack) * best)
    return out


@register(ROUTING, "deepflow")
class DeepFlow:
    """DeepFlow dist_sched, completed: heatmap candidates; if balanced ((max−min) ≤ abs or
    max ≤ rel·min in-flight requests), the candidate with the longest prefix match (then least
    load); else the least-loaded candidate.

    balance_abs_threshold / balance_rel_threshold: DeepFlow's "balanced" predicate is not
    published; we use the SGLang-router form with its Rust defaults (32, 1.1) — our choice.
    assumed_output_tokens: decode length used for the heatmap cell (unknown at dispatch; DeepServe
    mentions a predictor) unless oracle_output=True. batch: decode batch of the offline estimate.
    slack: types within (1 + slack) of the best latency are all candidates.
    """

    published = False

    PARAMS = declare(balance_abs_threshold=number(0), balance_rel_threshold=number(1),
              assumed_output_tokens=integer(1), oracle_output=flag(), batch=integer(1),
              slack=number(0))

    def __init__(self, balance_abs_threshold: float = 32.0, balance_rel_threshold: float = 1.1,
                 assumed_output_tokens: int = 256, oracle_output: bool = False, batch: int = 32,
                 slack: float = 0.1) -> None:
        self.abs_threshold = float(balance_abs_threshold)
        self.rel_threshold = float(balance_rel_threshold)
        self.assumed_output = int(assumed_output_tokens)
        self.oracle = bool(oracle_output)
        self.batch = int(batch)
        self.slack = float(slack)
        self._types: list[int] | None = None  # pool index -> type index
        self.heatmap: dict[tuple[int, int], frozenset] | None = None

    def _setup(self, view: ClusterView) -> None:
        """Group the pool's instances into types (same spec and same cost model) and rank the types
        on the run's own cost models, the ones the engine simulates them with."""
        keys: list[tuple] = []
        costs: list = []
        types = []
        for j in range(view.n_instances):
            stats = view.instance(j)
            key = (stats.spec, id(stats.cost_model))
            if key not in keys:
                keys.append(key)
                costs.append(stats.cost_model)
            types.append(keys.index(key))
        self._types = types
        self.heatmap = build_heatmap(costs, self.batch, self.slack)

    def candidates(self, rid: int, view: ClusterView) -> list[int]:
        if self.heatmap is None:
            self._setup(view)
        d = view.output_tokens(rid) if self.oracle else self.assumed_output
        cell = (_bin(view.prompt_tokens(rid), PREFILL_BINS), _bin(d, DECODE_BINS))
        assert self.heatmap is not None and self._types is not None  # both set by _setup
        ok = self.heatmap[cell]
        return [j for j in range(view.n_instances) if self._types[j] in ok]

    def route(self, rid: int, view: ClusterView) -> int:
        cand = self.candidates(rid, view)
        loads = {j: view.instance(j).waiting_count + view.instance(j).running_count for j in cand}
        hi, lo = max(loads.values()), min(loads.values())
        balanced = not ((hi - lo) > self.abs_threshold and hi > self.rel_threshold * lo)
        if balanced:  # locality_aware: prefix match against what each instance holds
            return max(cand, key=lambda j: (view.instance(j).prefix_match_tokens(rid), -loads[j], -j))
        if self.published:  # load_aware with select_tes_least_load commented out: first candidate
            return cand[0]
        return min(cand, key=lambda j: (loads[j], j))


@register(ROUTING, "deepflow-published")
class DeepFlowPublished(DeepFlow):
    """DeepFlow dist_sched as published: the imbalanced branch's least-load selection is commented
    out, so it returns the heatmap's first candidate (our reading of the listing)."""

    published = True
