"""Router / global-scheduler decision latency: what one routing decision costs, as a function of
the router's state. The engine (`llmsched.sim.engine`) serialises decisions at one global
scheduler (a FIFO router queue): a decision starts when the previous one ends, sees the cluster
as it is when it starts, and the request reaches its instance `cost_s(...)` seconds later.

Only the entry router's decisions for arriving requests (and released child tasks) queue; pinned
requests, decode-pool routing and re-routing after a lost transfer stay instant.
Owns only the cost formula; a router opts in by exposing `decision_latency` (a `RouterLatency`)
and, for a state-dependent cost, `decision_state_nodes()` (the size of its prefix tree).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouterLatency:
    """Seconds per routing decision = base_s + per_instance_s · instances + per_tree_node_s · tree
    nodes. `source` says where the constants come from (or that they are our choice). All zero
    (the default) means instant decisions: the engine then bypasses the router queue entirely."""

    base_s: float = 0.0
    per_instance_s: float = 0.0
    per_tree_node_s: float = 0.0
    source: str = "off"

    def __post_init__(self) -> None:
        for name in ("base_s", "per_instance_s", "per_tree_node_s"):
            v = getattr(self, name)
            if not (v >= 0.0 and v < float("inf")):
                raise ValueError(f"router decision latency {name} must be finite and >= 0 (got {v})")

    @property
    def active(self) -> bool:
        return self.base_s > 0 or self.per_instance_s > 0 or self.per_tree_node_s > 0

    def cost_s(self, n_instances: int, tree_nodes: int = 0) -> float:
        return self.base_s + self.per_instance_s * n_instances + self.per_tree_node_s * tree_nodes
