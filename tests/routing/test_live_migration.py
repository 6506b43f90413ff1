"""Multi-stage live migration (engine hook used by Llumnix and spot): the request keeps decoding
while earlier stages copy its KV, so its downtime is the last stage's transfer only; stop-and-copy
moves the whole KV while the request waits. Restart recomputes the KV elsewhere."""

from __future__ import annotations

from unittest import mock

import pytest

import llmsched.sim.run
from llmsched.policies import registry
from llmsched.sim.config import ClusterSpec, InstanceSpec
from llmsched.sim.run import simulate
from tests.sim.helpers import LinearCost, workload

BYTES_PER_TOKEN = 2 * 32 * 4096 * 2  # llama-2-7b fp16 K and V: 524,288 B (sim.hardware)
BW, LAT = 5e8, 1e-3  # a slow link: ~1.05 ms per KV token
COST = LinearCost(a=0.01, b=1e-5, c=0.0, d=0.0)  # 10 ms per decode iteration


class _MoveOnce:
    """Route to 0; at the first tick (t = 1 s) move request 0 to instance 1 by `how`."""

    tick_interval_s = 1.0

    def __init__(self, how: str) -> None:
        self.how = how
        self.done = False

    def route(self, rid, view):
        return 0

    def tick(self, view):
        if not self.done:
            self.done = True
            if self.how == "live":
                assert view.migrate_live(0, 1, max_stages=3, last_stage_max_blocks=1)
            elif self.how == "stop-and-copy":
                assert view.migrate(0, 1)
            else:
                assert view.restart(0, 1)


def _run(how: str):
    w = workload([0.0], [1000], [400])
    cluster = ClusterSpec(instances=(InstanceSpec(count=2, kv_capacity_tokens=4096, token_budget=2048),),
                          kv_link_bandwidth_Bps=BW, kv_link_latency_s=LAT)
    router = _MoveOnce(how)
    orig = llmsched.sim.run.make_policy

    def fake(family, name, params, **kw):
        return router if family == registry.ROUTING else orig(family, name, params, **kw)

    with mock.patch.object(llmsched.sim.run, "make_policy", fake):
        return simulate(w, cluster, cost_models=lambda s: COST).requests.iloc[0]


def test_live_migration_downtime_is_the_last_stage_only():
    live, stop = _run("live"), _run("stop-and-copy")
    per_token = BYTES_PER_TOKEN / BW
    for r in (live, stop):
        assert r["migrations"] == 1 and r["instance"] == 1 and r["generated_tokens"] == 400
    # stop-and-copy: at t ≈ 1 s the request holds ~1000 + 98 tokens of KV -> the gap is at least
    # LAT + 1000 x 1.05 ms ≈ 1.05 s
    assert stop["tbt_max_s"] >= LAT + 1000 * per_token
    # live: the last stage carries at most 1 block (16 tokens) plus the token being written ->
    # gap <= LAT + 17 x 1.05 ms + two 10 ms iterations (the one in flight and the first on dst)
    assert live["tbt_max_s"] <= LAT + 17 * per_token + 2 * 0.0101
    assert live["finish_s"] < stop["finish_s"]


def test_restart_recomputes_on_the_destination():
    r = _run("restart")
    assert r["instance"] == 1 and r["migrations"] == 0 and r["preemptions"] == 1
    assert r["generated_tokens"] == 400
    # the whole prompt + generated tokens are recomputed there: one prefill of ~1100 tokens at
    # 1e-5 s/token on top of 10 ms, so the gap is > 10 ms but no link transfer is involved
    assert r["tbt_max_s"] == pytest.approx(0.01 + 1e-5 * (1000 + 98), abs=0.0002)
