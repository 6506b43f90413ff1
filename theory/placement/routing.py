"""Request routing over a placement's max flow: interleaved weighted round-robin (IWRR) per node.

Pure decision logic; the simulation that uses it lives in simulate.py.
"""

# Helix `simulator/scheduler/global_maxflow/interleaved_weighted_round_robin.py` (re-derived): each
# node keeps, per outgoing edge j with max-flow value w_j, a virtual load; a request of size x goes to
# argmin_j load_j + x / w_j among unmasked j, and that load grows by x / w_j. Over time edge j gets
# a share w_j / sum w of the work. Masks (Helix `scheduler_core.py`): an edge carrying < 5% of the
# node's outgoing flow, a next node whose prompt limit is below the prompt length, or one without
# KV room for the request (the caller's `kv_ok`).

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmsched.theory.placement.spec import SINK, SOURCE

MIN_FLOW_SHARE = 0.05  # Helix scheduler_core.py: candidates below 5% of the used out-flow are masked


@dataclass
class IWRR:
    """One node's interleaved weighted round-robin over its outgoing flow edges."""

    weights: dict  # next hop -> flow (tokens/s)
    load: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = sum(self.weights.values())
        self.weights = {j: w for j, w in self.weights.items() if w > 0 and w >= MIN_FLOW_SHARE * total}
        self.load = {j: 0.0 for j in self.weights}

    def choose(self, size: float, allowed: Callable[[object], bool] | None = None):
        best, best_key = None, None
        for j, w in self.weights.items():
            if allowed is not None and not allowed(j):
                continue
            key = self.load[j] + size / w
            if best_key is None or key < best_key or (key == best_key and str(j) < str(best)):
                best, best_key = j, key
        if best is not None:
            self.load[best] += size / self.weights[best]
        return best


class FlowRouter:
    """Routes a request source -> ... -> sink along positive-flow edges with per-node IWRR."""

    def __init__(self, edge_flow: dict[tuple, float]):
        out: dict = {}
        for (u, v), f in edge_flow.items():
            out.setdefault(u, {})[v] = f
        self.iwrr = {u: IWRR(w) for u, w in out.items()}

    def route(self, size: float, allowed: Callable[[object], bool] | None = None) -> list | None:
        """The node sequence (without source/sink) or None if every choice at some hop is masked."""
        path = []
        u = SOURCE
        for _ in range(10_000):
            if u not in self.iwrr:
                return None
            v = self.iwrr[u].choose(size, allowed)
            if v is None:
                return None
            if v == SINK:
                return path
            path.append(v)
            u = v
        return None
