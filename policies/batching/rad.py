"""RAD (Resource-Aware Dynamic) batching — our reconstruction from arXiv 2508.01002's two principles.

Only the paper's abstract was readable (docs/theory/throughput.md §6): "optimal tiling" and
"dynamic resource allocation" between prefill and decode. Everything below the principles is ours:
tile-aligned round sizes derived from the instance's cost model, and a backlog-weighted (MaxWeight)
choice among them each round. Owns only its decision rule; the engine owns memory and accounting.
"""

from __future__ import annotations

import numpy as np

from llmsched.policies.registry import BATCHING, register
from llmsched.sim.params import declare, integer
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder


def _rates(cost_model, budget: int) -> np.ndarray:
    """Token rate b/t(b) for b = 1..budget, t from the cost model (a round of b fresh prefill tokens)."""
    from llmsched.theory.batch_time import batch_time_from_cost_model, eval_batch_time

    grid = np.arange(1, budget + 1, dtype=np.float64)
    t = eval_batch_time(batch_time_from_cost_model(cost_model), grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(t > 0, grid / t, np.inf)
    return r


def tile_plan(cost_model, budget: int) -> tuple[int, tuple[int, ...]]:
    """(b*, tile ends) for a cost model and an instance budget.

    b* = argmax_{b ≤ budget} b/t(b) (smallest on ties): the tile-aligned budget ("optimal tiling").
    Tile ends: every b ≤ b* at which the rate b/t(b) is a strict local maximum, plus b* — for a
    staircase t = c + a⌈b/b0⌉ these are the multiples of b0; for a linear or constant t only b*.
    Without a cost model every round may use the instance budget (b* = budget).
    """
    if cost_model is None or budget < 1:
        return budget, (budget,)
    r = _rates(cost_model, budget)
    if not np.all(np.isfinite(r)):  # zero-time rounds: no tiling information
        return budget, (budget,)
    best = int(np.argmax(r)) + 1
    rr = r[:best]
    nxt = np.append(rr[1:], -np.inf)
    ends = [int(i) + 1 for i in np.flatnonzero(rr > nxt * (1 + 1e-12))]
    if not ends or ends[-1] != best:
        ends.append(best)
    return best, tuple(ends)


@register(BATCHING, "rad")
class RAD:
    """RAD (our reconstruction): tile-aligned rounds from the cost model, backlog-weighted prefill/decode split.

    Optimal tiling: round sizes are tile ends of the cost model (where b/t(b) peaks; multiples of b0
    for a staircase) up to b* = arg max b/t(b) over b ≤ the instance budget. Dynamic allocation: each
    round takes every decode it can (up to the request cap) and picks the tile end T maximising the
    backlog-weighted rate (Q_p·p(T) + Q_d·d(T)) / t(p(T) + d(T)), where Q_p = prompt tokens still to
    compute and Q_d = decode tokens still to generate by the running requests (known output lengths:
    a simulator oracle), p(T) = prefill tokens that fit in T. A MaxWeight rule: with a long prefill
    backlog it fills b* (work-conserving); when the request cap bounds the decodes it keeps rounds
    short. token_budget: override the instance budget before tiling (None = the instance's).
    """

    PARAMS = declare(token_budget=integer(1, optional=True, doc="tokens per round"))

    def __init__(self, cost_model=None, token_budget: int | None = None) -> None:
        self.cost_model = cost_model
        self.token_budget = None if token_budget is None else int(token_budget)
        self._tiles: dict[int, tuple[int, tuple[int, ...], np.ndarray | None]] = {}

    def tiles(self, budget: int) -> tuple[int, tuple[int, ...], np.ndarray | None]:
        """(b*, tile ends, t(b) for b = 0..budget or None without a cost model)."""
        if budget not in self._tiles:
            best, ends = tile_plan(self.cost_model, budget)
            times = None
            if self.cost_model is not None:
                from llmsched.theory.batch_time import batch_time_from_cost_model, eval_batch_time

                grid = np.arange(0, budget + 1, dtype=np.float64)
                times = eval_batch_time(batch_time_from_cost_model(self.cost_model), np.maximum(grid, 1.0))
            self._tiles[budget] = (best, ends, times)
        return self._tiles[budget]

    def round_budget(self, view: InstanceView) -> int:
        """Tokens this round may use: the tile end with the largest backlog-weighted rate."""
        budget = view.token_budget if self.token_budget is None else self.token_budget
        best, ends, times = self.tiles(budget)
        if times is None or len(ends) == 1:
            return best
        cap = view.max_batch_requests
        q_p = sum(view.remaining_prefill(r) for r in view.prefilling) + sum(
            view.remaining_prefill(r) for r in view.waiting)
        if q_p == 0:
            return best
        decoding = view.decoding
        q_d = sum(view.output_tokens(r) - view.generated_tokens(r) for r in decoding)
        n_dec = len(decoding)
        best_score, choice = -1.0, best
        for end in ends:
            d = min(n_dec, cap - 1, end)  # a prefill chunk takes one of the cap's slots
            p = min(end - d, q_p)
            if p < 1 and d < 1:
                continue
            score = (q_p * p + q_d * d) / float(times[p + d])
            if score > best_score * (1 + 1e-12):
                best_score, choice = score, end
        return choice

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view, self.round_budget(view))
        budget = view.token_budget if self.token_budget is None else self.token_budget
        # the weights change every round; with a single tile the plan is Sarathi-Serve's at b*
        b.replan_each_iteration = len(self.tiles(budget)[1]) > 1
        b.decode_all()
        for rid in view.prefilling:
            b.chunk(rid)
        for rid in list(view.waiting):
            if not b.admit(rid):
                break
        return b.plan()
