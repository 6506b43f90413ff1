"""The four stylised batching baselines of Li–Dai–Peng (arXiv 2504.07347, §4 and Fig. 8).

vLLM (prefill-first, whole prompts, no mixing), FasterTransformer (decode-first, no mixing),
Orca (prefill-first, chunked, mixed) and Sarathi-Serve (decode-first, stall-free, chunked to a
token budget). Each reads like its one-line rule; budgets and caps come from the instance spec.
"""

from __future__ import annotations

from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, integer
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder

# Without chunked prefill, vLLM batches whole prompts up to max_num_batched_tokens, which defaults
# to the model's context length (vLLM v0 `SchedulerConfig`: max(max_model_len, 2048)); 8192 covers
# the ShareGPT length file (max total 8,149 tokens). Li–Dai–Peng's b_max is passed explicitly.
WHOLE_PROMPT_BUDGET = 8192


def _finish_started_prefills(b: PlanBuilder, view: InstanceView) -> int:
    """Schedule what is left of prompts already admitted (a whole-prompt round whose cached prefix
    was evicted before it ran leaves some); returns the tokens scheduled."""
    return sum(b.chunk(rid) for rid in view.prefilling)


def _admit_in_order(b: PlanBuilder, view: InstanceView, whole: bool = False) -> None:
    """Admit waiting requests in queue order until the head does not fit (no skipping). Planning
    leaves the queue as it is (admission happens after the plan), so it is read in place: a plan
    costs what it admits, not the queue's length."""
    for rid in view.waiting:
        if not b.admit(rid, whole=whole):
            break


@register(BATCHING, "vllm")
class VLLM:
    """vLLM v0 style: a round of whole prefills whenever one fits, else a round of decodes.

    token_budget: tokens per round (b_max), for prefill and decode rounds alike.
    """

    PARAMS = declare(token_budget=integer(1, doc="tokens per round (b_max)"))

    def __init__(self, token_budget: int = WHOLE_PROMPT_BUDGET) -> None:
        self.token_budget = token_budget

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view, self.token_budget)
        continued = _finish_started_prefills(b, view)
        _admit_in_order(b, view, whole=True)
        if b.admitted or continued:
            return b.plan()
        b = PlanBuilder(view, self.token_budget)
        b.decode_all()
        return b.plan()


@register(BATCHING, "fastertransformer")
class FasterTransformer:
    """FasterTransformer style: decode-only rounds while any decode is pending, else whole prefills.

    token_budget: tokens per round (b_max), for prefill and decode rounds alike.
    """

    PARAMS = declare(token_budget=integer(1, doc="tokens per round (b_max)"))

    def __init__(self, token_budget: int = WHOLE_PROMPT_BUDGET) -> None:
        self.token_budget = token_budget

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view, self.token_budget)
        if view.decoding:
            b.decode_all()
        else:
            _finish_started_prefills(b, view)
            _admit_in_order(b, view, whole=True)
        return b.plan()


@register(BATCHING, "orca")
class Orca:
    """Orca style: fill the budget with prefill tokens first (chunked), then pack decodes."""

    PARAMS = declare()

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view)
        for rid in view.prefilling:
            b.chunk(rid)
        _admit_in_order(b, view)
        b.decode_all()
        return b.plan()


@register(BATCHING, "sarathi")
class Sarathi:
    """Sarathi-Serve: every decode first (one token each), then prefill chunks up to the budget,
    continuing started prefills before admitting new ones (stall-free batching)."""

    PARAMS = declare()

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view)
        b.decode_all()
        for rid in view.prefilling:
            b.chunk(rid)
        _admit_in_order(b, view)
        return b.plan()
