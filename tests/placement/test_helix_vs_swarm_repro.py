"""The helix-vs-swarm headline (Helix vs Swarm simulated decode throughput of the artifact's own
layouts, each under its own request scheduler) on a short horizon: the comparisons are built from
the simulations the table reports."""

from __future__ import annotations

import pytest

from llmsched.experiments.registry import ReproContext, all_reproductions
from llmsched.experiments.reproductions import helix
from llmsched.theory.placement.spec import MODELS


def test_helix_vs_swarm_headline_short(tmp_path, monkeypatch):
    monkeypatch.setattr(helix, "QUICK_DURATION_S", 40.0)
    monkeypatch.setattr(helix, "AE_WARMUP_S", 10.0)
    comps: list = []
    ae = helix._ae_table()
    table = helix._helix_vs_swarm(MODELS["llama-2-70b"], ReproContext(tmp_path, quick=True), comps, ae)
    assert list(zip(table["layout"], table["router"])) == [("helix", "maxflow"), ("swarm", "swarm"),
                                                           ("swarm", "maxflow")]
    assert (table["setup"] == "single24").all()
    # the artifact layouts' max flows in our model (docs/placement.md): 1289.6 and 757.9 tokens/s
    assert table["max_flow_tok_s"].tolist() == pytest.approx([1289.56, 757.9, 757.9], abs=0.1)
    # Swarm's run is a closed loop of the AE's 180 requests; the KV cache holds them
    assert table["inflight_cap"].iloc[1] == 180 and 0 < table["kv_peak_frac"].iloc[1] < 1
    head = [c for c in comps if c.headline]
    assert len(head) == 1 and head[0].paper_value == pytest.approx(252.1 / 124.7)
    dec = table["sim_decode_tok_s"]
    assert head[0].ours == pytest.approx(dec.iloc[0] / dec.iloc[1])
    assert head[0].relation == "ratio" and head[0].tolerance == helix.RATIO_TOLERANCE and head[0].direction == "> 1"
    ablation = [c for c in comps if "routed by max flow instead" in c.metric]
    assert len(ablation) == 1 and ablation[0].ours == pytest.approx(dec.iloc[0] / dec.iloc[2])


def test_helix_vs_swarm_is_its_own_reproduction():
    assert {"helix-placement", "helix-vs-swarm"} <= set(all_reproductions())
