"""Placement heuristics that feed the MILP: a stage-pipeline construction and a local search.

1. `stage_construction`: binary search on a target flow F; a greedy sweep over layers builds
   stages (each a set of nodes holding the same layer range) whose summed T_i(k) reaches F,
   taking the fastest remaining nodes first and the stage length that uses the fewest nodes per
   layer. Our own construction (Helix has no equivalent); it gives a chained plan quickly.
2. `local_search`: simulated annealing over (start, count) per node, scored by the exact max
   flow (`FastFlow`). Moves: re-place a node so that it chains onto existing boundaries, shift a
   shared boundary by +-1, swap two nodes' ranges, re-place a node at random. Deterministic for a
   seed; stops at the time limit or after `max_evals` evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from theory.placement.flow import FastFlow, FlowProblem, Placement


def stage_construction(p: FlowProblem, target: float) -> Placement | None:
    """Stages left to right; each stage picks, among lengths k, the set of unused nodes (fastest
    T_i(k) first) reaching `target` with the fewest node-layers per layer. None if it runs out."""
    L = p.L
    free = set(range(p.n))
    plc: Placement = {}
    b = 0
    while b < L:
        best = None
        for k in range(1, min(L - b, max(p.max_layers(i) for i in free) if free else 0) + 1):
            cand = sorted((i for i in free if p.max_layers(i) >= k), key=lambda i: -p.node_cap(i, k))
            tot, chosen = 0.0, []
            for i in cand:
                if tot >= target:
                    break
                chosen.append(i)
                tot += p.node_cap(i, k)
            if tot < target:
                continue
            # cost: nodes consumed per layer advanced, weighted by how "valuable" the nodes are
            cost = sum(max(p.max_layers(i) * p.node_cap(i, p.max_layers(i)), 1e-9) for i in chosen) / k
            if best is None or cost < best[0]:
                best = (cost, k, chosen)
        if best is None:
            return None
        _, k, chosen = best
        for i in chosen:
            plc[i] = (b, k)
            free.discard(i)
        b += k
    return plc


def best_stage_plan(p: FlowProblem, ff: FastFlow, hi: float) -> tuple[Placement, float]:
    """Binary search the largest target the stage construction reaches; return its plan + flow."""
    lo_val, best = 0.0, None
    lo, up = 0.0, hi
    for _ in range(30):
        mid = 0.5 * (lo + up)
        plc = stage_construction(p, mid)
        if plc is None:
            up = mid
        else:
            lo = mid
            v = ff.value(plc)
            if best is None or v > lo_val:
                best, lo_val = plc, v
        if up - lo < 1e-3 * max(up, 1.0):
            break
    if best is None:
        best = {i: (0, 1) for i in range(p.n)}
        lo_val = ff.value(best)
    return fill_unused(p, best), lo_val


def fill_unused(p: FlowProblem, plc: Placement) -> Placement:
    """Give every node a range (the MILP requires one): an unused node takes the first layers it
    can hold, which can only add flow paths (max flow is monotone in added arcs)."""
    out = dict(plc)
    for i in range(p.n):
        if i not in out:
            out[i] = (0, 1)
    return out


def _boundaries(plc: Placement, L: int) -> tuple[list[int], list[int]]:
    ends = sorted({s + k for s, k in plc.values()} | {0})
    starts = sorted({s for s, _ in plc.values()} | {L})
    return ends, starts


def local_search(p: FlowProblem, start: Placement, time_limit_s: float, seed: int = 0,
                 max_evals: int | None = None, ff: FastFlow | None = None,
                 progress: Callable[[float, float], None] | None = None,
                 temperature: float | None = None) -> tuple[Placement, float]:
    """Simulated annealing on the exact max-flow value; returns the best plan seen and its flow."""
    rng = np.random.default_rng(seed)
    ff = ff or FastFlow(p)
    L, n = p.L, p.n
    cur = dict(start)
    cur_v = ff.value(cur)
    best, best_v = dict(cur), cur_v
    t0 = time.monotonic()
    evals = 0
    T0 = temperature if temperature is not None else 0.02 * max(cur_v, 1.0)
    last_report = t0
    while True:
        now = time.monotonic()
        if now - t0 >= time_limit_s or (max_evals is not None and evals >= max_evals):
            break
        frac = (now - t0) / max(time_limit_s, 1e-9)
        temp = T0 * (1.0 - frac) + 1e-6
        cand = dict(cur)
        mv = rng.random()
        if mv < 0.45:  # chain-aware re-placement of one node
            i = int(rng.integers(n))
            others = {j: v for j, v in cur.items() if j != i}
            ends, starts = _boundaries(others, L)
            K = p.max_layers(i)
            s = int(rng.choice(ends))
            opts = [e for e in starts if s < e <= min(L, s + K)]
            if opts and rng.random() < 0.8:
                e = int(rng.choice(opts))
            else:
                e = min(L, s + int(rng.integers(1, K + 1)))
            if e <= s:
                continue
            cand[i] = (s, e - s)
        elif mv < 0.75:  # shift a boundary shared by several nodes
            ends, _ = _boundaries(cur, L)
            inner = [b for b in ends if 0 < b < L]
            if not inner:
                continue
            b = int(rng.choice(inner))
            d = 1 if rng.random() < 0.5 else -1
            ok = True
            for j, (s, k) in cur.items():
                if s + k == b:
                    nk = k + d
                    if not 1 <= nk <= p.max_layers(j):
                        ok = False
                        break
                    cand[j] = (s, nk)
                elif s == b:
                    nk = k - d
                    if not 1 <= nk <= p.max_layers(j) or s + d < 0:
                        ok = False
                        break
                    cand[j] = (s + d, nk)
            if not ok:
                continue
        elif mv < 0.9:  # swap two nodes' ranges
            i, j = (int(x) for x in rng.choice(n, 2, replace=False))
            (si, ki), (sj, kj) = cur[i], cur[j]
            if kj > p.max_layers(i) or ki > p.max_layers(j):
                continue
            cand[i], cand[j] = (sj, kj), (si, ki)
        else:  # random re-placement
            i = int(rng.integers(n))
            k = int(rng.integers(1, p.max_layers(i) + 1))
            s = int(rng.integers(0, L - k + 1))
            cand[i] = (s, k)
        v = ff.value(cand)
        evals += 1
        if v >= cur_v or rng.random() < math.exp((v - cur_v) / temp):
            cur, cur_v = cand, v
            if v > best_v + 1e-9:
                best, best_v = dict(cand), v
        if progress and now - last_report > 5.0:
            progress(now - t0, best_v)
            last_report = now
    return best, best_v
