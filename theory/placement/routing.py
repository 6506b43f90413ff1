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


# --------------------------------------------------------------------------- hop-by-hop routers
# The baselines' request schedulers (Helix `SchedulingMethod` swarm / random (naive) / shortest_queue)
# choose a request's next node when its prompt leaves a node, not a whole path at admission; decode
# passes then follow the prompt's path (KV locality), as in Helix.
#
# Swarm (Ryabinin et al., ICML'23, Appendix C "stochastic wiring"; Helix
# `simulator/scheduler/swarm/swarm_scheduler.py`, re-derived): every node keeps, per next hop j, an
# exponential moving average ema_j of the time from the moment a request starts crossing the link to
# j until j has computed it (link + queue + compute at j), ema_j <- gamma * dt + (1 - gamma) * ema_j,
# and a priority p_j (both start at epsilon). It sends the next request to argmin_j p_j and adds
# ema_j to that p_j: a deterministic weighted round-robin in which hop j gets a long-run share
# (1 / ema_j) / sum_k (1 / ema_k), i.e. traffic in proportion to the throughput each hop shows.
# Every pass (prompt and each decode iteration) that crosses the link reports its dt (Helix gives
# each iteration its own request uid). Links into the sink report nothing.
# Constants: Helix `simulator/event_simulator/cluster_simulator.py::init_scheduler`
# (SwarmParameters(initial_priority=0.05, smoothing_parameter=0.8, max_on_the_fly_request=99999)).
SWARM_INITIAL_PRIORITY_S = 0.05
SWARM_SMOOTHING = 0.8
HOP_ROUTERS = ("swarm", "random", "shortest_queue")
ROUTERS = ("maxflow", *HOP_ROUTERS)


@dataclass
class SwarmNextHop:
    """One node's Swarm wiring over its next hops (in the given order; ties go to the earlier hop)."""

    hops: list
    initial_priority_s: float = SWARM_INITIAL_PRIORITY_S
    smoothing: float = SWARM_SMOOTHING
    ema_s: dict = field(default_factory=dict)
    priority: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ema_s = dict.fromkeys(self.hops, self.initial_priority_s)
        self.priority = dict.fromkeys(self.hops, self.initial_priority_s)

    def choose(self):
        order = {j: n for n, j in enumerate(self.hops)}
        best = min(self.hops, key=lambda j: (self.priority[j], order[j]))
        self.priority[best] += self.ema_s[best]
        return best

    def observe(self, hop, delay_s: float) -> None:
        """A request sent to `hop` took `delay_s` from link start to the end of its compute there."""
        self.ema_s[hop] = self.smoothing * delay_s + (1.0 - self.smoothing) * self.ema_s[hop]

    def shares(self) -> dict:
        """Long-run next-hop probabilities at the current estimates: proportional to 1 / ema_j."""
        inv = {j: 1.0 / self.ema_s[j] for j in self.hops}
        total = sum(inv.values())
        return {j: x / total for j, x in inv.items()}


class HopRouter:
    """Next-hop choice per node for the baseline schedulers.

    out_hops: node -> its next hops (SOURCE included; SINK may be a hop). policy "swarm" uses
    `SwarmNextHop`; "random" picks uniformly (Helix `naive_scheduler.py` shuffles the free links);
    "shortest_queue" picks the hop with the fewest queued items (`queue_len`), the sink counting as
    empty, ties at random (Helix `shortest_queue_scheduler.py`)."""

    def __init__(self, policy: str, out_hops: dict, rng, queue_len: Callable[[object], int] | None = None):
        if policy not in HOP_ROUTERS:
            raise ValueError(f"hop router must be one of {HOP_ROUTERS}, got {policy!r}")
        self.policy, self.rng, self.queue_len = policy, rng, queue_len
        self.out_hops = {u: list(h) for u, h in out_hops.items()}
        self.swarm = {u: SwarmNextHop(h) for u, h in self.out_hops.items()} if policy == "swarm" else {}

    def next_hop(self, u):
        hops = self.out_hops.get(u)
        if not hops:
            return None
        if self.policy == "swarm":
            return self.swarm[u].choose()
        if self.policy == "shortest_queue" and self.queue_len is not None:
            qlen = {j: 0 if j == SINK else self.queue_len(j) for j in hops}
            low = min(qlen.values())
            hops = [j for j in hops if qlen[j] == low]
        return hops[int(self.rng.integers(len(hops)))]

    def observe(self, u, v, delay_s: float) -> None:
        if self.policy == "swarm" and u in self.swarm:
            self.swarm[u].observe(v, delay_s)
