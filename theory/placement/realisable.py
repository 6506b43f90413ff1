"""The realisable capacity model: Helix's node capacities T_i(k) plus the bandwidth-delay x KV limit.

Owns the length moments of the workload, the per-pass round trip of a placement's pipelines and the
per-node KV cap that follows from them; flow.py applies the caps, search code never sees them.
"""

# Derivation (docs/placement.md, "The realisable capacity model"). A request with prompt P and
# output D reserves (P + D) k_i KV entries on every node i of its path from admission until its
# last token reaches the sink (as the coordinator of `simulate.py` and Helix's scheduler do), and
# makes one prompt pass and D decode passes. Its lifetime is life = (D + 1) R + P Q, where R is the
# round trip of one pass (per node on the path one iteration tau_j, per link the latency, one
# token's transfer and the FIFO wait behind other messages) and Q the extra time per prompt token
# (a prompt needs P / p_j chunked iterations at node j and P tokens' transfer on each link).
# Little's law over the KV entries of node i: E[KV in use] = lambda_i E[(P + D) k_i life] <= K_i,
# and the node's token flow is f_i = lambda_i E[P + D], so
#     f_i <= K_i E[P + D] / (k_i (E[(P + D)(D + 1)] R_i + E[(P + D) P] Q_i)).
# R_i, Q_i are the flow-weighted means over the paths through i (IWRR splits requests in proportion
# to the flow). Per pass a node costs the residual of the iteration in progress when it is busy
# (probability U_i = f_i / T_i(k); the chunked typical iterations are alike, residual tau_i / 2) plus
# its own iteration tau_i; a link costs its latency, one token's transfer and the FIFO wait of an
# M/G/1 queue of one message per request item (Pollaczek-Khinchine, lambda E[S^2] / (2 (1 - rho)));
# a link at rho >= 1 has no finite round trip. Waits depend on the load, so the model takes Helix's
# max-flow split, scales it by t in [0, 1] and keeps the largest t at which every node's flow is
# within its KV cap at the waits of load t (bisection; the feasible t form an interval). This is
# the large-population limit of a mean-value analysis of the closed loop: the throughput at which
# the population the KV caches allow (Little) covers the round trip the same throughput causes.
# Assumptions (stated, not fitted): every node iterates at its typical batch (the operating point
# behind T_i(k), `profiles.typical_batch`); a pass waits at most the residual of one iteration at a
# node (no overflow of the batch caps); a link is a FIFO queue with Poisson arrivals; the split of
# the flow over parallel nodes is Helix's max-flow split (IWRR follows it).

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from llmsched.theory.placement.spec import SINK, SOURCE

if TYPE_CHECKING:
    from llmsched.theory.placement.flow import FlowProblem, Placement

BISECTION_STEPS = 24  # ours: steps of the bisection on the flow scale (resolution 2^-24 of the max flow)
# A realisable evaluation costs one max flow plus the bisection: measured on 3cluster24 (our plan, 24
# nodes, loaded 2-core machine) 8 ms against 0.4 ms for the max flow alone, with about 2 ms of
# local-search bookkeeping per evaluation either way, so the work budget counts it as five.
EVAL_COST_MAX_FLOWS = 5
NODE_RESIDUAL = 0.5  # residual of an iteration in progress / its length (alike iterations: E[t^2]/(2E[t]) = t/2)


@dataclass(frozen=True)
class LengthMoments:
    """Moments of the request lengths the simulator draws (`simulate._PlanRun.draw`): prompt P and
    output D, lognormal with coefficient of variation `cv` around the means, floored to integers
    >= 1, lengths above the caps redrawn (truncation). cv = 0: every request has the means."""

    cv: float
    e_tokens: float  # E[P + D]
    e_tokens_passes: float  # E[(P + D)(D + 1)]
    e_tokens_prompt: float  # E[(P + D) P]
    e_prompt_sq: float  # E[P^2]
    e_output: float


def _pmf(mean: int, cv: float, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and probabilities of max(1, int(X)), X lognormal (mean, cv), conditioned on <= cap."""
    from scipy.stats import lognorm

    sigma = math.sqrt(math.log1p(cv**2))
    dist = lognorm(s=sigma, scale=math.exp(math.log(mean) - sigma**2 / 2))
    xs = np.arange(1, cap + 1, dtype=float)
    upper = dist.cdf(xs + 1)
    lower = np.concatenate([[0.0], upper[:-1]])  # value 1 collects X in (0, 2)
    pr = upper - lower
    return xs, pr / pr.sum()


@lru_cache(maxsize=16)
def length_moments(cv: float, prompt_mean: int = 750, output_mean: int = 240,
                   prompt_cap: int = 2048, output_cap: int = 1024) -> LengthMoments:
    """Exact moments of the simulator's length distribution (P and D independent)."""
    if cv <= 0:
        p, d = float(prompt_mean), float(output_mean)
        return LengthMoments(0.0, p + d, (p + d) * (d + 1), (p + d) * p, p * p, d)
    xp, pp = _pmf(prompt_mean, cv, prompt_cap)
    xd, pd = _pmf(output_mean, cv, output_cap)
    ep, ep2 = float(xp @ pp), float(xp**2 @ pp)
    ed, ed2 = float(xd @ pd), float(xd**2 @ pd)
    return LengthMoments(cv, ep + ed, ep * (ed + 1) + ed2 + ed, ep2 + ep * ed, ep2, ed)


@dataclass(frozen=True)
class RealisableSpec:
    """What the realisable model needs beyond the flow problem: the length moments and the share
    of each node's KV cache that admission may fill (the simulator's `kv_fraction`)."""

    moments: LengthMoments
    kv_fraction: float = 1.0


def realisable_spec(length_cv: float = 0.0, kv_fraction: float = 1.0) -> RealisableSpec:
    from llmsched.theory.placement.profiles import AVG_INPUT_LEN, AVG_OUTPUT_LEN
    from llmsched.theory.placement.simulate import MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS

    return RealisableSpec(length_moments(float(length_cv), AVG_INPUT_LEN, AVG_OUTPUT_LEN,
                                         MAX_PROMPT_TOKENS, MAX_OUTPUT_TOKENS), kv_fraction)


@dataclass(frozen=True)
class _NodeTimes:
    tau_s: float  # one iteration of the typical batch (a decode pass)
    per_prompt_token_s: float  # extra time per prompt token (chunked: one iteration per chunk)
    kv_entries: float


@lru_cache(maxsize=8)
def _type_tables(model_key: str, type_counts: tuple[tuple[str, int], ...]) -> dict[str, list[_NodeTimes]]:
    """GPU type -> per k: iteration time, per-prompt-token time, KV entries (Helix's typical batch)."""
    from llmsched.theory.placement.profiles import load_profiles, typical_batch_table
    from llmsched.theory.placement.spec import MODELS

    model = next(m for m in MODELS.values() if m.profile_key == model_key)
    prof = load_profiles(model_key)
    table = typical_batch_table(model, dict(type_counts), "helix")
    out: dict[str, list[_NodeTimes]] = {}
    for g, batches in table.items():
        rows = []
        for k, b in enumerate(batches, start=1):
            pt, dt = max(1, b.prompt_tokens), max(1, b.decode_tokens)
            tau = k * (prof[g].prompt_time(pt) + prof[g].decode_time(dt))
            rows.append(_NodeTimes(tau, tau / pt, float(prof[g].kv_entries(k))))
        out[g] = rows
    return out


def node_times(p: FlowProblem) -> dict[str, list[_NodeTimes]]:
    return _type_tables(p.model.profile_key, tuple(sorted(p.cluster.type_counts().items())))


def _topology(p: FlowProblem, plc: Placement, link_cap: dict[tuple, float]) -> tuple[list, dict, dict, dict]:
    """The placement's DAG: nodes by start layer, each node's usable in- and out-links, their latencies."""
    L = p.L
    order = sorted(plc, key=lambda i: plc[i][0])
    ins: dict[int, list] = {i: [] for i in plc}
    outs: dict[int, list] = {i: [] for i in plc}
    lat: dict[tuple, float] = {}
    for u, v, _c, lt in p.edges:
        if (u, v) not in link_cap:
            continue
        if u == SOURCE and v in plc and plc[v][0] == 0:
            ins[v].append(u)
        elif v == SINK and u in plc and plc[u][0] + plc[u][1] == L:
            outs[u].append(v)
        elif u in plc and v in plc and plc[u][0] + plc[u][1] == plc[v][0]:
            outs[u].append(v)
            ins[v].append(u)
        else:
            continue
        lat[(u, v)] = lt
    return order, ins, outs, lat


def kv_caps(p: FlowProblem, plc: Placement, edge_flow: dict[tuple, float],
            link_cap: dict[tuple, float], topology: tuple[list, dict, dict, dict] | None = None) -> dict[int, float]:
    """Per placed node the KV cap K_i E[P+D] / (k_i (E[(P+D)(D+1)] R_i + E[(P+D)P] Q_i)) under the
    link loads `edge_flow` (tokens/s; `link_cap` their capacities). Nodes the flow does not use get
    the round trip of their fastest path (so the cap does not rule out flow they could carry)."""
    spec = p.realisable
    assert spec is not None
    m = spec.moments
    times = node_times(p)
    nt = {i: times[p.cluster.nodes[i].gpu_type][k - 1] for i, (_s, k) in plc.items()}
    f_node = _node_flows(plc, edge_flow)
    # a pass through node i: the residual of the running iteration when i is busy (probability
    # U_i = f_i / T_i(k); iterations of the chunked typical batch are alike, so the residual is
    # tau_i / 2), then its own iteration tau_i
    own = {i: (nt[i].tau_s * (1.0 + NODE_RESIDUAL * min(1.0, f_node[i] / p.node_cap(i, k))), nt[i].per_prompt_token_s)
           for i, (_s, k) in plc.items()}

    def link_times(u, v) -> tuple[float, float]:
        """(per-pass time, per-prompt-token time) of link u -> v at its current load."""
        c = link_cap[(u, v)]
        s = 1.0 / c  # seconds per token of this link's unit
        f = edge_flow.get((u, v), 0.0)
        rho = f / c
        if rho >= 1.0:  # a saturated FIFO link: the queue (and the round trip) grows without bound
            return math.inf, math.inf
        lam = f / m.e_tokens  # requests/s on the link
        wait = lam * s * s * (m.e_prompt_sq + m.e_output) / 2.0 / (1.0 - rho)  # Pollaczek-Khinchine
        return lat[(u, v)] + s + wait, s

    # the placement's DAG by start layer; prefix / suffix mean times per pass (R) and per prompt token (Q)
    order, ins, outs, lat = topology or _topology(p, plc, link_cap)
    lt_cache = {}

    def lt(u, v):
        if (u, v) not in lt_cache:
            lt_cache[(u, v)] = link_times(u, v)
        return lt_cache[(u, v)]

    inf = (math.inf, math.inf)
    pre: dict[int, tuple[float, float]] = {}
    for i in order:  # time from the source up to the start of i's iteration
        pre[i] = _mix([(edge_flow.get((u, i), 0.0),
                        _add(lt(u, i), (0.0, 0.0) if u == SOURCE else _add(pre[u], own[u])))
                       for u in ins[i] if u == SOURCE or pre.get(u, inf)[0] < math.inf])
    suf: dict[int, tuple[float, float]] = {}
    for i in reversed(order):  # time from the end of i's iteration to the sink
        suf[i] = _mix([(edge_flow.get((i, v), 0.0),
                        _add(lt(i, v), (0.0, 0.0) if v == SINK else _add(own[v], suf[v])))
                       for v in outs[i] if v == SINK or suf.get(v, inf)[0] < math.inf])
    caps = {}
    for i, (_s, k) in plc.items():
        R, Q = _add(_add(pre[i], own[i]), suf[i])
        if not math.isfinite(R):
            caps[i] = 0.0
            continue
        kv = spec.kv_fraction * nt[i].kv_entries
        caps[i] = kv * m.e_tokens / (k * (m.e_tokens_passes * R + m.e_tokens_prompt * Q))
    return caps


def _node_flows(plc: Placement, edge_flow: dict[tuple, float]) -> dict[int, float]:
    """Each placed node's flow (tokens/s): the sum of its incoming link flows."""
    f_node = dict.fromkeys(plc, 0.0)
    for (_u, v), f in edge_flow.items():
        if v in f_node:
            f_node[v] += f
    return f_node


def _add(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0], a[1] + b[1])


def _mix(opts: list[tuple[float, tuple[float, float]]]) -> tuple[float, float]:
    """Flow-weighted mean of (R, Q) over the incoming (or outgoing) options; the fastest when no
    option carries flow; (inf, inf) when there is none (the node is on no source-sink path)."""
    if not opts:
        return (math.inf, math.inf)
    w = sum(f for f, _ in opts)
    if w <= 0:
        return min((t for _, t in opts), key=lambda t: t[0])
    return (sum(f * t[0] for f, t in opts) / w, sum(f * t[1] for f, t in opts) / w)


def fixed_point_caps(p: FlowProblem, plc: Placement, solve) -> dict[int, float]:
    """Node caps of the realisable flow (`realisable_split`)."""
    return realisable_split(p, plc, solve)[0]


def realisable_split(p: FlowProblem, plc: Placement, solve) -> tuple[dict[int, float], dict[tuple, float]]:
    """(node caps, link flows) of the realisable flow: Helix's max-flow split scaled down to the
    largest load at which every node's KV cap holds with the waits that load causes.

    solve(None) returns (value, edge_flow, link_cap) of the placement's max flow under Helix's
    T_i(k). With the flow shares x_e = f_e / F of that split, the load t F (0 <= t <= 1) is
    realisable iff every used node i has t f_i <= KV cap_i(link loads t f_e). The KV caps fall and
    the node flows grow with t, so the realisable loads are an interval [0, t*]; bisection finds t*
    (deterministic, BISECTION_STEPS steps). The caps t* f_i admit exactly the flow t* F, and the
    link flows t* f_e are a flow that reaches it (the one the checker verifies)."""
    value, ef, lc = solve(None)
    if value <= 0:
        return dict.fromkeys(plc, 0.0), {}
    f_node = _node_flows(plc, ef)
    topology = _topology(p, plc, lc)

    def feasible(t: float) -> bool:
        caps = kv_caps(p, plc, {e: t * f for e, f in ef.items()}, lc, topology)
        return all(t * f_node[i] <= caps[i] * (1 + 1e-12) for i in plc if f_node[i] > 0)

    lo, hi = 0.0, 1.0
    if feasible(1.0):
        lo = 1.0
    else:
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            if feasible(mid):
                lo = mid
            else:
                hi = mid
    return {i: lo * f_node[i] for i in plc}, {e: lo * f for e, f in ef.items() if f > 0}
