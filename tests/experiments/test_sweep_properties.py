"""Properties of grid expansion and of the summary table: size is the product of the value lists,
keys are unique and recomputable, and the table does not depend on the order points completed in
(which is all that differs between joblib, Dask and a resumed run)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.experiments import sweep
from llmsched.experiments.sweep_testing import synthetic_point

rates = st.lists(st.floats(0.01, 100.0, allow_nan=False), min_size=1, max_size=4, unique=True)
seeds = st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=3, unique=True)
policies = st.lists(st.sampled_from(["vllm", "sarathi", "orca", "fastertransformer"]), min_size=1,
                    max_size=3, unique=True)


@settings(max_examples=25)
@given(rates, seeds, policies, st.randoms(use_true_random=False))
def test_expansion_and_completion_order(rate_list, seed_list, policy_list, rnd):
    spec = sweep.parse_spec({"grid": {"cluster.instances.0.batching": policy_list,
                                      "workload.rate": rate_list, "seed": seed_list}}, "prop")
    points = sweep.expand(spec)
    assert len(points) == len(rate_list) * len(seed_list) * len(policy_list)
    assert len({p.key for p in points}) == len(points)
    for p in points:
        assert sweep.point_key(p.config) == p.key
        assert p.config["workload"]["rate"] == float(p.params["workload.rate"])
    records = {}
    for p in points:
        res = sweep.execute_point("llmsched.experiments.sweep_testing:synthetic_point", p.config)
        assert res["ok"], res.get("error")
        records[p.key] = {"metrics": res["metrics"], "wall_s": res["wall_s"]}
    in_order, _ = sweep.summary_frame(points, records)
    keys = list(records)
    rnd.shuffle(keys)
    shuffled, _ = sweep.summary_frame(points, {k: records[k] for k in keys})
    pd.testing.assert_frame_equal(in_order, shuffled, check_exact=True)
    assert list(in_order["index"]) == list(range(len(points)))
    # the point function is deterministic in the config (the premise of backend equality)
    p0 = points[0]
    assert synthetic_point(p0.config)["draws"] == synthetic_point(dict(p0.config))["draws"]
