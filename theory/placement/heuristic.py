"""Placement heuristics that feed the MILP: stage construction, type-class DP, local search.

Pure search over placements scored by `FastFlow`; no solver calls, no I/O.
"""

# 1. `stage_construction`: binary search on a target flow F; a greedy sweep over layers builds
#    stages (each a set of nodes holding the same layer range) whose summed T_i(k) reaches F,
#    taking the fastest remaining nodes first and the stage length that uses the fewest nodes per
#    layer. Our own construction (Helix has no equivalent); it gives a chained plan quickly.
# 2. `type_dp_plan`: DP over layer ranges per GPU type (group sizes x layers covered), binary
#    search on the target; ignores links, so it is a seed for full-mesh clusters.
# 3. `local_search`: simulated annealing over (start, count) per node, scored by the exact max
#    flow (`FastFlow`). Moves: re-place a node so that it chains onto existing boundaries, shift a
#    shared boundary by +-1, swap two nodes' ranges, re-place a node at random. Deterministic for a
#    seed; stops at the time limit or after `max_evals` evaluations.

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from llmsched.theory.placement.flow import FastFlow, FlowProblem, Placement


def stage_construction(p: FlowProblem, target: float, rng: np.random.Generator | None = None,
                       noise: float = 0.0) -> Placement | None:
    """Stages left to right; each stage picks, among lengths k, unused nodes in order of their
    effective rate min(T_i(k), link capacity from the previous stage into i) until the stage
    reaches `target`, preferring the choice that consumes the least node capacity per layer
    (optionally perturbed by multiplicative `noise`). None if the nodes run out."""
    L = p.L
    free = set(range(p.n))
    plc: Placement = {}
    prev: list[int] | None = None  # None = the source
    link = _link_caps(p)
    b = 0
    while b < L:
        best = None
        kmax = max((p.max_layers(i) for i in free), default=0)
        for k in range(1, min(L - b, kmax) + 1):
            eff = {}
            for i in free:
                if p.max_layers(i) < k:
                    continue
                inc = link["src"].get(i, 0.0) if prev is None else sum(link["ab"].get((j, i), 0.0) for j in prev)
                if b + k == L:
                    inc = min(inc, link["snk"].get(i, 0.0))
                eff[i] = min(p.node_cap(i, k), inc)
            cand = sorted(eff, key=lambda i: -eff[i])
            tot, chosen = 0.0, []
            for i in cand:
                if tot >= target or eff[i] <= 0:
                    break
                chosen.append(i)
                tot += eff[i]
            if tot < target:
                continue
            cost = sum(max(p.max_layers(i) * p.node_cap(i, p.max_layers(i)), 1e-9) for i in chosen) / k
            if rng is not None and noise > 0:
                cost *= float(np.exp(noise * rng.standard_normal()))
            if best is None or cost < best[0]:
                best = (cost, k, chosen)
        if best is None:
            return None
        _, k, chosen = best
        for i in chosen:
            plc[i] = (b, k)
            free.discard(i)
        prev = chosen
        b += k
    return plc


def _link_caps(p: FlowProblem) -> dict[str, dict]:
    out: dict[str, dict] = {"src": {}, "snk": {}, "ab": {}}
    for u, v, c, _ in p.edges:
        if u == "source":
            out["src"][v] = c
        elif v == "sink":
            out["snk"][u] = c
        else:
            out["ab"][(u, v)] = c
    return out


def _bisect_target(build, ff: FastFlow, hi: float, steps: int, rel_tol: float,
                   best: Placement | None, best_v: float) -> tuple[Placement | None, float]:
    """Bisect the largest per-node throughput target `build(target)` can still place, keeping the
    plan with the highest exact flow seen (plans at lower targets can carry more flow)."""
    lo, up = 0.0, hi
    for _ in range(steps):
        mid = 0.5 * (lo + up)
        plc = build(mid)
        if plc is None:
            up = mid
        else:
            lo = mid
            v = ff.value(plc)
            if v > best_v:
                best, best_v = plc, v
        if up - lo < rel_tol * max(up, 1.0):
            break
    return best, best_v


def best_stage_plan(p: FlowProblem, ff: FastFlow, hi: float, restarts: int = 8,
                    seed: int = 0) -> tuple[Placement, float]:
    """Binary search the largest target the stage construction reaches (deterministic, then
    `restarts` noisy variants); return the best plan found and its exact flow."""
    rng = np.random.default_rng(seed)
    best, best_v = None, -1.0
    for r in range(restarts + 1):
        def build(target: float, r: int = r) -> Placement | None:
            return stage_construction(p, target, rng if r else None, 0.3 if r else 0.0)

        best, best_v = _bisect_target(build, ff, hi, 30, 1e-3, best, best_v)
    if best is None:
        best = {i: (0, 1) for i in range(p.n)}
    best = fill_unused(p, best)
    return best, ff.value(best)


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


MAX_TRIES_PER_EVAL = 50  # a work-budgeted run also stops after this many proposals per allowed evaluation


def local_search(p: FlowProblem, start: Placement, time_limit_s: float, seed: int = 0,
                 max_evals: int | None = None, ff: FastFlow | None = None,
                 progress: Callable[[float, float], None] | None = None,
                 temperature: float | None = None, stop_at: float = float("inf"),
                 stats: dict | None = None) -> tuple[Placement, float]:
    """Simulated annealing on the exact max-flow value; returns the best plan seen and its flow.

    With `max_evals` the temperature cools over evaluations (evals / max_evals) and the run is a
    pure function of (start, seed, max_evals): `time_limit_s` is then only a safety cap, and
    `stats["hit_time_cap"]` says whether it cut the run short (which makes it load dependent).
    Without it, cooling follows elapsed wall-clock time (the result depends on machine speed)."""
    rng = np.random.default_rng(seed)
    ff = ff or FastFlow(p)
    cur = dict(start)
    cur_v = ff.value(cur)
    best, best_v = dict(cur), cur_v
    t0 = time.monotonic()
    evals = 0
    T0 = temperature if temperature is not None else 0.02 * max(cur_v, 1.0)
    last_report = t0
    _, cut_nodes, cut_links = ff.cut(cur)
    tries, hit_cap = 0, False
    while True:
        now = time.monotonic()
        if (max_evals is not None and (evals >= max_evals or tries >= MAX_TRIES_PER_EVAL * max(max_evals, 1))) \
                or best_v >= stop_at:
            break
        if now - t0 >= time_limit_s:
            hit_cap = max_evals is not None
            break
        frac = evals / max(max_evals, 1) if max_evals is not None else (now - t0) / max(time_limit_s, 1e-9)
        temp = T0 * (1.0 - frac) + 1e-6
        cand = dict(cur)
        tries += 1
        if not _propose(p, cur, cand, rng, rng.random(), cut_nodes, cut_links):
            continue
        v = ff.value(cand)
        evals += 1
        if v >= cur_v or rng.random() < math.exp((v - cur_v) / temp):
            changed = v != cur_v
            cur, cur_v = cand, v
            if changed or rng.random() < 0.05:
                _, cut_nodes, cut_links = ff.cut(cur)
            if v > best_v + 1e-9:
                best, best_v = dict(cand), v
        if progress and now - last_report > 5.0:
            progress(now - t0, best_v)
            last_report = now
    if stats is not None:
        stats.update({"evals": evals, "hit_time_cap": hit_cap, "seconds": time.monotonic() - t0})
    return best, best_v


# -- local_search's moves: each fills `cand` (a copy of `cur`) and returns False when it does not
# apply, in which case the iteration is skipped without an evaluation.
def _propose(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator, mv: float,
             cut_nodes: list, cut_links: list) -> bool:
    """One move, chosen by the uniform draw `mv`: the min-cut moves first when there is a cut."""
    if cut_links and mv < 0.1:
        return _widen_cut_link(p, cur, cand, rng, cut_links)
    if cut_nodes and mv < 0.25:
        return _relieve_cut_node(p, cur, cand, rng, cut_nodes)
    if mv < 0.45:
        return _replace_chained(p, cur, cand, rng)
    if mv < 0.75:
        return _shift_boundary(p, cur, cand, rng)
    if mv < 0.9:
        return _swap_ranges(p, cur, cand, rng)
    return _replace_random(p, cand, rng)


def _widen_cut_link(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator, cut_links: list) -> bool:
    """Widen a min-cut link: put a node in parallel to one end, and repair its old range."""
    i, j = cut_links[int(rng.integers(len(cut_links)))]
    end = i if rng.random() < 0.5 else j
    a = int(rng.integers(p.n))
    s_e, k_e = cur[end]
    if a in (i, j) or k_e > p.max_layers(a):
        return False
    sa, ka = cur[a]
    cand[a] = (s_e, k_e)
    # repair a's old range: extend a neighbour that chains onto it, if its limit allows
    for q, (sq, kq) in cur.items():
        if q == a:
            continue
        if sq + kq == sa and kq + ka <= p.max_layers(q):
            cand[q] = (sq, kq + ka)
            break
        if sq == sa + ka and kq + ka <= p.max_layers(q):
            cand[q] = (sa, kq + ka)
            break
    return True


def _relieve_cut_node(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator, cut_nodes: list) -> bool:
    """Relieve a min-cut node: split its range with another node, or add a node in parallel."""
    i = int(rng.choice(cut_nodes))
    s, k = cur[i]
    j = int(rng.integers(p.n))
    if j == i:
        return False
    if k >= 2 and rng.random() < 0.5:
        k1 = int(rng.integers(1, k))
        if max(k1, k - k1) > p.max_layers(j):
            return False
        if rng.random() < 0.5:
            cand[i], cand[j] = (s, k1), (s + k1, k - k1)
        else:
            cand[j], cand[i] = (s, k1), (s + k1, k - k1)
    else:
        if k > p.max_layers(j):
            return False
        cand[j] = (s, k)
    return True


def _replace_chained(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator) -> bool:
    """Chain-aware re-placement of one node: start where another range ends, end where one starts."""
    L = p.L
    i = int(rng.integers(p.n))
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
        return False
    cand[i] = (s, e - s)
    return True


def _shift_boundary(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator) -> bool:
    """Shift a layer boundary shared by several nodes one layer up or down."""
    ends, _ = _boundaries(cur, p.L)
    inner = [b for b in ends if 0 < b < p.L]
    if not inner:
        return False
    b = int(rng.choice(inner))
    d = 1 if rng.random() < 0.5 else -1
    for j, (s, k) in cur.items():
        if s + k == b:
            nk = k + d
            if not 1 <= nk <= p.max_layers(j):
                return False
            cand[j] = (s, nk)
        elif s == b:
            nk = k - d
            if not 1 <= nk <= p.max_layers(j) or s + d < 0:
                return False
            cand[j] = (s + d, nk)
    return True


def _swap_ranges(p: FlowProblem, cur: Placement, cand: dict, rng: np.random.Generator) -> bool:
    """Swap two nodes' layer ranges."""
    i, j = (int(x) for x in rng.choice(p.n, 2, replace=False))
    (si, ki), (sj, kj) = cur[i], cur[j]
    if kj > p.max_layers(i) or ki > p.max_layers(j):
        return False
    cand[i], cand[j] = (sj, kj), (si, ki)
    return True


def _replace_random(p: FlowProblem, cand: dict, rng: np.random.Generator) -> bool:
    """Random re-placement of one node."""
    i = int(rng.integers(p.n))
    k = int(rng.integers(1, p.max_layers(i) + 1))
    s = int(rng.integers(0, p.L - k + 1))
    cand[i] = (s, k)
    return True


def type_dp_plan(p: FlowProblem, target: float, max_group: int = 8) -> Placement | None:
    """DP over layer ranges per GPU type (ours): nodes with identical T_i(.) form a class; a group
    of m nodes of one class holding the same range of c layers carries m*T(c) >= target, so a class
    of n nodes covers best(n) = max_m best(n - m) + c(m) layers (unbounded knapsack over group
    sizes). Feasible if the classes together cover L layers; the stages are then laid out class by
    class (fastest class first) and the last stages trimmed to end exactly at L. Ignores links."""
    classes: dict[tuple, list[int]] = {}
    for i in range(p.n):
        classes.setdefault(tuple(round(t, 6) for t in p.caps[i]), []).append(i)
    plans = []
    total = 0
    for caps, nodes in classes.items():
        n = len(nodes)

        def cover(m: int, caps=caps) -> int:
            ks = [k for k in range(1, len(caps) + 1) if m * caps[k - 1] >= target]
            return max(ks) if ks else 0

        best = [0] * (n + 1)
        choice = [0] * (n + 1)
        for j in range(1, n + 1):
            best[j], choice[j] = best[j - 1], 0  # leave one node idle
            for m in range(1, min(j, max_group) + 1):
                c = cover(m)
                if c and best[j - m] + c > best[j]:
                    best[j], choice[j] = best[j - m] + c, m
        groups = []
        j = n
        idle = 0
        while j > 0:
            m = choice[j]
            if m == 0:
                idle += 1
                j -= 1
                continue
            groups.append((m, cover(m)))
            j -= m
        plans.append((max(caps), nodes, groups))
        total += best[n]
    if total < p.L:
        return None
    plans.sort(key=lambda x: -x[0])
    plc: Placement = {}
    b = 0
    for _, nodes, groups in plans:
        it = iter(nodes)
        for m, c in groups:
            if b >= p.L:
                break
            c = min(c, p.L - b)
            for _ in range(m):
                plc[next(it)] = (b, c)
            b += c
    return plc if b == p.L else None


def best_type_dp_plan(p: FlowProblem, ff: FastFlow, hi: float) -> tuple[Placement | None, float]:
    best, best_v = _bisect_target(lambda target: type_dp_plan(p, target), ff, hi, 40, 1e-4, None, -1.0)
    if best is not None:
        best = fill_unused(p, best)
        best_v = ff.value(best)
    return best, best_v
