"""Every cost spec drives a (small) simulation end to end through sim.run.simulate."""

import numpy as np
import pytest

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.cost.profiled import profiled_tables
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import kv_capacity_tokens
from llmsched.sim.workload.core import Workload


def _first_fitting_tp(t) -> int:
    for tp in t.tps:
        try:
            kv_capacity_tokens(t.model, t.gpu, tp)
            return tp
        except InputError:
            continue
    return t.tps[0]  # helix tables: the model is split over nodes in Helix; KV given explicitly below


CASES = [("roofline", "llama-2-7b", "a100-80gb", 1), ("roofline", "llama-2-70b", "h100-80gb", 4),
         ("roofline", "mistral-7b", "l4x2", 2), ("staircase", "codellama-34b", "a100-80gb", 2),
         ("linear:0.005,6e-5,2e-4,1e-7", "llama-2-7b", "t4", 1)] + [
    (f"profiled:{n}", t.model, t.gpu, _first_fitting_tp(t)) for n, t in profiled_tables().items()
    if not n.startswith("helix-") or n.endswith("a100-40gb")]


@pytest.mark.parametrize("cost,model,gpu,tp", CASES, ids=[c[0] + "-" + c[2] for c in CASES])
def test_simulate_with_cost_spec(cost, model, gpu, tp):
    from llmsched.sim.run import simulate
    rng = np.random.default_rng(1)
    n = 20
    w = Workload(arrival_s=np.cumsum(rng.exponential(0.2, n)), client=np.zeros(n, dtype=np.int64),
                 prompt_tokens=rng.integers(20, 600, n), output_tokens=rng.integers(2, 50, n))
    # Helix tables give whole-model times for models Helix splits over nodes: give KV room explicitly
    kv = 50_000 if cost.startswith("profiled:helix") else None
    spec = InstanceSpec(model=model, gpu=gpu, tp=tp, cost=cost, kv_capacity_tokens=kv)
    res = simulate(w, ClusterSpec(instances=(spec,)), seed=0)
    r = res.requests
    assert len(r) == n and np.all(np.isfinite(r["e2e_s"])) and np.all(r["e2e_s"] > 0)
