"""IWRR follows the flow weights and masks; the plan simulation's saturation throughput matches the
max flow (a link-bound toy, and the single24 acceptance run under the pipelined capacity model)."""

import pytest

from llmsched.theory.placement.flow import make_problem, solve_flow
from llmsched.theory.placement.heuristic import best_stage_plan
from llmsched.theory.placement.io import load_cluster, read_toml_cluster
from llmsched.theory.placement.profiles import infinite_network_bound
from llmsched.theory.placement.routing import IWRR, FlowRouter
from llmsched.theory.placement.simulate import simulate_plan
from llmsched.theory.placement.spec import MODELS

M70 = MODELS["llama-2-70b"]


def test_iwrr_shares_follow_weights():
    rr = IWRR({"a": 300.0, "b": 100.0})
    picks = [rr.choose(1.0) for _ in range(400)]
    assert abs(picks.count("a") - 300) <= 1  # interleaved: share 3/4 up to one request


def test_iwrr_masks_small_edges_and_disallowed():
    rr = IWRR({"a": 100.0, "b": 4.0})  # b carries < 5% of the out-flow: masked (Helix rule)
    assert {rr.choose(1.0) for _ in range(50)} == {"a"}
    rr2 = IWRR({"a": 1.0, "b": 1.0})
    assert {rr2.choose(1.0, allowed=lambda j: j != "a") for _ in range(10)} == {"b"}
    assert rr2.choose(1.0, allowed=lambda j: False) is None


def test_router_walks_positive_flow_paths():
    r = FlowRouter({("source", 0): 5.0, (0, 1): 5.0, (1, "sink"): 5.0})
    assert r.route(10) == [0, 1]


def _chain_cluster(tmp_path, slow_Bps):
    f = tmp_path / "chain.toml"
    f.write_text(f'name = "chain"\n[[nodes]]\ngpu = "A100"\ncount = 7\nvram_bytes = 40e9\n'
                 f'[links]\nbandwidth_Bps = 1e9\nlatency_s = 0.001\n'
                 f'[[links.override]]\nsrc = 2\ndst = 3\nbandwidth_Bps = {slow_Bps}\nlatency_s = 0.001\n')
    return read_toml_cluster(f)


def test_simulated_throughput_link_bound(tmp_path):
    c = _chain_cluster(tmp_path, 2e6)
    p = make_problem(c, M70)
    # a 7-node chain of A100s (12+12+12+11+11+11+11 layers) with node 2 -> node 3 at 2 MB/s
    plc = {0: (0, 12), 1: (12, 12), 2: (24, 12), 3: (36, 11), 4: (47, 11), 5: (58, 11), 6: (69, 11)}
    mf = solve_flow(p, plc).value
    assert mf == pytest.approx(2e6 / 16384)  # hand-derived: bandwidth / activation bytes = 122.07 tok/s
    r = simulate_plan(p, plc, duration_s=120.0, warmup_s=30.0, prompt_len=10, output_len=5, max_inflight=64)
    assert r.decode_tok_s > 0.3 * r.prompt_tok_s  # steady state: decode passes flow too (5 per 10)
    assert r.total_tok_s == pytest.approx(mf, rel=0.10)
    assert r.total_tok_s <= mf * 1.01  # a link cannot carry more than its bandwidth


@pytest.mark.parametrize("length_cv", [0.0, 0.5])
def test_single24_saturation_within_10pct_of_max_flow(length_cv):
    """Acceptance: our single24 plan (the MILP's 2045.64 tokens/s), saturated (admission up to the
    whole KV cache, as Helix's simulator) with every node running at most the batch behind T_i(k)
    (chunked prefill), delivers its max flow within 10%, with mean-length requests (measured 0.995)
    and with lognormal lengths of CV 0.5 (0.996). Negative controls: greedy batching of whole
    prompts at the 30% KV mark misses it (0.61, next test), and so does Helix's layout under greedy
    batching (docs/placement.md)."""
    from llmsched.theory.placement.flow import FastFlow

    p = make_problem(load_cluster("single24"), M70)
    plc, v = best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, 80))
    assert v == pytest.approx(2045.64, abs=0.01)
    r = simulate_plan(p, plc, duration_s=1200.0, warmup_s=600.0, kv_fraction=1.0, length_cv=length_cv,
                      seed=1, batch_limit="typical")
    assert r.max_flow_tok_s == pytest.approx(v, rel=1e-6)
    assert abs(r.ratio - 1.0) <= 0.10, r
    # saturated: the bottleneck stages (the four A100s) are busy nearly all the time
    assert max(r.node_busy_frac.values()) > 0.95
    # chunked prompts are counted once: on this single chain every stage processes what the sink gets,
    # up to the change in what is in flight between the window's edges (a few %; double counting the
    # 750-token prompts chunk by chunk would be +70% or more)
    for i, tok_s in r.node_tok_s.items():
        assert tok_s == pytest.approx(r.total_tok_s, rel=0.10), i


def test_single24_simulation_within_10pct_of_pipelined_max_flow():
    """Acceptance: our single24 plan, simulated in closed loop at the KV high-water mark behind T_i(k)
    (KV_CACHE_HWM = 0.3) with the profiles' real batch limits, reaches its max flow under the
    pipelined capacity model within 10% (measured 1256.9 vs 1186.5, 1.059; the same to 0.1% at
    7200 s). Negative control from the same run: against Helix's T_i(k), which leaves the waits out
    of the round trip, it is 0.61, so the 10% check can fail and does."""
    from llmsched.theory.placement.flow import FastFlow
    from llmsched.theory.placement.profiles import KV_CACHE_HWM

    c = load_cluster("single24")
    p_helix = make_problem(c, M70)
    p_piped = make_problem(c, M70, capacity_model="pipelined")
    plc, v = best_stage_plan(p_helix, FastFlow(p_helix), infinite_network_bound(p_helix.caps, 80))
    assert v == pytest.approx(2045.64, abs=0.01)  # the plan `llmsched place --cluster single24` writes
    r = simulate_plan(p_piped, plc, duration_s=1200.0, warmup_s=600.0, kv_fraction=KV_CACHE_HWM)
    # steady state: prompt : decode tokens at the sink match the workload's 750 : 240 within 5%
    assert r.prompt_tok_s / r.decode_tok_s == pytest.approx(750 / 240, rel=0.05)
    assert r.max_flow_tok_s == pytest.approx(solve_flow(p_piped, plc).value)
    assert abs(r.ratio - 1.0) <= 0.10, r
    helix_ratio = r.total_tok_s / solve_flow(p_helix, plc).value
    assert helix_ratio < 0.9, helix_ratio  # negative control: the pure-compute round trip over-promises


@pytest.mark.slow
def test_single24_simulation_within_10pct_of_max_flow_at_half_kv():
    """Helix's T_i(k) matches the simulation only at an admission level chosen after the fact
    (measured 0.906 at 50% KV on 2 cores, ~16 min)."""
    p = make_problem(load_cluster("single24"), M70)
    from llmsched.theory.placement.flow import FastFlow

    plc, v = best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, 80))
    r = simulate_plan(p, plc, duration_s=3600.0, warmup_s=1800.0, kv_fraction=0.5)
    assert r.max_flow_tok_s == pytest.approx(v, rel=1e-6)
    assert abs(r.ratio - 1.0) <= 0.10, r


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured 1.22x max flow with full-KV admission (batches larger "
                   "than T_i(k)'s typical batch); see docs/placement.md")
def test_single24_simulation_within_10pct_of_max_flow_full_kv():
    p = make_problem(load_cluster("single24"), M70)
    from llmsched.theory.placement.flow import FastFlow

    plc, _ = best_stage_plan(p, FastFlow(p), infinite_network_bound(p.caps, 80))
    r = simulate_plan(p, plc, duration_s=3600.0, warmup_s=1800.0, kv_fraction=1.0)
    assert abs(r.ratio - 1.0) <= 0.10, r


def test_admission_keeps_the_head_request_so_lengths_are_not_biased(tmp_path):
    """With a tight KV mark most admission attempts fail; the request at the head of the line must
    keep its lengths until it fits (redrawing it would favour short requests). The admitted means
    must match the length distribution itself (sampled independently here, 200k draws)."""
    import numpy as np

    from llmsched.theory.placement.simulate import MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS

    c = _chain_cluster(tmp_path, 1e9)
    p = make_problem(c, M70)
    plc = {0: (0, 12), 1: (12, 12), 2: (24, 12), 3: (36, 11), 4: (47, 11), 5: (58, 11), 6: (69, 11)}
    r = simulate_plan(p, plc, duration_s=900.0, warmup_s=0.0, prompt_len=750, output_len=240,
                      kv_fraction=0.02, length_cv=1.0, seed=3)
    rng = np.random.default_rng(11)
    sigma = np.sqrt(np.log1p(1.0))

    def truncated_mean(mean, cap):
        x = np.maximum(1, rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, 200_000).astype(int))
        return x[x <= cap].mean()

    assert r.completed_requests > 200
    assert r.admitted_mean_lengths[0] == pytest.approx(truncated_mean(750, MAX_PROMPT_TOKENS), rel=0.08)
    assert r.admitted_mean_lengths[1] == pytest.approx(truncated_mean(240, MAX_OUTPUT_TOKENS), rel=0.08)
