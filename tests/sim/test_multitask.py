"""Multi-task requests: a child is released when its parent finishes and can be pinned to an
instance (the two-server cyclic network of Li–Dai–Peng §5.4 is built from these)."""

from __future__ import annotations

import numpy as np

from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.run import simulate
from tests.sim.helpers import UnitCost, workload


def test_child_arrives_when_parent_finishes_on_its_pinned_instance():
    # request 0 runs on instance 0 (prefill round + 2 decode rounds = 3 s); its child 1 is pinned
    # to instance 1 and must arrive exactly at t=3; request 2 is independent and pinned to 0.
    w = workload([0.0, 0.0, 0.5], [4, 4, 4], [3, 2, 1], parent=[-1, 0, -1], pin_instance=[0, 1, 0])
    cluster = ClusterSpec(instances=(InstanceSpec(count=2, kv_capacity_tokens=64),), router="round-robin")
    res = simulate(w, cluster, cost_models=lambda s: UnitCost())
    req = res.requests.set_index("request_id")
    assert req.loc[0, "finish_s"] == 3.0 and req.loc[0, "instance"] == 0
    assert req.loc[1, "arrival_s"] == 3.0 and req.loc[1, "instance"] == 1
    assert req.loc[1, "finish_s"] == 5.0  # prefill round [3,4) + one decode round [4,5)
    assert req.loc[2, "instance"] == 0


def test_children_of_a_rejected_request_are_rejected():
    w = workload([0.0, 0.0], [100, 4], [100, 2], parent=[-1, 0])
    cluster = ClusterSpec(instances=(InstanceSpec(kv_capacity_tokens=64),))
    res = simulate(w, cluster, cost_models=lambda s: UnitCost())
    assert res.requests["rejected"].tolist() == [True, True]
    assert np.isnan(res.requests["finish_s"]).all()


def test_merge_keeps_parents_and_pins():
    from llmsched.sim.workload.core import merge

    a = workload([0.0, 1.0, 2.0], [4, 4, 4], [3, 2, 1], parent=[-1, 0, 1], pin_instance=[0, -1, 1])
    b = workload([0.5, 1.5], [8, 8], [1, 1], parent=[-1, 0], pin_instance=[-1, 2])
    m = merge([a, b])
    # arrival order: a0 0.0, b0 0.5, a1 1.0, b1 1.5, a2 2.0 -> rows 0..4
    assert m.arrival_s.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert m.parent.tolist() == [-1, -1, 0, 1, 2]  # a1 -> a0, b1 -> b0, a2 -> a1
    assert m.pin_instance.tolist() == [0, -1, -1, 2, 1]
