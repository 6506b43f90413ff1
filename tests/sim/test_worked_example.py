"""Li–Dai–Peng (arXiv 2504.07347) Fig. 8: round-by-round batch compositions of four schedulers.

A, B, C are decoding with 2, 4, 3 tokens left; D and E (1 prefill token + 1 decode token each)
arrive during the first decode round. Every round takes one second (UnitCost), so the plans the
policy returns can be read off in order. Setup: A, B, C arrive at t=0 with a 1-token prompt and
3/5/4 output tokens (the first produced by the prefill round), D and E arrive at t=1.5.
"""

from __future__ import annotations

import pytest

from llmsched.policies import registry
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.run import simulate
from tests.sim.helpers import UnitCost, workload

NAMES = "ABCDE"
EXPECTED = {
    # (policy, b_max): rounds after the initial prefill round [Ap Bp Cp]
    ("vllm", 4): ["Ad Bd Cd", "Dp Ep", "Ad Bd Cd Dd", "Bd Cd Ed", "Bd"],
    ("fastertransformer", 4): ["Ad Bd Cd", "Ad Bd Cd", "Bd Cd", "Bd", "Dp Ep", "Dd Ed"],
    ("sarathi", 4): ["Ad Bd Cd", "Ad Bd Cd Dp", "Bd Cd Dd Ep", "Bd Ed"],
    ("orca", 5): ["Ad Bd Cd", "Ad Bd Cd Dp Ep", "Bd Cd Dd Ed", "Bd"],
}

_RECORDS: list[tuple[float, str]] = []


def _recording(name: str):
    base = registry.get(registry.BATCHING, name)

    class Recording:
        def __init__(self, **params):
            self.inner = base(**params)

        def plan(self, view):
            plan = self.inner.plan(view)
            decodes = view.decoding if plan.decodes is None else plan.decodes
            tokens = [f"{NAMES[r]}d" for r in decodes] + [f"{NAMES[r]}p" for r in plan.chunks]
            if tokens:  # an empty plan means the instance goes idle
                _RECORDS.append((view.now, " ".join(sorted(tokens))))
            return plan

    return Recording


@pytest.mark.parametrize("policy,b_max", list(EXPECTED))
@pytest.mark.parametrize("mode", ["step", "fast"])
def test_round_compositions(policy, b_max, mode):
    rec_name = f"recording-{policy}"
    registry.load_all()
    registry.register(registry.BATCHING, rec_name)(_recording(policy))
    _RECORDS.clear()
    w = workload([0, 0, 0, 1.5, 1.5], [1, 1, 1, 1, 1], [3, 5, 4, 2, 2])
    params = {"token_budget": b_max} if policy in ("vllm", "fastertransformer") else {}
    spec = InstanceSpec(batching=rec_name, batching_params=freeze_params(params), token_budget=b_max,
                        kv_capacity_tokens=1024)
    res = simulate(w, ClusterSpec(instances=(spec,)), mode=mode, cost_models=lambda s: UnitCost())
    registry.unregister(registry.BATCHING, rec_name)
    assert res.requests["finish_s"].notna().all()
    rounds = [comp for _, comp in _RECORDS]
    if mode == "fast":  # fast mode plans only at decision points: expand by the clock instead
        times = [t for t, _ in _RECORDS]
        rounds = [comp for k, (t, comp) in enumerate(_RECORDS)
                  for _ in range(round((times[k + 1] if k + 1 < len(times) else res.requests["finish_s"].max()) - t))]
    assert rounds[0] == "Ap Bp Cp"
    expected = [" ".join(sorted(r.split())) for r in EXPECTED[(policy, b_max)]]
    assert rounds[1:] == expected
    # the makespan is the number of rounds (1 s each), counted independently of the plans
    assert res.requests["finish_s"].max() == pytest.approx(1 + len(expected))
