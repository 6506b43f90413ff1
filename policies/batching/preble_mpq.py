"""Preble's local scheduler "fcfs-mpq" (`WukLab/preble`, Preble's SGLang fork
`python/sglang/srt/managers/router/model_rpc.py`; notes/fairness_locality.md §3.4): waiting
requests fall into 10 priority groups by prefix-cache hit ratio; groups are served from the
highest down, group g admitting at most (g + 1)·k requests per step (k = 10), FCFS inside a group.

Owns only the ordering; admission stops at the first request that does not fit (as `lpm`).
"""

from __future__ import annotations

from typing import Any

from llmsched.policies.batching.lpm import _Ordered
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, integer
from llmsched.sim.policy_api import InstanceView

N_GROUPS, K = 10, 10  # [CODE] "tune k to trade off between cache hit and fairness"


def group_of(view: InstanceView, rid: int, n_groups: int = N_GROUPS) -> int:
    """0 for a hit ratio of 0, else ceil(n_groups · hit_ratio) − 1."""
    total = view.remaining_prefill(rid)
    cached = view.cached_prefix_tokens(rid)
    if total <= 0 or cached <= 0:
        return 0
    return min(-(-n_groups * cached // total) - 1, n_groups - 1)  # exact integer ceil


def mpq_order(view: InstanceView, rids, k: int = K, n_groups: int = N_GROUPS) -> list[int]:
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    for r in rids:
        groups[group_of(view, r, n_groups)].append(r)
    out: list[int] = []
    for g in range(n_groups - 1, -1, -1):
        out.extend(groups[g][: (g + 1) * k])
    return out


@register(BATCHING, "preble-mpq")
class PrebleMPQ(_Ordered):
    """Preble fcfs-mpq: 10 hit-ratio groups served highest first, group g admitting ≤ (g+1)·k
    per step (k = 10), FCFS within a group."""

    PARAMS = declare(k=integer(1, doc="admissions per group step"))

    def __init__(self, k: int = K, admission: str = "engine", instance_spec: Any = None) -> None:
        super().__init__(admission, instance_spec)
        self.k = int(k)

    def order(self, view: InstanceView, rids) -> list[int]:
        return mpq_order(view, rids, self.k)
