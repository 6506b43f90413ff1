"""Compiled kernels of the engine's hot path, and the one switch that selects them.

Owns `JIT` (whether the kernels below are compiled) and four kernels, each doing one
segment's worth of array work in a single call:

* `decode_stats`: the plan's decodes -> KV blocks they need next iteration, their total context,
  and how many tokens the closest one has left before it must stop (`Instance._plan`,
  `_layout`, `_segment_length`);
* `roofline_segment`: `RooflineCost.segment_times` of a whole segment, the first iteration's
  extra seconds, the running sum of iteration ends, and the per-iteration cost/energy/busy-time
  rates (`Instance.start_segment`, `_segment_rates`);
* `segment_ends`: the same tail for any other cost model, from its iteration durations
  (`Instance._segment_ends`, `_segment_rates`);
* `apply_segment`: applying iterations a..m-1 to the decodes (tokens, KV blocks, token gaps,
  TBT misses), the segment's energy and busy time over a..m-1, and how many decodes reached
  their stop (`Instance._apply`, `_apply_decodes`, `finish_segment`).

They are compiled with Numba (`@njit(cache=True, fastmath=False)`: no FMA contraction, no
reassociation) when it is importable (`pip install llmsched[fast]`), and not used at all when it
is not or when the environment sets `LLMSCHED_NO_JIT=1`. Loading them costs each process about
0.3-0.5 s of CPU at their first call (Numba's start-up and its cache), so a run takes them only
when it has at least `MIN_REQUESTS` requests or they are loaded already (`use_for`, which then
loads them during the run's setup, before the event loop). Otherwise
the engine runs its NumPy path
(the code these kernels replace, kept in `llmsched.sim.instance` and `RooflineCost`). Every
kernel is a plain loop doing the same IEEE operations, in the same order, as that NumPy path
(sums are of integers; the running sum of iteration ends is sequential as `np.cumsum` is; maxima
propagate NaN as `np.maximum` does), so both paths give bit-identical runs
(tests/sim/test_kernels.py). The loops are also plain Python: `py_func` of each kernel runs
uncompiled.
"""

from __future__ import annotations

import math
import os

import numpy as np

JIT = False
if os.environ.get("LLMSCHED_NO_JIT", "") not in ("1", "true", "yes"):
    try:
        from numba import njit

        JIT = True
    except ImportError:  # the optional extra `fast` is not installed: the NumPy path runs
        pass

if not JIT:
    def njit(*_args, **_kwargs):  # type: ignore[no-redef]
        """Stand-in decorator without Numba: the function stays plain Python (never called by
        the engine then; tests run it as `py_func`)."""
        def wrap(f):
            f.py_func = f
            return f
        return wrap

#: the smallest run (requests) that takes the kernels while they are not loaded in this process yet:
#: about where the ~0.45 s of loading them pays back. Measured on ShareGPT, 4 A100s, Sarathi, a fresh
#: process per run: `run()` CPU 0.66 s compiled vs 0.47 s NumPy at 2,000 requests, 0.88 vs 1.02 s at
#: 4,000 (docs/performance.md, "Small runs"). Our choice from that measurement; the results are
#: the same bit for bit either way.
MIN_REQUESTS = 3000
_loaded = False  # whether a run in this process has taken the kernels (so they are loaded)


def use_for(n_requests: int) -> bool:
    """Whether a run of `n_requests` requests takes the kernels: compiled, and the run is large
    enough to pay for loading them or they are loaded already. The first run that takes them
    loads them here, during its setup, so the one-time cost is not the first segment's."""
    global _loaded
    if JIT and (_loaded or n_requests >= MIN_REQUESTS):
        if not _loaded:
            _start_up()
        _loaded = True
        return True
    return False


def _start_up() -> None:
    """Pay Numba's one-time start-up (its code generator, ~0.5 s) with one call on tiny arrays;
    the kernels' other signatures then load from the cache in milliseconds each."""
    decode_stats(np.zeros(1, dtype=np.int64), np.zeros((INT_ROWS, 1), dtype=np.int64), 1)


def loaded() -> bool:
    """Whether a run in this process has taken the kernels."""
    return _loaded


# The request columns the kernels read and write, as rows of `RequestTable.kernel_ints` (int64) and
# `RequestTable.kernel_floats` (float64): one argument each, rather than one per column (Numba's
# dispatch costs about 35 ns an argument, on every call).
COMPUTED, GENERATED, SHARED_TOKENS, HELD_BLOCKS, STOP_AT, TBT_MISSES, ENERGY_NJ = range(7)
INT_ROWS = ENERGY_NJ + 1
LAST_TOKEN_S, TBT_MAX_S, TBT_SLO_S = range(3)
FLOAT_ROWS = TBT_SLO_S + 1

# Roofline constants, in `roofline_consts` order (see RooflineCost.__post_init__ and params)
LIN_FLOP, LIN_WEIGHT, LIN_ACT, ATTN, KV, KVQO, ATTN_OVH, LAYER_OVH, HEAD_FLOP, HEAD_WEIGHT, ITER_OVH, \
    REQ_OVH, LAYERS = range(13)


@njit(cache=True, fastmath=False)
def _npmax(x: float, y: float) -> float:
    """np.maximum of two floats (NaN if either is NaN)."""
    if x >= y or x != x:
        return x
    return y


@njit(cache=True, fastmath=False)
def _record(j, dur, extra_s, end, ends, rates, cost_scale, energy_scale):
    """Iteration j of a segment lasting `dur` (plus `extra_s` if it is the first): its end after
    `end` into `ends[j]`, and its cost per token (integer pico-dollars, unless cost_scale < 0),
    energy per token (integer nJ) and busy ns (unless energy_scale < 0) into `rates[:, j]`, as
    `Instance._segment_rates` computes them. Returns (its end, its duration)."""
    if j == 0 and extra_s != 0.0:
        dur = dur + extra_s
    end = end + dur
    ends[j] = end
    if cost_scale >= 0.0:
        rates[0, j] = np.int64(np.rint(dur * cost_scale))
    if energy_scale >= 0.0:
        rates[1, j] = np.int64(np.rint(dur * energy_scale))
        rates[2, j] = np.int64(np.rint(dur * 1e9))
    return end, dur


@njit(cache=True, fastmath=False)
def decode_stats(d, ints, block_size):
    """(blocks the decodes `d` need for their next iteration, sum of their computed tokens,
    min(stop_at - generated) over them, or -1 when `d` is empty); `ints` = `kernel_ints`."""
    computed = ints[COMPUTED]
    shared = ints[SHARED_TOKENS]
    generated = ints[GENERATED]
    stop_at = ints[STOP_AT]
    need = 0
    ctx = 0
    rem = -1
    for i in range(d.shape[0]):
        rid = d[i]
        c = computed[rid]
        if (c - shared[rid]) % block_size == 0:
            need += 1
        ctx += c
        left = stop_at[rid] - generated[rid]
        if i == 0 or left < rem:
            rem = left
    return need, ctx, rem


@njit(cache=True, fastmath=False)
def roofline_segment(C, com, now, extra_s, pt, sum_c2, pairs0, pctx0, dt, dctx0, nreq, n,
                     cost_scale, energy_scale, ends, rates):
    """One segment's iteration ends under the roofline model (see `RooflineCost.segment_times`
    for the shape; C = `RooflineCost.roofline_consts()`, com = the iteration's all-reduce
    seconds), with `extra_s` added to the first iteration, starting at `now`.

    Writes the iteration ends into `ends[:n]` and, as `Instance._segment_rates` computes them,
    the cost per token (integer pico-dollars) into `rates[0, :n]` unless cost_scale < 0, and the
    energy per token (integer nJ) and busy ns into `rates[1, :n]` and `rates[2, :n]` unless
    energy_scale < 0 (buffers the caller keeps: returning new arrays costs more than the loop).
    Returns the first iteration's duration."""
    ptf = float(pt)
    dtf = float(dt)
    nreqf = float(nreq)
    tokens = ptf + dtf
    busy = tokens > 0
    attn = C[ATTN]
    kv = C[KV]
    kvqo = C[KVQO]
    lin = max(tokens * C[LIN_FLOP], (C[LIN_WEIGHT] if busy else 0.0) + tokens * C[LIN_ACT])
    pre_ovh = C[ATTN_OVH] if pt > 0 else 0.0
    dec_ovh = C[ATTN_OVH] if dt > 0 else 0.0
    lovh = C[LAYER_OVH] if busy else 0.0
    head = max(nreqf * C[HEAD_FLOP], C[HEAD_WEIGHT]) if busy else 0.0
    over = C[ITER_OVH] + C[REQ_OVH] * nreqf if busy else 0.0
    layers = C[LAYERS]
    ptkvqo = ptf * kvqo
    dtkvqo = dtf * kvqo
    end = now
    first = 0.0
    for j in range(n):
        pre = _npmax(float(pairs0 + j * sum_c2) * attn, (float(pctx0 + j * pt) - ptf) * kv + ptkvqo) + pre_ovh
        dctx = float(dctx0 + j * dt)
        dec = _npmax((dctx + dtf) * attn, dctx * kv + dtkvqo) + dec_ovh
        layer = lin + pre + dec + com + lovh
        end, dur = _record(j, layer * layers + head + over, extra_s, end, ends, rates, cost_scale, energy_scale)
        if j == 0:
            first = dur
    return first


@njit(cache=True, fastmath=False)
def segment_ends(durations, now, extra_s, cost_scale, energy_scale, ends, rates):
    """`roofline_segment` after its durations, for a cost model's own `durations` (n of them):
    `extra_s` added to the first, the running sum of ends from `now` into `ends[:n]`, and the
    cost, energy and busy-time rates into `rates[:, :n]` (as there). Returns the first duration."""
    end = now
    first = 0.0
    for j in range(durations.shape[0]):
        end, dur = _record(j, durations[j], extra_s, end, ends, rates, cost_scale, energy_scale)
        if j == 0:
            first = dur
    return first


@njit(cache=True, fastmath=False)
def apply_segment(d, a, m, ends, seg_energy, seg_busy, ints, floats, has_slo, block_size, stopped):
    """Apply iterations a..m-1 (ending at `ends[a..m-1]`) to the decodes `d`: k = m - a tokens
    each, KV blocks held (ceil((computed - shared) / block)), the largest token gap, TBT misses
    (gaps above the request's SLO) when `has_slo`, the segment's energy per token over a..m-1
    (`ints`, `floats` = the request table's `kernel_ints`, `kernel_floats`).

    Returns (energy per token over a..m-1 (0 if `seg_energy` is empty), busy ns over a..m-1,
    blocks to allocate (new minus old held), decodes that reached `stop_at`); those decodes, in
    the order of `d`, are the first entries of `stopped` (at least as long as `d`)."""
    computed = ints[COMPUTED]
    generated = ints[GENERATED]
    energy_nj = ints[ENERGY_NJ]
    shared = ints[SHARED_TOKENS]
    held = ints[HELD_BLOCKS]
    stop_at = ints[STOP_AT]
    tbt_misses = ints[TBT_MISSES]
    last_token = floats[LAST_TOKEN_S]
    tbt_max = floats[TBT_MAX_S]
    tbt_slo = floats[TBT_SLO_S]
    k = m - a
    energy = 0
    busy = 0
    if seg_energy.shape[0]:
        for j in range(a, m):
            energy += seg_energy[j]
            busy += seg_busy[j]
    inner_max = -math.inf
    if k > 1:
        inner_max = ends[a + 1] - ends[a]
        for j in range(a + 1, m - 1):
            g = ends[j + 1] - ends[j]
            if g > inner_max:
                inner_max = g
    first_end = ends[a]
    last_end = ends[m - 1]
    alloc = 0
    stops = 0
    for i in range(d.shape[0]):
        rid = d[i]
        c = computed[rid] + k
        computed[rid] = c
        gen = generated[rid] + k
        generated[rid] = gen
        if energy:
            energy_nj[rid] += energy
        new_held = (c - shared[rid] + (block_size - 1)) // block_size
        alloc += new_held - held[rid]
        held[rid] = new_held
        first_gap = first_end - last_token[rid]
        gap = _npmax(first_gap, inner_max) if k > 1 else first_gap
        tbt_max[rid] = _npmax(tbt_max[rid], gap)
        last_token[rid] = last_end
        if has_slo:
            slo = tbt_slo[rid]
            misses = 1 if first_gap > slo else 0
            for j in range(a, m - 1):
                if ends[j + 1] - ends[j] > slo:
                    misses += 1
            tbt_misses[rid] += misses
        if gen >= stop_at[rid]:
            stopped[stops] = rid
            stops += 1
    return energy, busy, alloc, stops
