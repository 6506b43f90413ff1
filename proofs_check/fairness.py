"""Fairness checkers over a saved run: VTC's U / 2U / 4U bounds and latency theorems 4.11 and 4.13, work
conservation, DLPM's 2(U+Q_u).

Owns the algorithms (backlogged intervals from waiting occupancy, worst service difference by a
linear scan of the running difference per pair, counter replay for the gap lemma) and the
`llmsched check` entries. Bounds come from `llmsched.theory.fairness`; statements and the exact sampling
convention are in docs/theory/fairness.md. Must not run simulations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.proofs_check._service_log import (
    SavedRun,
    ServiceGrid,
    instance_ids,
    interleaved_samples,
    load_run,
    runs_of,
    service_grid,
)
from llmsched.proofs_check.registry import checker
from llmsched.proofs_check.verdict import Verdict
from llmsched.sim.errors import InputError
from llmsched.theory import fairness as bounds

# Float slack for comparing a measured service difference with a bound (token counts are integers
# times the weights, so anything above this is a real excess).
EPS = 1e-6


# ----------------------------------------------------------------------------------- witnesses
@dataclass(frozen=True)
class PairExcess:
    """The worst difference found: f, g, the sample interval [t1, t2], W_f, W_g over it."""

    instance: int
    client_f: int
    client_g: int
    t1_s: float
    t2_s: float
    backlog_start_s: float
    backlog_end_s: float
    W_f: float
    W_g: float
    value: float
    bound: float

    def as_witness(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "client_f": self.client_f, "client_g": self.client_g,
            "interval_s": [self.t1_s, self.t2_s],
            "backlogged_interval_s": [self.backlog_start_s, self.backlog_end_s],
            "W_f": self.W_f, "W_g": self.W_g, "difference": self.value, "bound": self.bound,
        }


def _sample_time(grid: ServiceGrid, i: int) -> float:
    k = min(i // 2, grid.n - 1)
    return float(grid.times[k]) if grid.n else 0.0


def _run_end_time(grid: ServiceGrid, e: int) -> float:
    return float(grid.times[e]) if e < grid.n else float("inf")


def _segment_reduce(d: np.ndarray, lo: np.ndarray, hi: np.ndarray, fn) -> np.ndarray:
    """fn.reduceat over the disjoint, increasing slices [lo_j, hi_j) of a padded 1-d array."""
    idx = np.column_stack([lo, hi]).ravel()
    return fn.reduceat(d, idx)[::2]


def worst_backlogged_pair(grid: ServiceGrid, X: np.ndarray,
                          pair_bound: Callable[[int, int], float]) -> tuple[PairExcess | None, int]:
    """Largest |W_f(t1,t2) − W_g(t1,t2)| / bound over all pairs and all [t1, t2) on which both
    are backlogged. For each pair and each maximal common backlogged run, the answer is
    max D − min D of D = X_f − X_g over the run's samples (one pass). O(C² · n) for C clients and
    n change points. Returns the worst (by ratio to its bound) and the number of runs examined."""
    B = grid.waiting > 0
    C = len(grid.clients)
    best: PairExcess | None = None
    best_ratio = -1.0
    n_runs = 0
    for a in range(C):
        if not B[:, a].any():
            continue
        for b in range(a + 1, C):
            mask = B[:, a] & B[:, b]
            if not mask.any():
                continue
            s, e = runs_of(mask)
            n_runs += len(s)
            lo, hi = 2 * s, 2 * e + 1
            d = X[:, a] - X[:, b]
            rng = _segment_reduce(d, lo, hi, np.maximum) - _segment_reduce(d, lo, hi, np.minimum)
            j = int(np.argmax(rng))
            fa, fb = int(grid.clients[a]), int(grid.clients[b])
            bound = pair_bound(fa, fb)
            ratio = rng[j] / bound if bound > 0 else (np.inf if rng[j] > EPS else 0.0)
            if ratio > best_ratio:
                seg = d[lo[j]:hi[j]]
                i_max, i_min = lo[j] + int(np.argmax(seg)), lo[j] + int(np.argmin(seg))
                i1, i2 = min(i_max, i_min), max(i_max, i_min)
                best_ratio = ratio
                best = PairExcess(
                    grid.instance, fa, fb, _sample_time(grid, i1), _sample_time(grid, i2),
                    float(grid.times[s[j]]), _run_end_time(grid, e[j]),
                    float(X[i2, a] - X[i1, a]), float(X[i2, b] - X[i1, b]), float(rng[j]), bound)
    return best, n_runs


def worst_backlogged_vs_any(grid: ServiceGrid, X: np.ndarray,
                            bound: float) -> tuple[PairExcess | None, int]:
    """Largest W_g(t1,t2) − W_f(t1,t2) over f backlogged on [t1, t2) and any client g ≠ f.

    Per f and run: the rise of D = X_g − X_f (max over ordered samples i1 ≤ i2 of D[i2] − D[i1]),
    computed for all g at once with a per-run running minimum. O(C² · n)."""
    B = grid.waiting > 0
    C = len(grid.clients)
    best: PairExcess | None = None
    n_runs = 0
    for a in range(C):
        if not B[:, a].any() or C < 2:
            continue
        s, e = runs_of(B[:, a])
        n_runs += len(s)
        lengths = 2 * e + 1 - 2 * s
        ids = np.repeat(np.arange(len(s)), lengths)
        idx = np.concatenate([np.arange(2 * s0, 2 * e0 + 1) for s0, e0 in zip(s, e)])
        d = X[idx] - X[idx, a][:, None]
        cummin = pd.DataFrame(d).groupby(ids).cummin().to_numpy()
        rise = d - cummin
        rise[:, a] = -np.inf
        flat = int(np.argmax(rise))
        row, col = divmod(flat, C)
        value = float(rise[row, col])
        if best is None or value > best.value:
            run = ids[row]
            start = int(np.searchsorted(ids, run))
            i2 = int(idx[row])
            i1 = int(idx[start + int(np.argmin(d[start:row + 1, col]))])
            best = PairExcess(
                grid.instance, int(grid.clients[a]), int(grid.clients[col]),
                _sample_time(grid, i1), _sample_time(grid, i2), float(grid.times[s[run]]),
                _run_end_time(grid, e[run]), float(X[i2, a] - X[i1, a]),
                float(X[i2, col] - X[i1, col]), value, bound)
    return best, n_runs


# ------------------------------------------------------------------------------ counter replay
def replay_counter_gap(grid: ServiceGrid, input_weight: float, output_weight: float,
                       weights: dict[int, float] | None = None, lift: str = "paper",
                       ) -> tuple[float, dict[str, Any] | None]:
    """Rebuild VTC's counters c = (w_p·I + w_q·O)/w_client + lift offset from a seq-level grid
    and return the largest max−min of c over waiting clients (and where it happened).

    A client whose waiting count rises from 0 at a change point has just arrived to an empty own
    queue: it is lifted to the least counter among the other waiting clients, or, when none
    waits, to the largest counter among the clients whose requests left the queue at the latest
    dispatch change point (lift="paper"); lift="artifact" skips that second case; lift="none"
    never lifts. Assumes no preemption (a requeue looks like an arrival; VTC is non-preemptive).
    """
    C = len(grid.clients)
    w = np.ones(C) if not weights else np.array([float(weights.get(int(c), 1.0)) for c in grid.clients])
    raw = (input_weight * grid.inputs + output_weight * grid.outputs) / w
    pre_raw = (input_weight * np.vstack([np.zeros((1, C)), grid.inputs[:-1]])
               + output_weight * grid.outputs) / w
    off = np.zeros(C)
    last_left: np.ndarray | None = None  # clients that left the queue at the latest dispatch row
    worst, where = 0.0, None
    prev_wait = np.zeros(C)
    prev_inputs = np.zeros(C)
    for k in range(grid.n):
        # state just before this change point's events (counters grew by decodes only)
        q = prev_wait > 0
        if q.sum() >= 2:
            c = pre_raw[k] + off
            gap = float(c[q].max() - c[q].min())
            if gap > worst:
                worst, where = gap, {"time_s": float(grid.times[k]), "seq": int(grid.seqs[k]),
                                     "when": "before", "counters": _counters(grid, c, q)}
        wait = grid.waiting[k]
        c_now = raw[k] + off
        joined = np.flatnonzero((prev_wait == 0) & (wait > 0))
        for u in joined:
            if lift == "none":
                break
            others = (prev_wait > 0)
            others[u] = False
            if others.any():
                target = float(c_now[others].min())
            elif lift == "paper" and last_left is not None:
                target = float(c_now[last_left].max())
            else:
                continue
            if c_now[u] < target:
                off[u] += target - c_now[u]
                c_now[u] = target
        left = np.flatnonzero(grid.inputs[k] > prev_inputs)
        if len(left):
            last_left = left
        q = wait > 0
        if q.sum() >= 2:
            gap = float(c_now[q].max() - c_now[q].min())
            if gap > worst:
                worst, where = gap, {"time_s": float(grid.times[k]), "seq": int(grid.seqs[k]),
                                     "when": "after", "counters": _counters(grid, c_now, q)}
        prev_wait, prev_inputs = wait, grid.inputs[k]
    return worst, where


def _counters(grid: ServiceGrid, c: np.ndarray, q: np.ndarray) -> dict[str, float]:
    return {str(int(grid.clients[i])): float(c[i]) for i in np.flatnonzero(q)}


# ------------------------------------------------------------------------ work conservation
def work_conservation_violations(run: SavedRun, instance: int, reserve_output: bool = False,
                                 limit: int = 5) -> tuple[list[dict[str, Any]], int]:
    """Change points at which the instance under-used its capacity while requests waited.

    Definition (docs/theory/fairness.md): at an admission opportunity with a non-empty waiting
    queue, the next iteration must be full in some resource: every request slot used, the whole
    token budget used, or free KV memory too small for at least one waiting request (its prompt,
    plus its output when `reserve_output`, in which case the memory promised to the running
    requests' whole outputs counts as used; default: the run's policy used admission="reserve"). An idle instance (nothing running) with waiting
    requests for a positive time is always a violation. With admission_interval > 1 only idling
    is checked (the log does not say which iterations were admission opportunities).
    """
    spec = run.instance_spec(instance)
    slots = int(spec.get("max_batch_requests", 256))
    budget = int(spec.get("token_budget", 512))
    block = int(spec.get("block_size", 16))
    interval = int(spec.get("admission_interval", 1))
    found: list[dict[str, Any]] = []
    checked = 0
    grid = service_grid(run.service, instance, collapse_time=True)
    idle = (grid.running.sum(axis=1) == 0) & (grid.waiting.sum(axis=1) > 0)
    for k in np.flatnonzero(idle[:-1]):
        if grid.times[k + 1] > grid.times[k]:
            found.append({"instance": instance, "time_s": float(grid.times[k]), "kind": "idle",
                          "until_s": float(grid.times[k + 1]),
                          "waiting": int(grid.waiting[k].sum())})
    tl = run.timeline
    req = run.requests
    if interval == 1 and len(tl) and len(req):
        tl = tl[(tl["instance"] == instance) & (tl["waiting"] > 0)]
        inst_col = req["prefill_instance"].where(req["prefill_instance"] >= 0, req["instance"])
        if len(instance_ids(run.service)) <= 1:
            inst_col = inst_col.where(inst_col >= 0, instance)
        mine = req[inst_col == instance]
        arrival = mine["arrival_s"].to_numpy()
        dispatch = mine["dispatch_s"].fillna(np.inf).to_numpy()
        finish = (mine["finish_s"].fillna(np.inf).to_numpy() if "finish_s" in mine
                  else np.full(len(mine), np.inf))
        need_tokens = mine["prompt_tokens"].to_numpy() + (mine["output_tokens"].to_numpy()
                                                          if reserve_output else 0)
        if "preemptions" in mine:  # a requeued request recomputes prompt + generated tokens
            pre = mine["preemptions"].to_numpy() > 0
            need_tokens = np.where(pre, mine["prompt_tokens"].to_numpy()
                                   + mine["output_tokens"].to_numpy(), need_tokens)
        need_blocks = -(-need_tokens // block)
        for row in tl.itertuples(index=False):
            checked += 1
            if row.batch_requests >= slots or row.prefill_tokens + row.decode_tokens >= budget:
                continue
            if reserve_output:  # memory promised to the running requests' whole outputs
                running = (dispatch <= row.time_s) & (finish > row.time_s)
                free_blocks = row.kv_blocks_total - int(need_blocks[running].sum())
            else:
                # each running decode may need one new block next iteration (engine keeps it free)
                free_blocks = row.kv_blocks_total - row.kv_blocks_used - row.decode_tokens
            waiting = (arrival <= row.time_s) & (dispatch > row.time_s)
            if not waiting.any() or need_blocks[waiting].max() > free_blocks:
                continue
            if row.waiting > waiting.sum():  # requeued (preempted) requests of unknown need wait too
                continue
            found.append({"instance": instance, "time_s": float(row.time_s), "kind": "under-filled",
                          "batch_requests": int(row.batch_requests),
                          "tokens": int(row.prefill_tokens + row.decode_tokens),
                          "free_kv_blocks": int(free_blocks), "waiting": int(waiting.sum()),
                          "largest_waiting_need_blocks": int(need_blocks[waiting].max())})
            if len(found) >= limit:
                break
    return found, checked + int(idle.sum())


# ------------------------------------------------------------------------------ options/scale
def _scale(run: SavedRun, instance: int, opts: dict[str, Any]) -> bounds.ServiceScale:
    M = opts.get("M")
    L = opts.get("L_input")
    return bounds.ServiceScale(
        input_weight=float(opts.get("input_weight", run.input_weight)),
        output_weight=float(opts.get("output_weight", run.output_weight)),
        max_input_tokens=int(L) if L is not None else run.max_input_tokens(),
        kv_capacity_tokens=int(M) if M is not None else run.kv_capacity_tokens(instance),
    )


def _weights(opts: dict[str, Any]) -> dict[int, float] | None:
    """`-o weights=1,2,3` gives client i weight w_i (others 1)."""
    text = opts.get("weights")
    if text is None:
        return None
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise InputError("--option", "weights", f"expected comma-separated numbers, got {text!r}") from None
    if any(v <= 0 for v in vals):
        raise InputError("--option", "weights", "client weights must be > 0")
    return dict(enumerate(vals))


_SCALE = {"input_weight", "output_weight", "M", "L_input", "instance"}
#: The options each checker reads; any other is an input error, never silently ignored.
_OPTIONS: dict[str, set[str]] = {
    "vtc-u": _SCALE | {"weights", "lift"},
    "vtc-2u": _SCALE | {"weights"},
    "vtc-4u": _SCALE,
    "vtc-latency": _SCALE,
    "vtc-non-overloaded": _SCALE,
    "dlpm-bound": _SCALE | {"quantum"},
    "work-conservation": {"reserve_output", "instance"},
}
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _check_opts(name: str, opts: dict[str, Any]) -> None:
    """Reject options the checker does not read and values of the wrong kind (exit 2, one line);
    numbers are parsed in place."""
    allowed = _OPTIONS[name]
    bad = set(opts) - allowed
    if bad:
        raise InputError(f"llmsched check {name}", ",".join(sorted(bad)), "unknown option",
                         f"use: {', '.join(sorted(allowed))}")
    for key in ("input_weight", "output_weight", "quantum"):
        if key in opts:
            opts[key] = _number(name, key, opts[key], integer=False)
    for key in ("M", "L_input", "instance"):
        if key in opts:
            opts[key] = _number(name, key, opts[key], integer=True)
    if "reserve_output" in opts:
        flag = _FLAGS.get(str(opts["reserve_output"]).lower())
        if flag is None:
            raise InputError(f"llmsched check {name}", "reserve_output",
                             f"expected 1/0/true/false, got {str(opts['reserve_output'])!r}")
        opts["reserve_output"] = flag


def _number(name: str, key: str, value: Any, integer: bool) -> float | int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not np.isfinite(x) or x < 0 or (integer and x != int(x)):
        kind = "a whole number >= 0" if integer else "a number >= 0"
        raise InputError(f"llmsched check {name}", key, f"expected {kind}, got {str(value)!r}")
    return int(x) if integer else x


def _instances(run: SavedRun, opts: dict[str, Any]) -> list[int]:
    ids = instance_ids(run.service)
    if "instance" in opts:
        if int(opts["instance"]) not in ids:
            raise InputError(f"{run.path}", "instance", f"no instance {opts['instance']} in the run's service log",
                             f"use one of: {', '.join(map(str, ids)) or '(none)'}")
        return [int(opts["instance"])]
    return ids


def _as_run(path_or_run: Path | str | SavedRun) -> SavedRun:
    return path_or_run if isinstance(path_or_run, SavedRun) else load_run(path_or_run)


# ------------------------------------------------------------------------------ hypothesis
#: The admission mode under which the VTC and DLPM bounds are proved (docs/theory/fairness.md,
#: "Admission modes"): non-preemptive, every admitted request's prompt + output reserved.
THEOREM_ADMISSION = "reserve"


def theorem_hypothesis(run: SavedRun) -> dict[str, Any]:
    """Does the run satisfy the theorems' hypothesis? {"inside": bool | None, "note": str, ...}.

    Inside iff every instance's policy ran with admission="reserve" and no request was preempted.
    A run that does not record its admission mode (saved before summaries recorded resolved policy
    parameters, when the default was "engine") is reported as unknown.
    """
    n = len(run.instance_specs()) or 1
    recorded = bool(run.policy_params.get("batching"))
    modes = sorted({str(run.instance_spec(i).get("batching_params", {}).get(
        "admission", "none" if recorded else "not recorded")) for i in range(n)})
    preemptions = (int(run.requests["preemptions"].sum())
                   if len(run.requests) and "preemptions" in run.requests.columns else 0)
    info: dict[str, Any] = {"admission": modes, "preemptions": preemptions}
    if modes == [THEOREM_ADMISSION] and preemptions == 0:
        return {**info, "inside": True, "note": ""}
    if "not recorded" in modes:
        note = ("admission mode not recorded in the run (older runs defaulted to 'engine'); the theorem "
                "assumes admission='reserve'")
        return {**info, "inside": None, "note": note}
    reasons = []
    if "none" in modes:
        names = sorted({str(run.instance_spec(i).get("batching", "?")) for i in range(n)})
        reasons.append(f"batching {'/'.join(names)} has no admission mode: not a VTC/DLPM-family policy")
    elif modes != [THEOREM_ADMISSION]:
        reasons.append(f"admission={'/'.join(modes)}")
    if preemptions:
        reasons.append(f"{preemptions} preemptions")
    note = (f"outside the theorem's hypothesis ({', '.join(reasons)}; the bound is proved for "
            "admission='reserve', non-preemptive): a violation here is not a counterexample to it")
    return {**info, "inside": False, "note": note}


def _with_hypothesis(v: Verdict, run: SavedRun) -> Verdict:
    hyp = theorem_hypothesis(run)
    summary = v.summary + (f"; NOTE: {hyp['note']}" if hyp["note"] else "")
    return Verdict(v.name, v.ok, summary, v.witness, {**v.details, "hypothesis": hyp})


# ---------------------------------------------------------------------------------- checkers
def check_backlogged_pair(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """VTC Thm 4.4: |W_f − W_g| ≤ 2U on every interval where f and g are both backlogged."""
    _check_opts("vtc-2u", opts)
    run = _as_run(path)
    weights = _weights(opts)
    worst, worst_ratio, runs, scale = None, -1.0, 0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        grid = service_grid(run.service, inst)
        X = interleaved_samples(grid, scale.input_weight, scale.output_weight)
        if weights:
            X = X / np.array([weights.get(int(c), 1.0) for c in grid.clients])

            def pair(f: int, g: int, s=scale) -> float:
                return bounds.weighted_pair_bound(s, weights.get(f, 1.0), weights.get(g, 1.0))
        else:
            def pair(f: int, g: int, s=scale) -> float:  # noqa: ARG001 - same bound for every pair
                return bounds.backlogged_pair_bound(s)
        w, n = worst_backlogged_pair(grid, X, pair)
        runs += n
        if w is not None and w.value / max(w.bound, EPS) > worst_ratio:
            worst, worst_ratio = w, w.value / max(w.bound, EPS)
    return _with_hypothesis(_pair_verdict("vtc-2u", worst, runs, scale, "both backlogged"), run)


def check_backlogged_vs_any(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """VTC Thm 4.9: W_g − W_f ≤ 4U whenever f is backlogged (g any client)."""
    _check_opts("vtc-4u", opts)
    run = _as_run(path)
    worst, runs, scale = None, 0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        grid = service_grid(run.service, inst)
        X = interleaved_samples(grid, scale.input_weight, scale.output_weight)
        w, n = worst_backlogged_vs_any(grid, X, bounds.backlogged_vs_any_bound(scale))
        runs += n
        if w is not None and (worst is None or w.value - w.bound > worst.value - worst.bound):
            worst = w
    return _with_hypothesis(_pair_verdict("vtc-4u", worst, runs, scale, "f backlogged, g any"), run)


def check_counter_gap(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """VTC Lemma 4.3: max − min of the (replayed) VTC counters over waiting clients ≤ U."""
    _check_opts("vtc-u", opts)
    run = _as_run(path)
    weights = _weights(opts)
    lift = str(opts.get("lift", "paper"))
    if lift not in ("paper", "artifact", "none"):
        raise InputError("--option", "lift", f"unknown lift rule {lift!r}", "use paper, artifact or none")
    worst, where, bound, scale = 0.0, None, 0.0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        grid = service_grid(run.service, inst, collapse_time=False)
        gap, at = replay_counter_gap(grid, scale.input_weight, scale.output_weight, weights, lift)
        b = (bounds.weighted_gap_bound_all(scale, list(weights.values())) if weights
             else bounds.counter_gap_bound(scale))
        if at is not None and (where is None or gap - b > worst - bound):
            worst, where, bound = gap, {"instance": inst, **at}, b
    if scale is None:
        return Verdict("vtc-u", True, "no service rows: nothing to check")
    bound = bound or bounds.counter_gap_bound(scale)
    ok = worst <= bound + EPS
    summary = (f"largest counter gap over waiting clients {worst:.1f} vs U = {bound:.1f} "
               f"(U = max(w_p·L_input, w_q·M) = max({scale.input_weight:g}·{scale.max_input_tokens}, "
               f"{scale.output_weight:g}·{scale.kv_capacity_tokens}))")
    wit = None if ok else {**(where or {}), "gap": worst, "bound": bound}
    return _with_hypothesis(Verdict("vtc-u", ok, summary, wit, {"gap": worst, "bound": bound, "at": where}), run)


def dispatch_latency_cases(run: SavedRun, instance: int, scale: bounds.ServiceScale) -> list[dict[str, Any]]:
    """Theorem 4.11 on one instance: every request whose client had nothing waiting or running on
    the instance just before its arrival A, dispatched at D (never preempted or migrated), with the
    service the other clients received on [A, D) and the bounds.

    Service is read from the service log: the state just before A (the last change point before
    A) and the state at D, minus the prompt charges of other clients' requests dispatched exactly
    at D (they are charged at D, not in [A, D)).
    """
    req = run.requests
    if not len(req) or not len(run.service):
        return []
    grid = service_grid(run.service, instance)
    if grid.n == 0:
        return []
    wp, wq = scale.input_weight, scale.output_weight
    W = wp * grid.inputs + wq * grid.outputs  # (rows, clients) cumulative service
    n = len(grid.clients)
    mine = _requests_on(run, instance)
    mine = mine[np.isfinite(mine["dispatch_s"])]
    if "preemptions" in mine.columns:
        mine = mine[(mine["preemptions"] == 0) & (mine.get("migrations", 0) == 0)]
    disp = mine["dispatch_s"].to_numpy(np.float64)
    prompt = mine["prompt_tokens"].to_numpy(np.float64)
    clients = mine["client"].to_numpy(np.int64)
    out: list[dict[str, Any]] = []
    for rid, a, d, f in zip(mine["request_id"].to_numpy(), mine["arrival_s"].to_numpy(np.float64), disp, clients):
        if f not in set(grid.clients.tolist()):
            continue
        col = grid.column(int(f))
        k_a = int(np.searchsorted(grid.times, a, side="left")) - 1  # state just before A
        if k_a >= 0 and (grid.waiting[k_a, col] > 0 or grid.running[k_a, col] > 0):
            continue  # f backlogged or running at A: outside the theorem's hypothesis
        k_d = int(np.searchsorted(grid.times, d, side="right")) - 1  # state at D
        others = np.ones(n, bool)
        others[col] = False
        before = W[k_a, others].sum() if k_a >= 0 else 0.0
        at_d = W[k_d, others].sum() if k_d >= 0 else 0.0
        charged_at_d = wp * prompt[(disp == d) & (clients != f)].sum()
        service = max(at_d - charged_at_d - before, 0.0)
        wait = d - a
        bound = bounds.dispatch_service_bound(scale, n)
        out.append({"request_id": int(rid), "client": int(f), "instance": instance, "arrival_s": float(a),
                    "dispatch_s": float(d), "wait_s": float(wait), "others_service": float(service),
                    "service_bound": float(bound), "n_clients": n,
                    "mean_service_rate": float(service / wait) if wait > 0 else None,
                    "latency_bound_s": (float(bounds.dispatch_latency_bound(scale, n, service / wait))
                                        if wait > 0 and service > 0 else None)})
    return out


def check_dispatch_latency(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """VTC Thm 4.11: a request of a client with nothing queued or running waits for dispatch while
    the others receive at most 2(n−1)U of service; hence D − A ≤ 2(n−1)U/a when S(t) ≥ a."""
    _check_opts("vtc-latency", opts)
    run = _as_run(path)
    worst, checked, scale = None, 0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        for case in dispatch_latency_cases(run, inst, scale):
            checked += 1
            if worst is None or case["others_service"] - case["service_bound"] > \
                    worst["others_service"] - worst["service_bound"]:
                worst = case
    if worst is None:
        return _with_hypothesis(Verdict("vtc-latency", True, "no request arrived to an idle client: nothing "
                                        "to check", None, {"checked": 0}), run)
    ok = worst["others_service"] <= worst["service_bound"] + EPS
    lat = worst["latency_bound_s"]
    summary = (f"{checked} requests arriving to an idle client; worst: others received "
               f"{worst['others_service']:.1f} of service while request {worst['request_id']} waited "
               f"{worst['wait_s']:.4g} s, bound 2(n−1)U = {worst['service_bound']:.1f} (n = {worst['n_clients']}"
               + (f"; latency bound at its mean service rate {lat:.4g} s" if lat is not None else "") + ")")
    return _with_hypothesis(Verdict("vtc-latency", ok, summary, None if ok else worst,
                                    {"checked": checked, "worst": worst}), run)


def _requests_on(run: SavedRun, instance: int) -> pd.DataFrame:
    """The requests queued on `instance` (the prefill instance once dispatched, else the routed
    one), rejected requests left out (they never wait in a queue)."""
    req = run.requests
    if not len(req):
        return req
    inst = req["instance"]
    if "prefill_instance" in req.columns:
        inst = req["prefill_instance"].where(req["prefill_instance"] >= 0, inst)
    keep = inst == instance
    if "rejected" in req.columns:
        keep &= ~req["rejected"].astype(bool)
    return req[keep]


def non_overloaded_cases(run: SavedRun, instance: int, scale: bounds.ServiceScale,
                         ) -> tuple[dict[str, Any] | None, int, int]:
    """Theorem 4.13 on one instance, in the form its proof gives (docs/theory/fairness.md): for
    every client f, every backlog period of f starting at s (nothing of f waiting just before s)
    and every change point t2 in (s, e] (e: the period's end) — so a request of f that arrived in
    [s, t2) is not dispatched before t2 — the service f requested on [s, t2) satisfies
    R_f(s, t2) ≥ T(s, t2)/n(s, t2) − 5U.

    R_f: w_p·prompt + w_q·output of f's requests arriving in [s, t2) on this instance; T: service
    to all clients on [s, t2) (sampling convention of docs/theory/fairness.md); n: the clients
    with service on [s, t2), f included. Between change points T grows and R_f, n stay fixed, so
    the change points are the worst t2. Returns the worst point (largest T/n − R_f, with a
    witness request), the number of backlog periods and the number of (s, t2) points checked.
    """
    grid = service_grid(run.service, instance)
    if grid.n == 0:
        return None, 0, 0
    wp, wq = scale.input_weight, scale.output_weight
    X = interleaved_samples(grid, wp, wq)[0:2 * grid.n:2]  # X at each change point, its dispatches excluded
    mine = _requests_on(run, instance)
    slack = bounds.non_overloaded_slack(scale)
    worst: dict[str, Any] | None = None
    periods = checked = 0
    for col, f in enumerate(grid.clients.tolist()):
        starts, ends = runs_of(grid.waiting[:, col] > 0)
        if not len(starts):
            continue
        rf = mine[mine["client"] == f].sort_values("arrival_s", kind="stable")
        arrival = rf["arrival_s"].to_numpy(np.float64)
        demand = wp * rf["prompt_tokens"].to_numpy(np.float64) + wq * rf["output_tokens"].to_numpy(np.float64)
        cum = np.concatenate([[0.0], np.cumsum(demand)])
        for s, e in zip(starts.tolist(), ends.tolist()):
            k2 = np.arange(s + 1, min(e, grid.n - 1) + 1)
            periods += 1
            if not len(k2):
                continue
            W = X[k2] - X[s]  # service of every client on [s, t2)
            T = W.sum(axis=1)
            served = W > EPS
            served[:, col] = True
            n = served.sum(axis=1)
            t2 = grid.times[k2]
            R = cum[np.searchsorted(arrival, t2, side="left")] - cum[np.searchsorted(arrival, grid.times[s], side="left")]
            value = T / n - R
            checked += len(k2)
            j = int(np.argmax(value))
            if worst is None or value[j] > worst["fair_share_minus_requested"]:
                t2j = float(t2[j])
                dispatch = rf["dispatch_s"].fillna(np.inf).to_numpy(np.float64)
                waiting = np.flatnonzero((arrival >= grid.times[s]) & (arrival < t2j) & (dispatch >= t2j))
                r = int(waiting[0]) if len(waiting) else None
                worst = {
                    "instance": instance, "client": int(f),
                    "request_id": int(rf["request_id"].iloc[r]) if r is not None else None,
                    "arrival_s": float(arrival[r]) if r is not None else None,
                    "dispatch_s": (float(dispatch[r]) if r is not None and np.isfinite(dispatch[r]) else None),
                    "t1_s": float(grid.times[s]), "t2_s": t2j,
                    "requested_service": float(R[j]), "total_service": float(T[j]), "n_clients": int(n[j]),
                    "threshold": float(bounds.non_overloaded_margin(scale, float(T[j]), int(n[j]))),
                    "fair_share_minus_requested": float(value[j]), "bound": slack, "U": scale.U}
    return worst, periods, checked


def check_non_overloaded(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """VTC Thm 4.13: a request of a client that asks for less than T/n − 5U of service since its
    backlog began is dispatched; i.e. while f stays backlogged, T(s, t2)/n − R_f(s, t2) ≤ 5U."""
    _check_opts("vtc-non-overloaded", opts)
    run = _as_run(path)
    worst, periods, checked, scale = None, 0, 0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        w, p, c = non_overloaded_cases(run, inst, scale)
        periods += p
        checked += c
        if w is not None and (worst is None or w["fair_share_minus_requested"] - w["bound"]
                              > worst["fair_share_minus_requested"] - worst["bound"]):
            worst = w
    if worst is None:
        return _with_hypothesis(Verdict("vtc-non-overloaded", True, "no client waited: nothing to check", None,
                                        {"backlog_periods": periods, "checked": 0}), run)
    ok = worst["fair_share_minus_requested"] <= worst["bound"] + EPS
    summary = (f"{periods} backlog periods, {checked} (t1, t2) points; worst: client {worst['client']} asked for "
               f"R_f = {worst['requested_service']:.1f} of service on [{worst['t1_s']:.4g}, {worst['t2_s']:.4g}) s "
               f"while its fair share T/n was {worst['total_service']:.1f}/{worst['n_clients']}, "
               f"T/n − R_f = {worst['fair_share_minus_requested']:.1f} vs 5U = {worst['bound']:.1f}"
               + ("" if ok else f" (request {worst['request_id']} still waiting at t2)"))
    return _with_hypothesis(Verdict("vtc-non-overloaded", ok, summary, None if ok else worst,
                                    {"backlog_periods": periods, "checked": checked, "worst": worst}), run)


def check_dlpm_bound(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """DLPM: |W_f − W_g| ≤ 2(U + Q_u) for backlogged f, g (uncached prompt + output service)."""
    _check_opts("dlpm-bound", opts)
    run = _as_run(path)
    quantum = opts.get("quantum")
    if quantum is None:
        quantum = run.instance_spec(0).get("batching_params", {}).get("quantum")
    if quantum is None:
        raise InputError(run.path, "quantum", "the run does not say DLPM's quantum Q_u",
                         "pass -o quantum=<service units>")
    worst, worst_ratio, runs, scale = None, -1.0, 0, None
    for inst in _instances(run, opts):
        scale = _scale(run, inst, opts)
        grid = service_grid(run.service, inst)
        X = interleaved_samples(grid, scale.input_weight, scale.output_weight,
                                uncached_only=True)
        b = bounds.dlpm_pair_bound(scale, float(quantum))
        w, n = worst_backlogged_pair(grid, X, lambda f, g, b=b: b)  # noqa: ARG005 - same bound for every pair
        runs += n
        if w is not None and w.value / max(w.bound, EPS) > worst_ratio:
            worst, worst_ratio = w, w.value / max(w.bound, EPS)
    return _with_hypothesis(_pair_verdict("dlpm-bound", worst, runs, scale, "both backlogged (uncached service)",
                                          extra={"quantum": float(quantum)}), run)


def check_work_conservation(path: Path | str | SavedRun, **opts: Any) -> Verdict:
    """Work conservation: never idle or under-filled while requests wait and fit."""
    _check_opts("work-conservation", opts)
    run = _as_run(path)
    default = run.instance_spec(0).get("batching_params", {}).get("admission") == "reserve"
    reserve = bool(opts.get("reserve_output", default))
    found, checked = [], 0
    for inst in _instances(run, opts):
        f, n = work_conservation_violations(run, inst, reserve)
        found.extend(f)
        checked += n
    ok = not found
    summary = (f"{checked} change points with waiting requests checked; "
               + ("no idle or under-filled iteration" if ok else f"{len(found)}+ violations"))
    return Verdict("work-conservation", ok, summary, None if ok else found[0],
                   {"violations": found[:5], "checked": checked})


def _pair_verdict(name: str, worst: PairExcess | None, runs: int,
                  scale: bounds.ServiceScale | None, what: str,
                  extra: dict[str, Any] | None = None) -> Verdict:
    details: dict[str, Any] = {"backlogged_runs": runs, **(extra or {})}
    if worst is None:
        return Verdict(name, True, f"no interval with {what}: nothing to violate", None, details)
    ok = worst.value <= worst.bound + EPS
    if scale is not None:
        details.update({"U": scale.U, "L_input": scale.max_input_tokens,
                        "M": scale.kv_capacity_tokens})
    details["worst"] = worst.as_witness()
    summary = (f"worst difference {worst.value:.1f} vs bound {worst.bound:.1f} over {runs} "
               f"backlogged runs ({what})")
    return Verdict(name, ok, summary, None if ok else worst.as_witness(), details)


# --------------------------------------------------------------------------- registrations
checker("vtc-u", help="VTC Lemma 4.3: counter gap over waiting clients <= U "
        "(options: lift=paper|artifact|none, weights=, M=, L_input=)")(check_counter_gap)
checker("vtc-2u", help="VTC Thm 4.4: |W_f - W_g| <= 2U for backlogged pairs "
        "(weights= gives the weighted bound U(1/w_f + 1/w_g))")(check_backlogged_pair)
checker("vtc-4u", help="VTC Thm 4.9: W_g - W_f <= 4U when f is backlogged")(check_backlogged_vs_any)
checker("vtc-latency", help="VTC Thm 4.11: while an idle client's request waits for dispatch, the others "
        "receive <= 2(n-1)U of service (so D - A <= 2(n-1)U/a)")(check_dispatch_latency)
checker("vtc-non-overloaded", help="VTC Thm 4.13: a client asking for less than T/n - 5U of service "
        "since its backlog began gets its requests dispatched (T/n - R_f <= 5U while it waits)")(check_non_overloaded)
checker("work-conservation", help="never idle or under-filled while waiting requests fit "
        "(option reserve_output=1)")(check_work_conservation)
checker("dlpm-bound", help="DLPM: |W_f - W_g| <= 2(U + Q_u) for backlogged pairs, uncached "
        "service (option quantum=)")(check_dlpm_bound)
