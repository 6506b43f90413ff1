"""SuperServe's SlackFit and model variants: hand-derived batches, variant choice and actuation
delay, the accuracy column, invariants and fast == step with variants, and bad parameters."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.batching.slackfit import SlackFit, fit_batch
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.errors import InputError
from llmsched.sim.run import simulate
from llmsched.sim.variants import ModelVariant, variant_set
from llmsched.testing import finished_requests
from tests.sim.helpers import UnitCost, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads

# two variants: fast (1 s a request, accuracy 0.7) and accurate (2 s a request, 0.9), no fixed cost
FAST = {"name": "fast", "accuracy": 0.7, "base_s": 0.0, "per_request_s": 1.0}
ACCURATE = {"name": "accurate", "accuracy": 0.9, "base_s": 0.0, "per_request_s": 2.0}


def _one(batching="slackfit", params=(), count=1):
    return ClusterSpec(instances=(InstanceSpec(batching=batching, batching_params=params, kv_capacity_tokens=10_000,
                                               block_size=1, count=count, prefix_cache=False),))


def _variants(actuation_s=0.0):
    return ({**FAST, "actuation_s": actuation_s}, {**ACCURATE, "actuation_s": actuation_s})


def test_slackfit_picks_the_most_accurate_variant_that_fits_and_switches_under_a_burst():
    """SLO 10 s. r0 at t=0 alone: the accurate variant serves 1 request in 2 s <= slack 10 -> done
    at t=2, accuracy 0.9. Six requests arrive at t=1; at t=2 the head's slack is 1 + 10 - 2 = 9 s:
    accurate would take 12 s, fast takes 6 s -> fast, done at t=8, accuracy 0.7. With separate
    models each switch first loads the variant (3 s here): done at t=11 instead."""
    w = workload([0.0] + [1.0] * 6, [1] * 7, [1] * 7, ttft_slo_s=np.full(7, 10.0))
    fast, _ = fast_equals_step(w, _one(params=(("slo_s", 10.0), ("custom_variants", _variants()))), UnitCost())
    req = fast.requests
    assert req["finish_s"].tolist() == [2.0] + [8.0] * 6
    assert req["accuracy"].tolist() == pytest.approx([0.9] + [0.7] * 6)
    assert fast.summary["accuracy_mean"] == pytest.approx((0.9 + 6 * 0.7) / 7)
    assert fast.summary["slo_attainment"] == 1.0
    loaded, _ = fast_equals_step(w, _one(params=(("slo_s", 10.0), ("custom_variants", _variants(3.0)))), UnitCost())
    assert loaded.requests["finish_s"].tolist() == [2.0] + [11.0] * 6  # negative control: the load is paid
    assert loaded.requests["accuracy"].tolist() == pytest.approx([0.9] + [0.7] * 6)


def test_fixed_variant_never_switches_and_misses_the_slo_under_the_burst():
    """The same trace on the accurate variant alone: r0 done at 2; the six at t=2 have slack 9 s, the
    largest batch that fits is 4 (8 s) -> done at 10; the last two wait -> done at 14 (> 1 + 10)."""
    w = workload([0.0] + [1.0] * 6, [1] * 7, [1] * 7, ttft_slo_s=np.full(7, 10.0))
    fixed, _ = fast_equals_step(w, _one("fixed-variant", (("slo_s", 10.0), ("variant", "accurate"),
                                                          ("custom_variants", _variants()))), UnitCost())
    assert fixed.requests["finish_s"].tolist() == [2.0, 10.0, 10.0, 10.0, 10.0, 14.0, 14.0]
    assert (fixed.requests["accuracy"] == 0.9).all()
    assert fixed.summary["slo_attainment"] == pytest.approx(5 / 7)


def test_fit_batch_falls_back_to_the_fastest_variant():
    vs = (ModelVariant("fast", 0.7, 0.0, 1.0), ModelVariant("accurate", 0.9, 0.0, 2.0))
    assert fit_batch(vs, 3, 6.0) == (vs[1], 3)
    assert fit_batch(vs, 3, 5.0) == (vs[0], 3)
    assert fit_batch(vs, 3, 2.5) == (vs[0], 2)  # shrink to what fits
    assert fit_batch(vs, 3, 0.5) == (vs[0], 3)  # head already late: drain


def test_decoding_requests_are_credited_per_token_and_other_policies_have_no_accuracy():
    w = workload([0.0], [4], [5])
    res, _ = fast_equals_step(w, _one(params=(("slo_s", 100.0), ("custom_variants", _variants()))), UnitCost())
    assert res.requests["accuracy"].iloc[0] == pytest.approx(0.9)
    plain, _ = fast_equals_step(w, _one("sarathi"), UnitCost())
    assert np.isnan(plain.requests["accuracy"].iloc[0]) and np.isnan(plain.summary["accuracy_mean"])


def test_bundled_variant_set_is_sorted_and_cited():
    vs = variant_set("resnet-imagenet", "a100-80gb")
    assert [v.name for v in vs] == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert all(0 < v.accuracy < 1 and v.actuation_s == 0 for v in vs)
    loads = variant_set("resnet-imagenet", "a100-80gb", "separate-models")
    assert all(v.actuation_s > 0 for v in loads)


# ------------------------------------------------------------------ invariants and fast == step
@st.composite
def variant_scenarios(draw):
    w = draw(workloads())
    cluster = draw(clusters(w, ["slackfit", "fixed-variant"], ["round-robin", "least-outstanding-tokens"]))
    act = draw(st.sampled_from([0.0, 0.05, 1.0]))
    slo = draw(st.sampled_from([2.0, 5.0, 50.0]))
    vs = ({"name": "a", "accuracy": 0.6, "base_s": 0.01, "per_request_s": 0.02, "actuation_s": act},
          {"name": "b", "accuracy": 0.8, "base_s": 0.02, "per_request_s": 0.05, "actuation_s": act},
          {"name": "c", "accuracy": 0.9, "base_s": 0.05, "per_request_s": 0.2, "actuation_s": act})
    insts = tuple(dataclasses.replace(i, batching_params=(("slo_s", slo), ("custom_variants", vs), ("max_batch", draw(
        st.sampled_from([1, 3, 64]))), *((("variant", draw(st.sampled_from("abc"))),) if i.batching == "fixed-variant"
                                        else ()))) for i in cluster.instances)
    return w, dataclasses.replace(cluster, instances=insts), draw(cost_models()), draw(st.integers(0, 3))


@settings(max_examples=100, deadline=None)
@given(variant_scenarios())
def test_fast_forward_equals_step_with_variants(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)


@settings(max_examples=60, deadline=None)
@given(variant_scenarios())
def test_invariants_with_variants(scenario):
    """Every request finishes once with all its tokens, each token credited with a variant's accuracy."""
    w, cluster, cost, seed = scenario
    res = simulate(w, cluster, seed=seed, cost_models=lambda s: cost)
    req = res.requests
    done = finished_requests(req)
    assert done["accuracy"].between(0.6 - 1e-12, 0.9 + 1e-12).all()
    assert (done["finish_s"] >= done["first_token_s"]).all() and (done["first_token_s"] > done["arrival_s"] - 1e-12).all()


# ------------------------------------------------------------------ bad parameters
def test_constructor_validation():
    with pytest.raises(ValueError, match="below the fastest variant"):
        SlackFit(slo_s=0.5, custom_variants=_variants())
    with pytest.raises(ValueError, match=r"accuracy must be in \[0, 1\]"):
        SlackFit(slo_s=10.0, custom_variants=({**FAST, "accuracy": 1.5},))
    with pytest.raises(ValueError, match="deployment"):
        SlackFit(deployment="lazy")
    with pytest.raises(InputError):
        simulate(workload([0.0], [1], [1]), _one(params=(("slo_s", 1e-6),)))


@pytest.mark.parametrize("name,param,value", [
    ("slackfit", "slo_s", "0.0001"), ("slackfit", "slo_s", "-1"), ("slackfit", "variants", "nope"),
    ("slackfit", "deployment", "lazy"), ("slackfit", "max_batch", "0"), ("fixed-variant", "variant", "vgg"),
])
def test_bad_parameters_are_one_line_exit_2(name, param, value):
    proc = subprocess.run([sys.executable, "-m", "llmsched", "simulate", "--workload", "poisson", "--num-requests",
                           "3", "--no-progress", "--batching", name, "--batching-param", f"{param}={value}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr


def test_accuracy_outside_unit_interval_in_a_config_file_exits_2(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[workload]\nsource = "poisson"\nnum_requests = 3\n\n[[cluster.instances]]\nbatching = "slackfit"\n'
                   'batching_params = { slo_s = 1.0, custom_variants = [{ name = "x", accuracy = 1.2, base_s = 0.0, '
                   'per_request_s = 0.01 }] }\n')
    proc = subprocess.run([sys.executable, "-m", "llmsched", "simulate", "--config", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "accuracy" in lines[0]
