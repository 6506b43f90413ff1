"""The preble-e2e workload families built from the artifact's loaders (WukLab/preble
`benchmark_workload_gen.py`): prefix structure, request counts and arrival order, derived by hand
from the loaders' rules (docs/setups/preble-e2e.md)."""

from __future__ import annotations

import itertools

import numpy as np

from llmsched.experiments.reproductions import preble as P


def _common(w, a: int, b: int) -> int:
    ha, hb = w.hashes(a), w.hashes(b)
    n = min(len(ha), len(hb))
    neq = np.flatnonzero(ha[:n] != hb[:n])
    return int(neq[0]) if len(neq) else n


def test_scaled_counts_is_the_loaders_ceil_rule():
    # raw (1, 2, 7), 25 requests: scale 2.5 -> ceil(2.5, 5, 17.5) = (3, 5, 18), 26 in all
    assert P._scaled_counts(np.array([1.0, 2.0, 7.0]), 25).tolist() == [3, 5, 18]


def test_video_qa_prefix_is_system_prompt_plus_video():
    w = P.video_qa(0, 600, 8.0)
    g = w.meta["row_labels"]["group"]
    # every prompt = 17-token system prompt + video (<= 8,192 - 17 tokens) + a 40-100 token question
    assert np.all(w.prompt_tokens <= P.VIDEO_PREFIX_CAP + 100)
    assert np.all(w.prompt_tokens >= P.VIDEO_SYSPROMPT + 10 * P.VIDEO_TOKENS_PER_S + 40)
    assert np.all(w.output_tokens >= 2) and np.all(w.output_tokens <= 12)
    # same video -> the full blocks of system prompt + video are shared, nothing after:
    # shared = (17 + V) // 64 with 17 + V = prompt - question, question in 40..100
    a, b = np.flatnonzero(g == g[0])[:2]
    shared = _common(w, a, b)
    assert 64 * shared <= w.prompt_tokens[a] - 40 and 64 * (shared + 1) > w.prompt_tokens[a] - 100
    # different videos share nothing at 64-token blocks (17 shared tokens < one block)
    c = int(np.flatnonzero(g != g[0])[0])
    assert _common(w, a, c) == 0
    # load follows video length: requests per video ~ proportional to its prefix length
    counts = np.bincount(g)
    lens = np.array([w.prompt_tokens[np.flatnonzero(g == k)[0]] for k in range(len(counts))])
    assert np.corrcoef(counts[counts > 0], lens[counts > 0])[0, 1] > 0.5
    # the loader's ceil rule: at least the asked number of requests
    assert w.n >= 600


def test_programming_shares_the_demonstration_then_the_problem():
    w = P.programming(0, 500, 1.0)
    g = w.meta["row_labels"]["group"]
    # prompt = 2,400 shared + problem (200-2,800) + 20-token uuid
    assert np.all(w.prompt_tokens >= 2400 + 200 + 20) and np.all(w.prompt_tokens <= 2400 + 2800 + 20)
    assert np.all(w.output_tokens <= 512)
    a, b = np.flatnonzero(g == g[0])[:2]
    c = int(np.flatnonzero(g != g[0])[0])
    # different problems share exactly the demonstration's full blocks: 2,400 // 64 = 37
    assert _common(w, a, c) == 2400 // 64
    # the same problem shares demonstration + problem: (prompt - 20) // 64 full blocks
    assert _common(w, a, b) == (int(w.prompt_tokens[a]) - 20) // 64
    assert len(np.unique(g)) == P.PROGRAMMING_PROBLEMS


def _in_rounds(w) -> bool:
    k = w.meta["row_labels"]["turn"]
    return all(w.arrival_s[k == t].min() >= w.arrival_s[k == t - 1].max() for t in range(1, int(k.max()) + 1))


def test_alfworld_rounds_and_growing_private_trajectories():
    w = P.alfworld(0, 900, 3.0)
    lab = w.meta["row_labels"]
    s, k = lab["session"], lab["turn"]
    assert len(np.unique(s)) == P.ALFWORLD_ENVS
    # open loop in rounds: every turn k arrives after every turn k-1 of every environment
    assert _in_rounds(w)
    # negative control: independent think times (multi_turn's default) break the rounds
    from llmsched.sim.workload.lengths import LengthSpec
    from llmsched.sim.workload.programs import multi_turn

    free = multi_turn(np.random.default_rng(0), np.sort(np.random.default_rng(1).uniform(0, 60, 50)),
                      LengthSpec("uniform", input_min=20, input_max=60, output_min=8, output_max=26), think_s=10.0)
    assert not _in_rounds(free)
    # turn k extends turn k-1 of the same environment by its output + a 20-60 token observation
    for env in np.unique(s)[:20]:
        rows = np.flatnonzero(s == env)
        rows = rows[np.argsort(k[rows])]
        for x, y in itertools.pairwise(rows):
            grow = int(w.prompt_tokens[y] - w.prompt_tokens[x] - w.output_tokens[x])
            assert 20 <= grow <= 60
            assert np.array_equal(w.hashes(y)[: len(w.hashes(x))], w.hashes(x))
    # environments share nothing (the "Environment ID" tag comes first)
    first = [int(np.flatnonzero((s == e) & (k == 0))[0]) for e in np.unique(s)[:10]]
    assert all(_common(w, first[0], f) == 0 for f in first[1:])
    # the context cap (4,096 - 26 output tokens)
    assert np.all(w.prompt_tokens[k > 0] <= P.ALFWORLD_CONTEXT - P.ALFWORLD_MAX_OUT)
    assert np.all(w.output_tokens <= P.ALFWORLD_MAX_OUT)


def test_early_turns_counts_turns_sent_before_their_predecessor_finished():
    from types import SimpleNamespace

    import pandas as pd

    from llmsched.sim.workload.lengths import LengthSpec
    from llmsched.sim.workload.programs import multi_turn

    fixed = LengthSpec("fixed", input_tokens=10, output_tokens=4)
    # session 0: turns at 0, 5, 7 s; session 1: turns at 1, 2 s
    w = multi_turn(np.random.default_rng(0), np.zeros(2), fixed,
                   turn_offsets_s=[np.array([0.0, 5.0, 7.0]), np.array([1.0, 2.0])], block_tokens=16)
    # rows sorted by arrival: (s0,t0)@0, (s1,t0)@1, (s1,t1)@2, (s0,t1)@5, (s0,t2)@7
    # finishes: s0 t0 at 4 (< 5: fine), s1 t0 at 3 (> 2: early), s0 t1 at 8 (> 7: early) -> 2 of 3
    res = SimpleNamespace(requests=pd.DataFrame({"finish_s": [4.0, 3.0, 9.0, 8.0, 10.0]}))
    assert P._early_turns(w, res) == 2 / 3
    # no sessions -> nan
    g = P.programming(0, 60, 1.0)
    assert np.isnan(P._early_turns(g, SimpleNamespace(requests=pd.DataFrame({"finish_s": np.ones(g.n)}))))


def test_headline_leaves_out_open_loop_points_that_sent_turns_early():
    import pandas as pd

    ratio = pd.DataFrame({"family": ["ALFWorld", "ALFWorld", "VideoQA", "Programming (measured rates)"],
                          "rps": [9.0, 18.0, 8.0, 9.44], "early_turns": [0.02, 0.74, float("nan"), float("nan")],
                          "mean_x": [3.7, 18.9, 9.1, 30.0], "p99_x": [4.6, 4.1, 6.4, 40.0],
                          "base_mean_s": [1.9, 15.1, 71.0, 1.0], "preble_mean_s": [0.5, 0.8, 7.8, 1.0],
                          "base_p99_s": [8.4, 35.1, 138.6, 1.0], "preble_p99_s": [1.8, 8.7, 21.7, 1.0]})
    kept = P._headline_points(ratio)
    # ALFWorld 18 (74% early) and the info-only family are out; ALFWorld 9 (2%) and VideoQA stay
    assert sorted(zip(kept["family"], kept["rps"], strict=True)) == [("ALFWorld", 9.0), ("VideoQA", 8.0)]
    mean_row, p99_row = P._headlines(ratio)[:2]
    assert mean_row.ours == 9.1 and "ALFWorld 18 req/s (18.9x mean)" in mean_row.note
    assert p99_row.ours == 6.4
    # negative control: with every point valid, the open-loop 18.9x would be the headline
    assert P._headlines(ratio.assign(early_turns=0.0, family=["ALFWorld", "ALFWorld", "VideoQA", "LooGLE"]))[0].ours == 30.0


def test_h100_setup_is_the_artifacts_two_tp4_llama3_70b_servers():
    from pathlib import Path

    from llmsched.experiments.registry import ReproContext
    from llmsched.sim.hardware import get_model
    from llmsched.sim.hardware.derived import kv_bytes_per_token_per_gpu, weight_bytes

    h = P.H100
    assert (h.model, h.gpu, h.tp, h.preble_chunk) == ("llama-3.1-70b", "h100-80gb", 4, 1024)
    # KV per instance, by hand: per rank 0.75 x 80 GiB - 70.6e9 x 2 B / 4 of weights - activations, over the
    # per-rank KV of a token (80 layers x 2 KV heads per rank x 128 x 2 (K, V) x 2 B = 81,920 B)
    assert kv_bytes_per_token_per_gpu(get_model("llama-3.1-70b"), 4) == 80 * 2 * 128 * 2 * 2
    upper = (0.75 * 80 * 2**30 - weight_bytes("llama-3.1-70b") / 4) / 81_920
    assert 0.9 * upper < h.kv_tokens <= upper
    pts = P._points(ReproContext(out_dir=Path("/tmp/preble-test"), quick=True), 0.25)
    h100 = [p for p in pts if p["setup"] == "H100"]
    a6000 = [p for p in pts if p["setup"] == "A6000"]
    assert h100 and a6000
    for p in h100:  # the catalogue cost of the spec (roofline at TP4), not the A6000 fit
        spec = p["cluster"].instances[0]
        assert p["cost_models"] is None and spec.cost == P.H100_COST and spec.tp == 4 and spec.count == 2
        assert p["gpus"] == 8
        want = 1024 if p["system"] == "Preble" else P.BASELINE_BUDGET
        assert spec.token_budget == min(want, P.FAMILY_BUDGET.get(p["family"], want))
    assert all("cost_models" not in p and p["cluster"].instances[0].tp == 1 for p in a6000)
    # the Preble systems run the artifact's rotating fcfs-mpq
    assert dict(next(p for p in pts if p["system"] == "Preble")["cluster"].instances[0].batching_params) == {"rotate": True}


def test_h100_programming_is_the_160_problem_config():
    w = P.H100_SWEEPS["Programming"][0](0, 400, 3.0)
    assert len(np.unique(w.meta["row_labels"]["group"])) == P.H100_PROGRAMMING_PROBLEMS == 160


def test_headline_is_the_max_over_both_setups_and_names_where():
    import pandas as pd

    ratio = pd.DataFrame({"setup": ["A6000", "A6000", "H100", "H100"], "family": ["LooGLE", "VideoQA", "LooGLE", "ToolBench"],
                          "rps": [1.4, 8.0, 1.4, 18.0], "early_turns": [float("nan")] * 4,
                          "mean_x": [13.1, 9.1, 6.0, 14.0], "p99_x": [6.9, 6.4, 7.5, 5.0],
                          "base_mean_s": [25.0, 71.0, 8.4, 30.0], "preble_mean_s": [1.9, 7.8, 1.4, 2.1],
                          "base_p99_s": [70.0, 138.0, 35.0, 50.0], "preble_p99_s": [10.1, 21.7, 4.7, 10.0]})
    rows = {c.metric: c for c in P._headlines(ratio)}
    mean_row = rows["max over workloads x loads: RR+LPM / Preble mean latency"]
    p99_row = rows["max over workloads x loads: RR+LPM / Preble p99 latency"]
    assert (mean_row.ours, p99_row.ours) == (14.0, 7.5)
    assert mean_row.note.startswith("at H100 ToolBench 18 req/s") and p99_row.note.startswith("at H100 LooGLE 1.4")
    assert rows["A6000 setup: max over workloads x loads: RR+LPM / Preble mean latency"].ours == 13.1
    assert rows["H100 setup: max over workloads x loads: RR+LPM / Preble p99 latency"].ours == 7.5
    # negative control: over the A6000 rows only, the headline is the A6000 maximum
    assert P._headlines(ratio[ratio["setup"] == "A6000"])[0].ours == 13.1
