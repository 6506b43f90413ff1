"""The plan simulator's "typical" batching rule: one token budget per iteration, decodes first.

A node's iteration under `batch_limit="typical"` holds at most its typical batch's prompt plus
decode tokens (`profiles.typical_batch`), takes every queued decode first (up to that budget), and
fills the rest with prompt chunks in queue order. The separate-caps rule ("typical-split") is the
negative control: on a decode-heavy queue it leaves prompt slots unused while decodes wait, which
is what made cluster42 at length CV 0.5 realise 0.815 of its model value (docs/placement.md).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.theory.placement.flow import FastFlow, make_problem
from llmsched.theory.placement.heuristic import best_stage_plan
from llmsched.theory.placement.io import load_cluster
from llmsched.theory.placement.profiles import infinite_network_bound
from llmsched.theory.placement.simulate import _PlanRun
from llmsched.theory.placement.spec import MODELS

_P = make_problem(load_cluster("single24"), MODELS["llama-2-70b"])
_PLC, _ = best_stage_plan(_P, FastFlow(_P), infinite_network_bound(_P.caps, 80))
_NODE = min(_PLC)


def _run(batch_limit: str) -> _PlanRun:
    return _PlanRun(_P, _PLC, 60.0, 30.0, 750, 240, 1.0, 0.0, 0, 100_000, batch_limit, None)


def _queue(items: list[tuple[bool, int]]) -> list[tuple[int, int, bool]]:
    """Queue entries as the simulator keeps them: (request id, tokens, is prompt)."""
    return [(rid, tokens if is_prompt else 1, is_prompt) for rid, (is_prompt, tokens) in enumerate(items)]


def test_decode_heavy_queue_fills_the_whole_budget_and_split_caps_do_not():
    budget_run, split_run = _run("typical"), _run("typical-split")
    budget = budget_run.token_budget[_NODE]
    typ_prompt, typ_decode = split_run.pcap[_NODE], split_run.dmax[_NODE]
    assert budget == typ_prompt + typ_decode
    # more decodes than the typical batch's decode part, and one short prompt
    items = [(False, 1)] * (typ_decode + 5) + [(True, 3)]
    for run in (budget_run, split_run):
        run.queue[_NODE] = _queue(items)
    batch, prompt_tokens, decode_tokens = budget_run.take_batch(_NODE)
    assert decode_tokens == typ_decode + 5 and prompt_tokens == 3 and len(batch) == len(items)
    assert budget_run.queue[_NODE] == []
    # negative control: separate caps leave five decodes queued although the iteration has room
    batch, prompt_tokens, decode_tokens = split_run.take_batch(_NODE)
    assert decode_tokens == typ_decode and prompt_tokens == 3
    assert len(split_run.queue[_NODE]) == 5 and prompt_tokens + decode_tokens < budget


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3000)), max_size=80))
def test_one_iteration_respects_the_budget_and_the_queue_order(items):
    run = _run("typical")
    budget = run.token_budget[_NODE]
    queue = _queue(items)
    run.queue[_NODE] = list(queue)
    batch, prompt_tokens, decode_tokens = run.take_batch(_NODE)
    decodes = [it for it in queue if not it[2]]
    # every queued decode first, up to the budget (the profile's decode maximum is larger)
    assert decode_tokens == min(len(decodes), budget)
    # prompt chunks fill what is left, in queue order, a prompt leaving once its last chunk ran
    prompt_total = sum(it[1] for it in queue if it[2])
    assert prompt_tokens == min(prompt_total, budget - decode_tokens)
    assert prompt_tokens + decode_tokens <= budget
    finished_prompts, left = [], prompt_tokens
    for it in queue:
        if it[2] and left >= it[1]:
            finished_prompts.append(it)
            left -= it[1]
        elif it[2]:
            break
    assert [it for it in batch if it[2]] == finished_prompts
    # nothing lost or duplicated; what stays keeps its order
    assert sorted(batch + run.queue[_NODE]) == sorted(queue)
    assert run.queue[_NODE] == [it for it in queue if it not in batch]
    # the prompt at the head that did not finish keeps its progress for the next iteration
    if left:
        head = next(it for it in queue if it[2] and it not in batch)
        assert run.prompt_progress[(_NODE, head[0])] == left
