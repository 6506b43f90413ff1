"""PerLLM's CS-UCB (Yang et al., arXiv 2405.14636) and a tier-only baseline for edge-cloud clusters.

PerLLM schedules LLM services over edge and cloud servers that differ in compute, uplink and
energy. It casts the assignment as a bandit with a constraint-satisfaction mechanism: each service
should finish within its processing-time requirement, at the least energy. CS-UCB, as we read it:

    for the arriving request r of service type c (its client):
        arms = the instances; for each arm j with observations of type c:
            w_j = outstanding tokens of j + prompt tokens of r + mean output tokens of type c
                                                              (the work r finds and brings there)
            T_lcb(c, j) = w_j * mean(seconds per token of work) * (1 - bonus)
            E_lcb(c, j) = mean(energy of a type-c request) * (1 - bonus)
            bonus = beta * sqrt(2 ln t / n)        (t: type-c requests routed, n: arm's pulls:
                                                    observed + still in flight)
        an arm never tried for c is tried first (one outstanding probe at a time);
        feasible = {j : T_lcb(c, j) <= deadline}
        choose argmin_{j in feasible} E_lcb(c, j), else argmin_j T_lcb(c, j)

Observations are what the engine recorded for finished requests: processing time = finish -
arrival (upload, queueing and inference), divided by the work w_j it found when it was routed
(the load is the bandit's context: without it, feedback that arrives only when a request finishes
lets a queue grow long before its times are seen), and energy = the request's `energy_j` (its
share of the iterations it was in; idle energy is not attributed to requests). Feedback is delayed
(a request is observed when it finishes), so an arm's pull count in the bonus includes its pulls
still in flight, as UCB with delayed feedback does (Joulani, Gyorgy, Szepesvari, ICML 2013: update
the counts at selection); counting observations only lets a slow arm, observed once, look free
(negative optimistic cost) to every request routed before its next observation arrives.

Unknown paper details and our choices (docs/policies.md): the context is the client (service type);
means are exponentially weighted (`ema`, the servers' load changes over time); the bonus is relative
to the arm's mean (times and energies differ by orders of magnitude between services); one deadline
for all requests (`deadline_s`) unless the workload gives a finite TTFT SLO, which is then read as
the request's processing-time requirement; transmission energy is not in the estimate (the
engine books link time, not link energy; `llmsched.sim.energy.transmission_energy_j` prices bytes).
"""

from __future__ import annotations

import math
from typing import Any

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.config import TIERS
from llmsched.sim.params import declare, number, one_of
from llmsched.sim.policy_api import ClusterView

#: Our default processing-time requirement (the paper's per-service values were not retrievable).
DEFAULT_DEADLINE_S = 30.0


def _nonnegative(name: str, value: Any, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or (
            not allow_inf and not math.isfinite(value)):
        raise ValueError(f"{name} must be a {'' if allow_inf else 'finite '}number >= 0, got {value!r}")
    return float(value)


class _Arm:
    __slots__ = ("energy_j", "n", "s_per_token")

    def __init__(self) -> None:
        self.n = 0
        self.s_per_token = 0.0  # processing seconds per token of work found at routing
        self.energy_j = 0.0

    def observe(self, s_per_token: float, energy_j: float, ema: float) -> None:
        self.n += 1
        w = 1.0 / self.n if self.n * ema < 1.0 else ema  # plain mean until 1/ema observations
        self.s_per_token += w * (s_per_token - self.s_per_token)
        self.energy_j += w * (energy_j - self.energy_j)


@register(ROUTING, "cs-ucb")
class CSUCB:
    """PerLLM's CS-UCB (arXiv 2405.14636): each request to the least-energy instance whose optimistic processing time meets its deadline, learnt per service type by a UCB bandit from finished requests.

    deadline_s: processing-time requirement (a request's finite TTFT SLO overrides it; inf = no
    constraint: plain energy-minimising UCB); beta: exploration weight; ema: weight of a new
    observation once an arm has 1/ema of them.
    """

    PARAMS = declare(
        deadline_s=number(0, low_open=True, finite=False, doc="processing-time requirement, s (inf: none)"),
        beta=number(0, doc="exploration weight"),
        ema=number(0, 1, low_open=True, doc="weight of a new observation in the running means"))

    def __init__(self, deadline_s: float = DEFAULT_DEADLINE_S, beta: float = 0.5, ema: float = 0.1) -> None:
        self.deadline_s = _nonnegative("deadline_s", deadline_s, allow_inf=True)
        if self.deadline_s == 0:
            raise ValueError("deadline_s must be > 0 seconds")
        self.beta = _nonnegative("beta", beta)
        self.ema = _nonnegative("ema", ema)
        if not 0 < self.ema <= 1:
            raise ValueError(f"ema must be in (0, 1], got {ema!r}")
        self._arms: dict[tuple[int, int], _Arm] = {}
        self._rounds: dict[int, int] = {}
        self._pending: dict[int, tuple[int, int, int]] = {}  # rid -> (type, instance, work), not yet observed
        self._probing: set[tuple[int, int]] = set()  # (type, instance) with an unobserved first request
        self._in_flight: dict[tuple[int, int], int] = {}  # (type, instance) -> routed, not yet observed
        self._output: dict[int, float] = {}  # type -> mean output tokens of its finished requests
        self.infeasible = 0  # requests for which no arm met the deadline

    def _harvest(self, view: ClusterView) -> None:
        done = [rid for rid in self._pending if not math.isnan(view.finish_s(rid))]
        for rid in done:
            c, j, work = self._pending.pop(rid)
            self._probing.discard((c, j))
            self._in_flight[(c, j)] -= 1
            arm = self._arms.setdefault((c, j), _Arm())
            arm.observe((view.finish_s(rid) - view.arrival_s(rid)) / work, view.energy_j(rid), self.ema)
            mean = self._output.get(c)
            out = view.output_tokens(rid)
            self._output[c] = out if mean is None else mean + self.ema * (out - mean)

    def _deadline(self, rid: int, view: ClusterView) -> float:
        slo = view.ttft_slo_s(rid)
        return slo if math.isfinite(slo) else self.deadline_s

    def route(self, rid: int, view: ClusterView) -> int:
        self._harvest(view)
        c = view.client(rid)
        t = self._rounds[c] = self._rounds.get(c, 0) + 1
        n = view.n_instances
        own = view.prompt_tokens(rid) + round(self._output.get(c, 0.0))  # never its true output
        work = [view.instance(j).outstanding_tokens + own for j in range(n)]
        untried = [j for j in range(n) if (c, j) not in self._arms and (c, j) not in self._probing]
        if untried:
            j = untried[0]
            self._probing.add((c, j))
        else:
            j = self._choose(c, t, work, self._deadline(rid, view))
        self._pending[rid] = (c, j, work[j])
        self._in_flight[(c, j)] = self._in_flight.get((c, j), 0) + 1
        return j

    def _choose(self, c: int, t: int, work: list[int], deadline_s: float) -> int:
        scored = []
        for j in range(len(work)):
            arm = self._arms.get((c, j))
            if arm is None:  # its probe has not finished: no estimate yet
                continue
            # relative optimism (times and energies differ by orders of magnitude between services);
            # below zero while an arm has few observations, so it is tried again
            pulls = arm.n + self._in_flight.get((c, j), 0)
            lower = 1.0 - self.beta * math.sqrt(2.0 * math.log(max(t, 2)) / pulls)
            scored.append((work[j] * arm.s_per_token * lower, arm.energy_j * lower, j))
        if not scored:  # every arm's probe is in flight: spread the requests in turn
            return t % len(work)
        feasible = [s for s in scored if s[0] <= deadline_s]
        if feasible:
            return min(feasible, key=lambda s: (s[1], s[0], s[2]))[2]
        self.infeasible += 1
        return min(scored, key=lambda s: (s[0], s[2]))[2]

    def stats(self) -> dict[str, int]:
        return {"infeasible": self.infeasible}


@register(ROUTING, "tier-only")
class TierOnly:
    """Every request to one server class (edge-only / cloud-only baselines): the instance of that tier with the fewest outstanding tokens.

    tier: "cloud" or "edge"; a cluster without such an instance falls back to all instances.
    """

    PARAMS = declare(tier=one_of(*TIERS, doc="the server class every request goes to"))

    def __init__(self, tier: str = "cloud") -> None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        self.tier = tier

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        n = view.n_instances
        pool = [j for j in range(n) if view.instance(j).spec.tier == self.tier] or list(range(n))
        return min(pool, key=lambda j: (view.instance(j).outstanding_tokens, j))


__all__ = ["CSUCB", "DEFAULT_DEADLINE_S", "TierOnly"]
