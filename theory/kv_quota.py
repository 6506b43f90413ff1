"""Per-LLM KV-block quotas of MuxServe's ADBS as pure functions over plain dicts.

Owns the initial split and the periodic adaptation rule, shared by the engine policy
`policies/batching/muxserve_adbs.py` and the mesh simulator `theory/placement/muxserve.py` so the two
cannot drift apart. Holds no state and knows nothing of the engine or of any cost model.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# hao-ai-lab/MuxServe muxserve/muxsched/scheduler.py (commit 2249cfa):
SATURATED_UTIL = 0.9  # l.375: `if utilization >= 0.9` keeps its blocks (and may take more)
TARGET_UTIL = 0.95  # l.379-380: an under-used LLM frees `(0.95 - utilization) * max_bs` sequences
ADAPT_INTERVAL_S = 8.0  # l.986 and l.1126: `adapt_interval = 8` (seconds of the scheduler clock)


def initial_quotas(weights: Mapping[K, float], total_blocks: int) -> dict[K, int]:
    """Split `total_blocks` in proportion to `weights`, rounding each share down.

    MuxServe (scheduler.py l.502-511) weights each LLM by rate × KV blocks per token; the blocks
    lost to rounding (at most one per LLM) are not handed out here.
    """
    tot = sum(weights.values()) or 1.0
    return {k: int(total_blocks * w / tot) for k, w in weights.items()}


def utilisation(quota: Mapping[K, int], used: Mapping[K, int]) -> dict[K, float]:
    """Blocks held over blocks allowed (a zero quota counts as one block)."""
    return {k: used.get(k, 0) / max(q, 1) for k, q in quota.items()}


def takers(quota: Mapping[K, int], used: Mapping[K, int], backlog_blocks: Mapping[K, int],
           saturated: float = SATURATED_UTIL) -> list[K]:
    """LLMs at or above `saturated` utilisation that have a waiting backlog (in quota order)."""
    util = utilisation(quota, used)
    return [k for k in quota if util[k] >= saturated and backlog_blocks.get(k, 0) > 0]


def adapt_quotas(quota: Mapping[K, int], used: Mapping[K, int], backlog_blocks: Mapping[K, int],
                 saturated: float = SATURATED_UTIL, target: float = TARGET_UTIL) -> dict[K, int]:
    """One adaptation step: under-used LLMs give blocks to saturated ones with a backlog.

    Donors (utilisation < `saturated`) give min(free blocks, (target − utilisation)·quota),
    rounded down; takers (see `takers`) share the pool in proportion to their backlog's blocks,
    each share rounded down. Nothing moves unless there is at least one donor and one taker.
    This is the simplified block form of MuxServe's `adapt_max_num_seqs` (scheduler.py l.348-480,
    which works in sequences of an average length and steals ~10% of a batch per step); the
    blocks lost to rounding are returned to no one here (callers may keep them as spare).
    """
    util = utilisation(quota, used)
    donors = [k for k in quota if util[k] < saturated]
    tk = takers(quota, used, backlog_blocks, saturated)
    new = dict(quota)
    if not donors or not tk:
        return new
    pool = 0
    for k in donors:
        free = quota[k] - used.get(k, 0)
        give = max(0, int(min(free, (target - util[k]) * quota[k])))
        new[k] -= give
        pool += give
    demand = {k: backlog_blocks[k] for k in tk}
    tot = sum(demand.values())
    for k in tk:
        new[k] += int(pool * demand[k] / tot)
    return new
