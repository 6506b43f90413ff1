"""The scls reproduction's building blocks: its systems run, and its ablation metrics measure what
they claim (recompute only under slices; ILS capped at the worst-case-safe request count)."""

from __future__ import annotations

import pytest

from llmsched.experiments.reproductions import scls as repro


@pytest.mark.parametrize("system", ["scls", "sls", "ils", "scls-rr", "scls-fcfs"])
def test_each_system_runs_and_serves_everything(system):
    row = repro.one_run(system, rate=8.0, n=60, seed=0)
    assert row["num_finished"] == row["num_requests"] == 60
    assert row["completion_std_s"] >= 0 and row["busy_max_over_mean"] >= 1.0
    if system.startswith("scls"):
        # some ShareGPT outputs exceed one 128-token slice: they come back and are recomputed
        assert row["slices_ended"] > 0 and row["prefill_per_prompt_token"] > 1.0
    else:
        assert row["slices_ended"] == 0 and row["prefill_per_prompt_token"] == pytest.approx(1.0)


def test_one_slice_as_long_as_the_maximal_generation_recomputes_nothing():
    row = repro.one_run("scls", rate=8.0, n=60, seed=0, slice_tokens=repro.MAX_GENERATION_TOKENS)
    assert row["slices_ended"] == 0 and row["prefill_per_prompt_token"] == pytest.approx(1.0)


def test_ils_cap_is_the_worst_case_safe_count():
    c = repro.cluster("ils")
    # 121,366 KV tokens (Llama-2-7B, A100-80GB) // (1,024 + 1,024) = 59
    assert c.instances[0].max_batch_requests == 59
