"""PerLLM edge-cloud: uplinks (latency, a shared FIFO link), per-request energy from the GPU's
power, the run's energy summary, CS-UCB and tier-only routing, fast == step and invariants with
tiers and uplinks, and bad inputs (zero bandwidth, bad tier, bad deadline) exiting 2."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.policies.routing.perllm import CSUCB
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig
from llmsched.sim.energy import busy_fraction, power_model, transmission_energy_j
from llmsched.sim.errors import InputError
from llmsched.sim.run import simulate
from llmsched.testing import finished_requests
from tests.sim.helpers import UnitCost, fast_equals_step, workload
from tests.sim.strategies import clusters, cost_models, workloads


def _inst(**kw):
    base = dict(kv_capacity_tokens=10_000, block_size=1, prefix_cache=False)
    return InstanceSpec(**{**base, **kw})


def test_uplink_delays_arrival_by_latency_plus_bytes_over_a_shared_link():
    """Two prompts of 100 tokens at t=0 to one instance with a 400 B/s uplink and 0.5 s latency,
    4 bytes a token: the first crosses in 1 s and lands at 1.5; the second waits for the link, crosses
    1-2 s and lands at 2.5. UnitCost: each request is one 1 s iteration (output 1 token)."""
    w = workload([0.0, 0.0], [100, 100], [1, 1])
    c = ClusterSpec(instances=(_inst(uplink_bandwidth_Bps=400.0, uplink_latency_s=0.5),))
    fast, _ = fast_equals_step(w, c, UnitCost())
    assert fast.requests["finish_s"].tolist() == [2.5, 3.5]
    none, _ = fast_equals_step(w, ClusterSpec(instances=(_inst(),)), UnitCost())
    assert none.requests["finish_s"].tolist() == [1.0, 1.0]  # negative control: no uplink, one batch


def test_energy_is_split_by_tokens_and_idle_power_fills_the_makespan():
    """A100 (400 W maximum, 60 W idle), the flat power model (maximum power whenever busy). One
    iteration of 1 s holds a prefill chunk of 3 tokens (A) and one decode (B): 400 J over 4 tokens,
    A gets 300 J and B 100 J."""
    w = workload([0.0, 0.0], [3, 2], [1, 3])
    c = ClusterSpec(instances=(_inst(gpu="a100-80gb", token_budget=5),))
    with power_model("flat"):
        fast, _ = fast_equals_step(w, c, UnitCost())
    req = fast.requests
    # t=0-1: both prefill (3 + 2 tokens) -> 400 J, A: 240, B: 160; A done (1 token).
    # t=1-2, 2-3: B decodes alone -> 400 J each. B total 960.
    assert req["energy_j"].tolist() == pytest.approx([240.0, 960.0])
    s = fast.summary
    assert s["energy_active_j"] == pytest.approx(1200.0)
    assert s["energy_idle_j"] == pytest.approx(0.0)  # busy over the whole makespan
    assert s["energy_j"] == pytest.approx(1200.0)
    two = ClusterSpec(instances=(_inst(gpu="a100-80gb", count=2),))
    w2 = workload([0.0], [4], [2])
    with power_model("flat"):
        res, _ = fast_equals_step(w2, two, UnitCost())
    assert res.summary["energy_idle_j"] == pytest.approx(60.0 * 2)  # the idle instance, 2 s
    unknown, _ = fast_equals_step(w2, ClusterSpec(instances=(_inst(gpu="my-gpu", cost="linear:1,0,0,0"),)),
                                  UnitCost())
    assert unknown.summary["energy_j"] == 0.0  # no power listed: no energy


def test_busy_power_follows_the_ml_energy_anchors_and_utilisation():
    """H100: batch 1 draws 300 of 700 W and batch 128 600 W (the anchors); a compute-bound
    iteration (>= ~0.58 of the ridge) the maximum; a CPU its TDP whatever the batch; a GPU the
    catalogue lacks, its (unknown) maximum. A100 ridge 312e12 / 2039e9 = 153 tokens: 5 tokens are
    u = 0.0327, fraction 300/700 + (300/700) / (127/295.4) * (0.0327 - 1/295.4) = 0.4577."""
    assert busy_fraction("h100-80gb", 1) == pytest.approx(300 / 700)
    assert busy_fraction("h100-80gb", 128) == pytest.approx(600 / 700)
    assert busy_fraction("h100-80gb", 4096) == 1.0
    assert busy_fraction("a100-80gb", 5) == pytest.approx(0.4577, abs=1e-4)
    assert busy_fraction("xeon-silver-4214r", 1) == 1.0
    assert busy_fraction("my-gpu", 1) == 1.0
    with power_model("flat"):
        assert busy_fraction("h100-80gb", 1) == 1.0  # negative control: the old model
    with pytest.raises(ValueError), power_model("cubic"):
        pass
    assert transmission_energy_j(1e9) == pytest.approx(0.06 * 3.6e6)  # 0.06 kWh a GB


def test_engine_energy_uses_the_utilisation_power():
    """One A100 iteration of 1 s with 5 tokens: 400 W x 0.4577 = 183.1 J (flat: 400 J)."""
    w = workload([0.0, 0.0], [3, 2], [1, 1])
    c = ClusterSpec(instances=(_inst(gpu="a100-80gb", token_budget=5),))
    res, _ = fast_equals_step(w, c, UnitCost())
    assert res.summary["energy_active_j"] == pytest.approx(400.0 * busy_fraction("a100-80gb", 5), rel=1e-6)
    assert res.summary["energy_active_j"] == pytest.approx(183.1, abs=0.1)


def test_tier_only_routes_to_its_tier():
    w = workload([0.0, 0.0, 0.0], [4, 4, 4], [2, 2, 2])
    c = ClusterSpec(instances=(_inst(tier="edge", count=2), _inst(tier="cloud")), router="tier-only",
                    router_params=(("tier", "edge"),))
    res, _ = fast_equals_step(w, c, UnitCost())
    assert set(res.requests["instance"]) <= {0, 1}
    cloud = dataclasses.replace(c, router_params=(("tier", "cloud"),))
    res, _ = fast_equals_step(w, cloud, UnitCost())
    assert set(res.requests["instance"]) == {2}


def test_cs_ucb_learns_the_cheaper_feasible_server_and_respects_the_deadline():
    """Two servers: instance 0 on an H100 (700 W), instance 1 on an L4 (72 W), same UnitCost clock:
    the L4 spends ~10x less energy per request. With a loose deadline CS-UCB ends up sending most
    requests to the L4; with a deadline the L4 cannot meet (its uplink adds 50 s), to the H100."""
    n = 90
    w = workload(list(np.arange(n) * 3.0), [4] * n, [2] * n)
    fast_link = dict(uplink_bandwidth_Bps=math.inf)
    c = ClusterSpec(instances=(_inst(gpu="h100-80gb", **fast_link), _inst(gpu="l4", uplink_latency_s=5.0)),
                    router="cs-ucb", router_params=(("deadline_s", 100.0),))
    res, _ = fast_equals_step(w, c, UnitCost())
    late = res.requests["instance"].iloc[2 * n // 3:]
    assert (late == 1).mean() > 0.8
    tight = dataclasses.replace(c, instances=(c.instances[0], dataclasses.replace(c.instances[1], uplink_latency_s=50.0)),
                                router_params=(("deadline_s", 10.0),))
    res, _ = fast_equals_step(w, tight, UnitCost())
    assert (res.requests["instance"].iloc[2 * n // 3:] == 0).mean() > 0.8
    free = dataclasses.replace(tight, router_params=(("deadline_s", math.inf),))
    res, _ = fast_equals_step(w, free, UnitCost())
    assert (res.requests["instance"].iloc[2 * n // 3:] == 1).mean() > 0.8  # negative control: no constraint


def test_cs_ucb_counts_pulls_in_flight_so_a_slow_arm_is_not_flooded_before_its_feedback():
    """Instance 1 sits behind a 300 s uplink (every request there misses the 100 s deadline) and is
    observed only 300 s after each pull. Counting pulls still in flight in the bonus, CS-UCB sends it
    a handful of requests (its probe and a few optimistic retries), not the ~60 that arrive (one every
    5 s) before its second observation. Negative control: without the deadline and with instance 1 on
    the cheaper L4, it does go there."""
    n = 400
    w = workload(list(np.arange(n) * 5.0), [4] * n, [2] * n)
    c = ClusterSpec(instances=(_inst(gpu="h100-80gb"), _inst(gpu="l4", uplink_latency_s=300.0)),
                    router="cs-ucb", router_params=(("deadline_s", 100.0),))
    res, _ = fast_equals_step(w, c, UnitCost())
    assert (res.requests["instance"] == 1).sum() <= 10  # 7 here; counting observations only: 66
    free = dataclasses.replace(c, router_params=(("deadline_s", math.inf),))
    res, _ = fast_equals_step(w, free, UnitCost())
    assert (res.requests["instance"] == 1).sum() > 100


# ------------------------------------------------------------------ invariants and fast == step
@st.composite
def edge_scenarios(draw):
    w = draw(workloads())
    cluster = draw(clusters(w, ["sarathi", "vllm", "slackfit"], ["cs-ucb", "tier-only", "round-robin"],
                            allow_pd=False, min_instances=2))
    inst = cluster.instances[0]
    edge = dataclasses.replace(inst, tier="edge", gpu=draw(st.sampled_from(["l4", "t4", "a100-80gb", "xeon-silver-4214r"])),
                               uplink_bandwidth_Bps=draw(st.sampled_from([math.inf, 500.0, 1e5])),
                               uplink_latency_s=draw(st.sampled_from([0.0, 0.01, 0.5])))
    cloud = dataclasses.replace(inst, tier="cloud", count=1, uplink_bandwidth_Bps=draw(st.sampled_from([100.0, 1e4])),
                                uplink_latency_s=draw(st.sampled_from([0.0, 0.05])))
    params = (("deadline_s", draw(st.sampled_from([1.0, 30.0, math.inf]))),) if cluster.router == "cs-ucb" else (
        (("tier", draw(st.sampled_from(["edge", "cloud"]))),) if cluster.router == "tier-only" else ())
    return (w, dataclasses.replace(cluster, instances=(edge, cloud), router_params=params),
            draw(cost_models()), draw(st.integers(0, 3)))


@settings(max_examples=100, deadline=None)
@given(edge_scenarios())
def test_fast_forward_equals_step_with_tiers_and_uplinks(scenario):
    w, cluster, cost, seed = scenario
    fast_equals_step(w, cluster, cost, seed)


@settings(max_examples=60, deadline=None)
@given(edge_scenarios())
def test_invariants_with_uplinks_and_energy(scenario):
    """Every request finishes once, no earlier than its upload; energies are >= 0 and the active
    energy is the sum of the requests' shares."""
    w, cluster, cost, seed = scenario
    res = simulate(w, cluster, seed=seed, cost_models=lambda s: cost)
    req = res.requests
    done = finished_requests(req)
    assert (req["energy_j"] >= 0).all()
    assert res.summary["energy_active_j"] == pytest.approx(req["energy_j"].sum())
    assert res.summary["energy_idle_j"] >= 0
    min_latency = min(i.uplink_latency_s for i in cluster.instances)
    assert (done["first_token_s"] - done["arrival_s"] >= min_latency - 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(edge_scenarios())
def test_utilisation_power_only_lowers_energy_and_never_below_the_batch_1_floor(scenario):
    """The power model changes energy, never timing: the same run under the flat model has the
    same finish times, and each request's energy lies between 300/700 of its flat energy and the
    flat energy (integer nanojoules per token, so rounding is at most 1 nJ a token). Round-robin
    routing: CS-UCB reads energies, so under another power model it may route, and time, otherwise."""
    w, cluster, cost, seed = scenario
    cluster = dataclasses.replace(cluster, router="round-robin", router_params=())
    res = simulate(w, cluster, seed=seed, cost_models=lambda s: cost)
    with power_model("flat"):
        flat = simulate(w, cluster, seed=seed, cost_models=lambda s: cost)
    assert res.requests["finish_s"].equals(flat.requests["finish_s"])
    e, f = res.requests["energy_j"].to_numpy(), flat.requests["energy_j"].to_numpy()
    slack = 1e-9 * (res.requests["prompt_tokens"] + res.requests["output_tokens"]).to_numpy() * 10
    assert (e <= f + slack).all()
    assert (e >= f * (300 / 700) - slack).all()
    assert res.summary["energy_idle_j"] == pytest.approx(flat.summary["energy_idle_j"])


# ------------------------------------------------------------------ bad input
def test_config_validation():
    with pytest.raises(InputError, match="uplink_bandwidth_Bps"):
        RunConfig(cluster=ClusterSpec(instances=(InstanceSpec(uplink_bandwidth_Bps=0.0),))).validate()
    with pytest.raises(InputError, match="tier"):
        RunConfig(cluster=ClusterSpec(instances=(InstanceSpec(tier="fog"),))).validate()
    with pytest.raises(InputError, match="request_bytes_per_token"):
        RunConfig(cluster=ClusterSpec(request_bytes_per_token=-1.0)).validate()
    with pytest.raises(ValueError, match="deadline_s"):
        CSUCB(deadline_s=-1.0)
    with pytest.raises(ValueError, match="ema"):
        CSUCB(ema=0.0)


@pytest.mark.parametrize("toml", [
    '[[cluster.instances]]\nuplink_bandwidth_Bps = 0.0\n',
    '[[cluster.instances]]\nuplink_latency_s = -1.0\n',
    '[[cluster.instances]]\ntier = "fog"\n',
    '[cluster]\nrouter = "cs-ucb"\nrouter_params = { deadline_s = -3.0 }\n',
    '[cluster]\nrouter = "tier-only"\nrouter_params = { tier = "moon" }\n',
])
def test_bad_inputs_exit_2_with_one_line(toml, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[workload]\nsource = "poisson"\nnum_requests = 3\n\n' + toml)
    proc = subprocess.run([sys.executable, "-m", "llmsched", "simulate", "--config", str(cfg), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
