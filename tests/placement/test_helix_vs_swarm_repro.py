"""The helix-placement headline (Helix vs Swarm simulated decode throughput of the artifact's own
layouts) on a short horizon: the comparison is built from the two simulations it reports."""

from __future__ import annotations

import pytest

from llmsched.experiments.registry import ReproContext
from llmsched.experiments.reproductions import helix
from llmsched.theory.placement.spec import MODELS


def test_helix_vs_swarm_headline_short(tmp_path, monkeypatch):
    monkeypatch.setattr(helix, "SIM_HORIZON_S", {"single24": 40.0})
    comps: list = []
    ae = helix._ae_table()
    table = helix._helix_vs_swarm(MODELS["llama-2-70b"], ReproContext(tmp_path, quick=True), comps, ae)
    assert list(table["layout"]) == ["helix", "swarm"] and (table["setup"] == "single24").all()
    # the artifact layouts' max flows in our model (docs/placement.md): 1289.6 and 757.9 tokens/s
    assert table["max_flow_tok_s"].tolist() == pytest.approx([1289.56, 757.9], abs=0.1)
    head = [c for c in comps if c.headline]
    assert len(head) == 1 and head[0].paper_value == pytest.approx(252.1 / 124.7)
    assert head[0].ours == pytest.approx(table["sim_decode_tok_s"].iloc[0] / table["sim_decode_tok_s"].iloc[1])
    assert head[0].relation == "ratio" and head[0].tolerance == helix.RATIO_TOLERANCE and head[0].direction == "> 1"
