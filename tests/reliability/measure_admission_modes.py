"""Measure VTC's U/2U/4U ratios under each admission mode on flooding workloads (not a test).

The numbers in docs/theory/fairness.md, "Admission modes", come from:
  python tests/reliability/measure_admission_modes.py vtc,vtc-predict,vtc-oracle,vtc-h \
      engine,reserve,peak 0,1,2 30 "[6.0, 0.5, 0.5]" 2048
(policies, admission modes, seeds, duration s, per-client rates, KV capacity M in tokens; one JSON
line per run: worst ratio to U, 2U and 4U, preemptions, finished requests).
"""
import itertools
import json
import sys
import time

from llmsched.proofs_check._service_log import SavedRun
from llmsched.proofs_check.fairness import (
    check_backlogged_pair,
    check_backlogged_vs_any,
    check_counter_gap,
)
from llmsched.sim.config import RunConfig
from llmsched.sim.run import run


def ratio(v, key):
    d = v.details
    if key == "u":
        return d["gap"] / d["bound"] if d.get("bound") else 0.0
    w = d.get("worst")
    return w["difference"] / w["bound"] if w else 0.0

policies = sys.argv[1].split(",")
modes = sys.argv[2].split(",")
seeds = [int(x) for x in sys.argv[3].split(",")]
for pol, mode, seed in itertools.product(policies, modes, seeds):
    t = time.time()
    cfg = RunConfig.from_dict({
        "seed": seed,
        "workload": {"source": "multi-client", "duration_s": float(sys.argv[4]),
                     "params": {"rates": json.loads(sys.argv[5]), "lengths": "lognormal", "input_tokens": 256,
                                "output_tokens": 384, "max_tokens": int(sys.argv[6]) // 2}},
        "cluster": {"instances": [{"model": "llama-2-7b", "gpu": "a10g", "batching": pol,
                                   "kv_capacity_tokens": int(sys.argv[6]), "token_budget": 512,
                                   "batching_params": {"admission": mode}}]}})
    res = run(cfg)
    s = SavedRun(res.service, res.requests, res.timeline, res.summary["config"], "<mem>", res.summary["policy_params"])
    r = [ratio(check_counter_gap(s), "u"), ratio(check_backlogged_pair(s), "2u"), ratio(check_backlogged_vs_any(s), "4u")]
    print(json.dumps({"policy": pol, "admission": mode, "seed": seed, "U": round(r[0], 3), "2U": round(r[1], 3),
                      "4U": round(r[2], 3), "preemptions": int(res.requests.preemptions.sum()),
                      "finished": int(res.summary["num_finished"]), "n": int(res.summary["num_requests"]),
                      "wall_s": round(time.time() - t, 1)}), flush=True)
