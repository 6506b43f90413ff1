"""Vidur vs llmsched on the same workload: wall time, peak memory and latency metrics.

Runs Vidur from a separate source checkout and venv (never vendored; see
../shared/reference/README.md 'Running Vidur side by side') and llmsched's `llmsched.sim.run.simulate`, each in
its own process, on identical request traces (ShareGPT lengths, Poisson arrivals, Llama-2-7B on one
A100 per replica, Sarathi chunked prefill with chunk 512, round-robin over replicas). llmsched uses a
cost model built from the same Vidur profiles Vidur reads (see `VidurProfileCost`). Writes
docs/vidur-side-by-side.md and benchmarks/results/vidur_side_by_side.csv. Not a test.

    python -m benchmarks.vidur_side_by_side --vidur-src /work/vidur-src --vidur-python /work/vidur-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MAX_TOKENS = 4096  # Vidur's trace replay clips prompt + output to 4096 tokens (TraceRequestGeneratorConfig.max_tokens)
QPS_PER_REPLICA = 1.0  # our choice: about half of what one replica sustains (at 2.0 TTFT p50 grows to ~20 s)
CHUNK = 512
BATCH_CAP = 128  # Vidur's default batch_size_cap


def _sharegpt_path() -> Path:
    for base in (ROOT / "data" / "traces", Path("/work/shared/traces")):
        hits = sorted(base.rglob("sharegpt_8k_filtered_stats_llama2_tokenizer.csv*"))
        if hits:
            return hits[0]
    raise FileNotFoundError("sharegpt_8k_filtered_stats_llama2_tokenizer.csv not found under data/traces")


def make_trace(n: int, replicas: int, seed: int) -> pd.DataFrame:
    """n requests: ShareGPT (prompt, output) pairs drawn with replacement, clipped the way Vidur's
    trace replay clips them, Poisson arrivals at QPS_PER_REPLICA * replicas."""
    df = pd.read_csv(_sharegpt_path())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(df), n)
    p = df["num_prefill_tokens"].to_numpy()[idx].astype(np.int64)
    d = df["num_decode_tokens"].to_numpy()[idx].astype(np.int64)
    p, d = np.clip(p, 1, MAX_TOKENS), np.clip(d, 1, MAX_TOKENS)
    p = np.where(p + d > MAX_TOKENS, np.maximum(1, MAX_TOKENS - d), p)
    arr = np.cumsum(rng.exponential(1.0 / (QPS_PER_REPLICA * replicas), n))
    return pd.DataFrame({"arrived_at": arr, "num_prefill_tokens": p, "num_decode_tokens": d})


# ---- llmsched side -------------------------------------------------------------------------------

# Segments up to this many iterations take `VidurProfileCost.segment_times`' per-iteration float path,
# which beats its ~10-17 NumPy calls below these lengths (measured with timeit on the 2-core machine:
# decode-only / with a prefill chunk). Either path gives the same floats.
SMALL_SEGMENT = (16, 32)


@dataclass(frozen=True, eq=False)
class VidurProfileCost:
    """Iteration time from the profiles Vidur is given for Llama-2-7B on A100 (TP1):
    emb(T) + layers * (linear ops(T) from mlp.csv + attention), where attention is the stand-in model
    the shared attention.csv was generated from (../shared/reference/README.md):
    prefill_ms = 0.005 + heads/4 * (3.3e-8 c^2 + 1.35e-8 c kv) per chunk,
    decode_ms = 0.008 + 0.0013 b + 1.1e-5 * (sum of contexts).
    From a BatchShape the chunk's c and kv are recovered exactly for one chunk per iteration (the
    common case under Sarathi); for several chunks they are summed (approximation)."""

    linear: object
    emb: object
    layers: int
    heads: int
    name: str = "vidur-profiles"
    _curves_at: dict = field(init=False, repr=False)  # tokens -> (linear, emb): a segment reads them once

    def __post_init__(self) -> None:
        object.__setattr__(self, "_curves_at", {})

    def iteration_times(self, s) -> np.ndarray:
        pt = s.prefill_tokens.astype(np.float64)
        dt = s.decode_tokens.astype(np.float64)
        T = pt + dt
        past = s.prefill_context_tokens.astype(np.float64) - pt
        c_kv = pt * past
        c_sq = 2.0 * (s.prefill_attention_pairs.astype(np.float64) - c_kv) - pt
        pre = np.where(pt > 0, 0.005 + self.heads / 4.0 * (3.3e-8 * c_sq + 1.35e-8 * c_kv), 0.0) * 1e-3
        dec = np.where(dt > 0, 0.008 + 0.0013 * dt + 1.1e-5 * s.decode_context_tokens.astype(np.float64), 0.0) * 1e-3
        lin = np.where(T > 0, self.linear(T), 0.0)
        emb = np.where(T > 0, self.emb(T), 0.0)
        return emb + float(self.layers) * (lin + pre + dec)

    def segment_times(self, pt: int, sum_c2: int, pairs0: int, pctx0: int, dt: int, dctx0: int,
                      nreq: int, n: int) -> np.ndarray | float:  # noqa: ARG002 - no per-request term here
        """`iteration_times` of the n iterations of one engine segment whose shape is affine in the
        iteration index j (the layout `llmsched.sim.instance._affine_shape` builds: prefill pairs
        pairs0 + j * sum_c2, prefill context pctx0 + j * pt, decode context dctx0 + j * dt, the rest
        constant). A float for n == 1 (Python floats only), else an array of n. The same IEEE
        operations in the same order as `iteration_times`, so the floats are identical
        (tests/sim/test_vidur_profile_segment_times.py); the token count is constant over a segment,
        so the two curves are read once (`Curve.__call__`) for either path, and remembered per token count."""
        ptf = float(pt)
        dtf = float(dt)
        T = ptf + dtf
        at = self._curves_at.get(T)
        if at is None:
            x = np.array([T])
            at = self._curves_at[T] = ((float(self.linear(x)[0]), float(self.emb(x)[0])) if T > 0  # type: ignore[operator]
                                       else (0.0, 0.0))
        lin, emb = at
        h4 = self.heads / 4.0
        layers = float(self.layers)
        if n == 1:
            pre = 0.0
            if ptf > 0:
                c_kv = ptf * (float(pctx0) - ptf)
                c_sq = 2.0 * (float(pairs0) - c_kv) - ptf
                pre = (0.005 + h4 * (3.3e-8 * c_sq + 1.35e-8 * c_kv)) * 1e-3
            dec = (0.008 + 0.0013 * dtf + 1.1e-5 * float(dctx0)) * 1e-3 if dtf > 0 else 0.0
            return emb + layers * (lin + pre + dec)
        if n <= SMALL_SEGMENT[ptf > 0]:  # the n == 1 expressions for each j: fewer calls than the array path
            dconst = 0.008 + 0.0013 * dtf
            out_l = []
            for j in range(n):
                pre = 0.0
                if ptf > 0:
                    c_kv = ptf * (float(pctx0 + j * pt) - ptf)
                    c_sq = 2.0 * (float(pairs0 + j * sum_c2) - c_kv) - ptf
                    pre = (0.005 + h4 * (3.3e-8 * c_sq + 1.35e-8 * c_kv)) * 1e-3
                dec = (dconst + 1.1e-5 * float(dctx0 + j * dt)) * 1e-3 if dtf > 0 else 0.0
                out_l.append(emb + layers * (lin + pre + dec))
            return np.array(out_l)
        # the int64 values of `_affine_shape` (pctx0 + j * pt, ...), each from one arange
        pre_a: np.ndarray | float = 0.0
        if ptf > 0:
            c_kv_a = _ramp(pctx0, pt, n)
            c_kv_a -= ptf
            c_kv_a *= ptf  # pt * past (x * y == y * x exactly)
            c_sq_a = _ramp(pairs0, sum_c2, n)
            c_sq_a -= c_kv_a
            c_sq_a *= 2.0
            c_sq_a -= ptf
            c_sq_a *= 3.3e-8
            c_kv_a *= 1.35e-8
            c_sq_a += c_kv_a
            c_sq_a *= h4
            c_sq_a += 0.005
            c_sq_a *= 1e-3
            pre_a = c_sq_a
        dec_a: np.ndarray | float = 0.0
        if dtf > 0:
            dec_a = _ramp(dctx0, dt, n)
            dec_a *= 1.1e-5
            dec_a += 0.008 + 0.0013 * dtf
            dec_a *= 1e-3
        out = lin + pre_a
        if isinstance(out, np.ndarray):
            out += dec_a
        else:
            out = out + dec_a
            if not isinstance(out, np.ndarray):  # nothing depends on j
                return np.full(n, emb + layers * out)
        out *= layers
        out += emb
        return out


def _ramp(start: int, step: int, n: int) -> np.ndarray:
    """float64 of the int64 values start + j * step, j = 0..n-1 (as `_affine_shape` computes them)."""
    if step == 0:
        return np.full(n, float(start))
    return np.arange(start, start + n * step, step, dtype=np.int64).astype(np.float64)


def vidur_profile_cost() -> VidurProfileCost:
    from llmsched.sim.cost import refdata
    from llmsched.sim.cost.profiled import Curve

    n, t = refdata.vidur_mlp("llama-2-7b", "a100-80gb", 1)
    rows = [r for r in refdata.read_csv(refdata.VIDUR_MLP[("llama-2-7b", "a100-80gb")])
            if int(r["num_tensor_parallel_workers"]) == 1]
    en = np.array([int(r["num_tokens"]) for r in rows])
    et = np.array([float(r["time_stats.emb.median"]) * 1e-3 for r in rows])
    un, inv = np.unique(en, return_inverse=True)
    et = np.bincount(inv, weights=et) / np.bincount(inv)
    return VidurProfileCost(Curve(n.astype(float), t), Curve(un.astype(float), et), 32, 32)


def run_llmsched(trace_csv: str, replicas: int, out_json: str) -> None:
    """One llmsched run in this process; writes timings and per-request metrics."""
    from llmsched.sim.config import ClusterSpec, InstanceSpec
    from llmsched.sim.run import simulate
    from llmsched.sim.workload.core import Workload

    t_start = time.perf_counter()
    df = pd.read_csv(trace_csv)
    n = len(df)
    w = Workload(arrival_s=df["arrived_at"].to_numpy(), client=np.zeros(n, dtype=np.int64),
                 prompt_tokens=df["num_prefill_tokens"].to_numpy(), output_tokens=df["num_decode_tokens"].to_numpy())
    spec = InstanceSpec(model="llama-2-7b", gpu="a100-80gb", tp=1, batching="sarathi", token_budget=CHUNK,
                        max_batch_requests=BATCH_CAP, count=replicas, prefix_cache=False)
    cluster = ClusterSpec(instances=(spec,), router="round-robin")
    cost = vidur_profile_cost()
    t0 = time.perf_counter()
    res = simulate(w, cluster, seed=0, cost_models=lambda _spec: cost, record_service=False)
    simulate_s = time.perf_counter() - t0
    r = res.requests
    # loop: the event loop alone (`Engine.run`, timed inside simulate), as Vidur's `Simulator.run()`
    # is its event loop alone; simulate: the whole library call (setup and result tables too)
    out = {"loop_s": res.summary["loop_s"], "simulate_s": simulate_s, "setup_s": t0 - t_start, "n": n,
           "ttft": r["ttft_s"].to_numpy().tolist(), "tbt": r["tbt_mean_s"].to_numpy().tolist(),
           "e2e": r["e2e_s"].to_numpy().tolist()}
    Path(out_json).write_text(json.dumps(out))


# ---- driver --------------------------------------------------------------------------------------

VIDUR_DRIVER = ("import sys, time; from vidur.config import SimulationConfig; from vidur.simulator import Simulator; "
                "from vidur.utils.random import set_seeds; c = SimulationConfig.create_from_cli_args(); "
                "set_seeds(c.seed); s = Simulator(c); t = time.perf_counter(); s.run(); "
                "print('VIDUR_LOOP_S', time.perf_counter() - t, flush=True)")


def vidur_args(trace_csv: str, replicas: int, out_dir: str, predictor: str = "random_forrest") -> list[str]:
    return ["--replica_config_device", "a100", "--replica_config_model_name", "meta-llama/Llama-2-7b-hf",
            "--cluster_config_num_replicas", str(replicas), "--replica_config_tensor_parallel_size", "1",
            "--replica_config_num_pipeline_stages", "1", "--request_generator_config_type", "trace_replay",
            "--trace_request_generator_config_trace_file", trace_csv,
            "--replica_scheduler_config_type", "sarathi", "--sarathi_scheduler_config_chunk_size", str(CHUNK),
            "--sarathi_scheduler_config_batch_size_cap", str(BATCH_CAP),
            *PREDICTOR_ARGS[predictor], "--metrics_config_output_dir", out_dir, "--no-metrics_config_store_plots"]


# Vidur's random-forest execution-time predictor with a one-point hyperparameter grid and 2-fold CV
# (Vidur's default grid is 3x3x3 points x 10 folds: over an hour of training on a shared 2-core machine).
# The linear-regression predictor trains in seconds but predicts 5.6 ms for a one-token decode
# iteration where the profile's operators sum to 9.3 ms, so its TBT is ~30% below the profile's.
# `--vidur-predictor linear_regression` is for sittings without the ~23 CPU-minutes the forest needs;
# its latencies are then Vidur's linear fit, not the profile, so only the speed columns compare.
PREDICTOR_ARGS = {
    "random_forrest": ["--execution_time_predictor_config_type", "random_forrest",
                       "--random_forrest_execution_time_predictor_config_num_estimators", "100",
                       "--random_forrest_execution_time_predictor_config_max_depth", "32",
                       "--random_forrest_execution_time_predictor_config_min_samples_split", "2",
                       "--random_forrest_execution_time_predictor_config_k_fold_cv_splits", "2"],
    "linear_regression": ["--execution_time_predictor_config_type", "linear_regression"],
}
PREDICTOR_TEXT = {
    "random_forrest": "its random-forest execution-time predictor (one-point grid: 100 trees, depth 32, 2-fold CV; "
                      "trained once, then cached)",
    "linear_regression": "its **linear-regression** execution-time predictor (Vidur's default grid for it; not the "
                         "random forest, so Vidur's latencies follow its linear fit, which predicts ~30% short "
                         "decode iterations, and the latency comparison below is not like for like)",
}


def timed(cmd: list[str], cwd: str | None, env: dict | None, timeout_s: float) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, combined output) of a child process via /usr/bin/time."""
    full = ["/usr/bin/time", "-f", "TIME_WALL %e TIME_RSS_KB %M", *cmd]
    p = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    text = p.stdout + p.stderr
    m = re.search(r"TIME_WALL ([\d.]+) TIME_RSS_KB (\d+)", text)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {text[-2000:]}")
    return float(m.group(1)), int(m.group(2)) / 1024, text


def pct(a, q):
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(np.percentile(a, q)) if len(a) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vidur-src", default="/work/vidur-src")
    ap.add_argument("--vidur-python", default="/work/vidur-venv/bin/python")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--replicas", default="1,4")
    ap.add_argument("--vidur-max", type=int, default=100000, help="largest size Vidur is run at")
    ap.add_argument("--vidur-predictor", choices=sorted(PREDICTOR_ARGS), default="random_forrest",
                    help="Vidur's execution-time predictor (Vidur's spelling)")
    ap.add_argument("--vidur-timeout-s", type=float, default=1800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/vidur_side_by_side")
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc from benchmarks/results/*.csv")
    ap.add_argument("--note", default="", help="a sentence about the machine/run added to the doc")
    ap.add_argument("--_llmsched", dest="llmsched_child", nargs=3, metavar=("TRACE", "REPLICAS", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.llmsched_child:
        run_llmsched(a.llmsched_child[0], int(a.llmsched_child[1]), a.llmsched_child[2])
        return 0
    if a.render_only:
        df = pd.read_csv(ROOT / "benchmarks" / "results" / "vidur_side_by_side.csv")
        rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
                for r in df.to_dict("records")]
        (ROOT / "docs" / "vidur-side-by-side.md").write_text(render(rows, a))
        return 0
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, WANDB_MODE="disabled")
    rows = []
    for n in map(int, a.sizes.split(",")):
        for reps in map(int, a.replicas.split(",")):
            trace = work / f"trace_n{n}_r{reps}.csv"
            make_trace(n, reps, a.seed).to_csv(trace, index=False)
            out_json = work / f"llmsched_n{n}_r{reps}.json"
            lw, lrss, _ = timed([sys.executable, "-m", "benchmarks.vidur_side_by_side", "--_llmsched", str(trace),
                                 str(reps), str(out_json)], str(ROOT), env, a.vidur_timeout_s)
            L = json.loads(out_json.read_text())
            row = {"requests": n, "replicas": reps, "llmsched_loop_s": L["loop_s"],
                   "llmsched_simulate_s": L["simulate_s"], "llmsched_wall_s": lw, "llmsched_peak_mb": lrss}
            for k in ("ttft", "tbt", "e2e"):
                row[f"llmsched_{k}_p50"], row[f"llmsched_{k}_p99"] = pct(L[k], 50), pct(L[k], 99)
            if n <= a.vidur_max:
                vout = work / f"vidur_n{n}_r{reps}"
                try:
                    vw, vrss, text = timed([a.vidur_python, "-c", VIDUR_DRIVER, *vidur_args(str(trace), reps, str(vout), a.vidur_predictor)],
                                           a.vidur_src, env, a.vidur_timeout_s)
                    loop = float(re.search(r"VIDUR_LOOP_S ([\d.eE+-]+)", text).group(1))
                    metrics = sorted(vout.rglob("request_metrics.csv"))[-1]
                    V = pd.read_csv(metrics)
                    row.update({"vidur_loop_s": loop, "vidur_wall_s": vw, "vidur_peak_mb": vrss})
                    cols = {"ttft": "prefill_e2e_time", "tbt": "decode_time_execution_plus_preemption_normalized",
                            "e2e": "request_e2e_time"}
                    for k, c in cols.items():
                        row[f"vidur_{k}_p50"], row[f"vidur_{k}_p99"] = pct(V[c], 50), pct(V[c], 99)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    row["vidur_error"] = str(exc)[:200]
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(res_dir / "vidur_side_by_side.csv", index=False)
    (ROOT / "docs" / "vidur-side-by-side.md").write_text(render(rows, a))
    return 0


def render(rows: list[dict], a) -> str:
    cmd = (f"python -m benchmarks.vidur_side_by_side --vidur-src {a.vidur_src} --vidur-python {a.vidur_python} "
           f"--sizes {a.sizes} --replicas {a.replicas} --vidur-max {a.vidur_max}")
    predictor = getattr(a, "vidur_predictor", "random_forrest")
    if predictor != "random_forrest":
        cmd += f" --vidur-predictor {predictor}"
    L = ["# Vidur side by side", "",
         "Generated by `benchmarks/vidur_side_by_side.py` (one run, one machine):", "", f"    {cmd}", "",
         f"Workload: ShareGPT lengths (clipped to {MAX_TOKENS} tokens as Vidur's trace replay does), Poisson "
         f"arrivals at {QPS_PER_REPLICA:g} requests/s per replica, Llama-2-7B on A100 (TP1), Sarathi chunked prefill "
         f"with chunk {CHUNK}, batch cap {BATCH_CAP}, round-robin over replicas; both simulators replay the same "
         "trace file. Vidur @ microsoft/vidur 7d47513 with " + PREDICTOR_TEXT[predictor] + " and the stand-in "
         "attention profile; llmsched with `VidurProfileCost` (the same mlp.csv and attention model). "
         "Loop = the event loop alone: Vidur's `Simulator.run()` (its setup, in `Simulator.__init__`, and its "
         "output, written at exit, are outside it) and llmsched's `Engine.run()` (timed inside `simulate` as "
         "`summary['loop_s']`; its setup: request table, instances, policies, kernel loading; and its result tables "
         "are outside it). simulate() = llmsched's whole library call, setup and result tables included. Whole = the "
         "process, including Vidur's predictor training/caching and output writing. Peak = max RSS of the process.", "",
         "| requests | replicas | Vidur loop (s) | llmsched loop (s) | loop speed-up | llmsched simulate() (s) "
         "| speed-up over simulate() | Vidur whole (s) | llmsched whole (s) | whole speed-up | Vidur peak (MB) "
         "| llmsched peak (MB) |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        v = "vidur_loop_s" in r
        sim_s = r.get("llmsched_simulate_s", float("nan"))  # absent in tables from before it was recorded
        L.append(f"| {r['requests']} | {r['replicas']} | {r['vidur_loop_s']:.2f} | {r['llmsched_loop_s']:.2f} | "
                 f"{r['vidur_loop_s'] / r['llmsched_loop_s']:.0f}x | {sim_s:.2f} | {r['vidur_loop_s'] / sim_s:.0f}x | "
                 f"{r['vidur_wall_s']:.1f} | {r['llmsched_wall_s']:.1f} | "
                 f"{r['vidur_wall_s'] / r['llmsched_wall_s']:.1f}x | {r['vidur_peak_mb']:.0f} | {r['llmsched_peak_mb']:.0f} |"
                 if v else
                 f"| {r['requests']} | {r['replicas']} | - | {r['llmsched_loop_s']:.2f} | - | {sim_s:.2f} | - | - "
                 f"| {r['llmsched_wall_s']:.1f} | - | - | {r['llmsched_peak_mb']:.0f} |")
    L += ["", "Latency (seconds; llmsched / Vidur, and llmsched's difference relative to Vidur):", "",
          "| requests | replicas | TTFT p50 | TTFT p99 | TBT p50 | TBT p99 | E2E p50 | E2E p99 |",
          "|---:|---:|---|---|---|---|---|---|"]
    for r in rows:
        if "vidur_loop_s" not in r:
            continue
        cells = []
        for k in ("ttft", "tbt", "e2e"):
            for q in ("p50", "p99"):
                x, y = r[f"llmsched_{k}_{q}"], r[f"vidur_{k}_{q}"]
                cells.append(f"{x:.3g} / {y:.3g} ({x / y - 1:+.0%})")
        L.append(f"| {r['requests']} | {r['replicas']} | " + " | ".join(cells) + " |")
    both = [r for r in rows if "vidur_loop_s" in r]
    if both:
        at10k = [r for r in both if r["requests"] == 10000] or both
        loop = min(r["vidur_loop_s"] / r["llmsched_loop_s"] for r in at10k)
        over_simulate = min(r["vidur_loop_s"] / r.get("llmsched_simulate_s", float("nan")) for r in at10k)
        whole = min(r["vidur_wall_s"] / r["llmsched_wall_s"] for r in at10k)
        med = max(abs(r[f"llmsched_{k}_p50"] / r[f"vidur_{k}_p50"] - 1) for r in both for k in ("ttft", "tbt", "e2e"))
        L += ["", f"At 10,000 requests (smallest over replica counts): loop speed-up **{loop:.0f}x** (issue 13's "
              f"goal: >= 60x; issue 3's: >= 100x); Vidur's loop over llmsched's whole simulate() **{over_simulate:.0f}x**; "
              f"whole process **{whole:.1f}x** (issue 3's goal: >= 30x); medians within 10% of Vidur's: largest median "
              f"difference **{med:.1%}**. The llmsched loop is the simulator core's (sim/engine.py, sim/instance.py) "
              "with `VidurProfileCost.segment_times` for the iteration times.",
              "", "Vidur's own simulated requests per wall second of loop: "
              + ", ".join(f"{r['requests'] / r['vidur_loop_s']:.0f} ({r['requests']} x {r['replicas']})" for r in both)
              + "; llmsched: " + ", ".join(f"{r['requests'] / r['llmsched_loop_s']:.0f} ({r['requests']} x {r['replicas']})"
                                          for r in rows) + "."]
    if getattr(a, "note", ""):
        L += ["", a.note]
    errs = [r for r in rows if "vidur_error" in r]
    if errs:
        L += ["", "Vidur failures: " + "; ".join(f"{r['requests']}x{r['replicas']}: {r['vidur_error']}" for r in errs)]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
