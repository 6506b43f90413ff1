"""Preemptible instances (after SpotServe, Miao et al., ASPLOS'24): latency and lost work versus
the preemption rate, with and without grace-period live migration. Each instance receives
Poisson preemption notices; after a grace period (30 s, or 5 s) it goes down for 120 s (a replacement
instance's start-up, our choice) and every request still on it restarts elsewhere, recomputing
its KV. With migration, decoding requests live-migrate away during the grace period and waiting
ones move at once. No request is lost (tests/routing/test_migration_invariants.py).

Our setup: 4 x Llama-2-7B on A100-80GB, Sarathi batching (512-token budget), round-robin over
the live instances, Poisson arrivals at 8 req/s, lognormal lengths (mean 512 in / 256 out).
SpotServe reports no number we can set this next to, so the comparisons are directions only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsched.experiments import style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproductions._routing_common import latency_row, run_rows
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.workload import arrivals
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.lengths import LengthSpec, sample_lengths

MODEL, GPU, INSTANCES, RATE_RPS = "llama-2-7b", "a100-80gb", 4, 8.0  # our choice
LENGTHS = LengthSpec("lognormal", input_tokens=512, output_tokens=256, input_sigma=1.0, output_sigma=1.0,
                     max_tokens=4096)  # our choice
GRACES_S = (5.0, 30.0)  # 30 s notice (GCP/Azure; sim/spot.py) and a short 5 s one (our choice)
DOWN_S = 120.0  # replacement start-up (our choice)


def workload(seed: int, duration_s: float) -> Workload:
    rng = np.random.default_rng(seed)
    a = arrivals.poisson(rng, RATE_RPS, duration_s=duration_s)
    p, o = sample_lengths(LENGTHS, rng, len(a))
    return Workload(arrival_s=a, client=np.zeros(len(a), dtype=np.int64), prompt_tokens=p, output_tokens=o,
                    name="spot-poisson")


def _row(p: dict, res) -> dict:
    row = latency_row(res)
    s = res.summary.get("router", {})
    row.update({k: s.get(k, 0) for k in ("notices", "kills", "restarts", "lost_kv_tokens", "ignored")})
    row["spot_migrations"] = s.get("migrations", 0)
    return row


@reproduction(name="spot-preemption", paper="SpotServe (Miao et al., ASPLOS'24)",
              target="latency and lost work vs preemption rate, with/without migration", quick_minutes=1.5)
def preemption(ctx: ReproContext) -> ReproOutput:
    """P50/P99 latency and recomputed KV tokens vs preemption rate, with and without migration."""
    duration = 600.0 if ctx.quick else 1800.0
    rates = [0.0, 12.0, 24.0] if ctx.quick else [0.0, 3.0, 6.0, 12.0, 24.0, 48.0]
    w = workload(ctx.seed, duration)
    points = []
    for grace in GRACES_S:
        for rate in rates:
            for migrate in (False, True):
                params = {"inner": "round-robin", "preemptions_per_hour": rate, "grace_s": grace,
                          "down_s": DOWN_S, "migrate": migrate, "horizon_s": duration}
                spec = InstanceSpec(model=MODEL, gpu=GPU, count=INSTANCES)
                points.append({"workload": w, "cluster": ClusterSpec(instances=(spec,), router="spot",
                                                                     router_params=freeze_params(params)),
                               "seed": ctx.seed, "grace_s": grace, "preemptions_per_hour": rate,
                               "migration": migrate})
    tab = pd.DataFrame(run_rows(points, _row))
    f, axes = style.figure("text", height_in=2.2, ncols=3)
    for (grace, migrate), g in tab.groupby(["grace_s", "migration"]):
        g = g.sort_values("preemptions_per_hour")
        lab = f"grace {grace:.0f} s, " + ("migrate" if migrate else "restart")
        axes[0].plot(g["preemptions_per_hour"], g["e2e_p50_s"], "o-", label=f"{lab}: p50")
        axes[0].plot(g["preemptions_per_hour"], g["e2e_p99_s"], "s--", label=f"{lab}: p99")
        axes[1].plot(g["preemptions_per_hour"], g["lost_kv_tokens"], "o-", label=lab)
        axes[2].plot(g["preemptions_per_hour"], g["ttft_p99_s"], "o-", label=lab)
    axes[0].set_ylabel("request latency (s)")
    axes[1].set_ylabel("KV tokens lost (recomputed)")
    axes[2].set_ylabel("P99 TTFT (s)")
    for ax in axes:
        ax.set_xlabel("preemption notices per instance-hour")
        ax.legend(fontsize=5)
    figs = style.save(f, ctx.out_dir, "spot_preemption")
    comps = []
    for grace in GRACES_S:
        top = tab[(tab["preemptions_per_hour"] == max(rates)) & (tab["grace_s"] == grace)].set_index("migration")
        comps.append(Comparison(f"grace {grace:.0f} s: lost KV tokens, restart-only − with migration (highest rate)",
                                "> 0", float(top.loc[False, "lost_kv_tokens"] - top.loc[True, "lost_kv_tokens"]),
                                "tokens", "direction", note="migration in the grace period saves recomputation"))
    comps += [
        Comparison("every request finished (all points)", float(len(w.arrival_s)),
                   float(tab["finished"].min()), "requests", "within", tolerance=0.0),
    ]
    notes = (f"{INSTANCES} x {MODEL} on {GPU}; Poisson {RATE_RPS} req/s for {duration:.0f} s; grace {GRACES_S} s, "
             f"down {DOWN_S} s; Poisson notices per instance (a notice that would leave no live instance is ignored)")
    return ReproOutput(tables={"spot_preemption": tab}, figures=figs, comparisons=comps, notes=notes)
