"""RAD (Resource-Aware Dynamic) batching — our reconstruction from arXiv 2508.01002's two principles.

Only the paper's abstract was readable (docs/theory/throughput.md, "RAD"): "optimal tiling" and
"dynamic resource allocation" between prefill and decode. Everything below the principles is ours:
the tile-aligned budget is derived from the instance's cost model, and the per-round split follows
the request cap. Owns only its decision rule; the engine owns memory, preemption and accounting.
"""

from __future__ import annotations

import numpy as np

from policies.api import InstanceView, Plan, PlanBuilder
from policies.registry import BATCHING, register


def _rates(cost_model, budget: int) -> np.ndarray:
    """Token rate b/t(b) for b = 1..budget, t from the cost model (a round of b fresh prefill tokens)."""
    from theory.batch_time import batch_time_from_cost_model, eval_batch_time

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
    """RAD (our reconstruction): tile-aligned budget from the cost model, dynamic prefill/decode split.

    Each round: every decode first (one token each, up to the request cap), then prefill chunks —
    started prefills before new admissions, FCFS — up to the tile-aligned budget b* (arg max of
    b/t(b) over b ≤ the instance budget). Dynamic allocation: when the decodes alone fill the request
    slots (#decoding ≥ cap − 1), a longer round cannot carry more decodes, so prefill only pads the
    round to the end of the tile the decodes already occupy. token_budget: override the instance
    budget before tiling (None = the instance's).
    """

    def __init__(self, cost_model=None, token_budget: int | None = None) -> None:
        if token_budget is not None and int(token_budget) < 1:
            raise ValueError(f"token_budget must be >= 1, got {token_budget}")
        self.cost_model = cost_model
        self.token_budget = None if token_budget is None else int(token_budget)
        self._tiles: dict[int, tuple[int, tuple[int, ...]]] = {}

    def tiles(self, budget: int) -> tuple[int, tuple[int, ...]]:
        if budget not in self._tiles:
            self._tiles[budget] = tile_plan(self.cost_model, budget)
        return self._tiles[budget]

    def round_budget(self, view: InstanceView) -> int:
        """Tokens this round may use: b*, or the end of the decodes' tile when the cap binds."""
        budget = view.token_budget if self.token_budget is None else self.token_budget
        best, ends = self.tiles(budget)
        cap = view.max_batch_requests
        n_dec = min(len(view.decoding), cap, best)
        if n_dec >= cap - 1 and n_dec > 0:
            for end in ends:
                if end > n_dec:
                    return end
        return best

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view, self.round_budget(view))
        b.decode_all()
        for rid in view.prefilling:
            b.chunk(rid)
        for rid in list(view.waiting):
            if not b.admit(rid):
                break
        return b.plan()
