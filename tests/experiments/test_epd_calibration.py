"""The EPD reproduction's encode calibration: the bundled artifact log is self-consistent, the
calibrated encode closes the measured DistServe context stage, and the host term is what is left
after our GPU rooflines (so it vanishes when the measurement equals the rooflines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsched.experiments.reproductions import epd
from llmsched.sim.cost import BatchShape, build, iteration_time
from llmsched.sim.cost.encode import encode_time_s, host_s_per_tile_from_stage
from llmsched.sim.paths import DATA_DIR


def test_bundled_log_is_consistent_and_listed():
    t = pd.read_csv(DATA_DIR / epd.ARTIFACT_CONTEXT_CSV)
    assert len(t) == 100  # App. E.1: 100 requests per trial (baselines/pd/offline.py NUM_REQS)
    np.testing.assert_allclose(t["context_s"], t["context_end_s"] - t["context_begin_s"], atol=2e-6)
    assert (t["context_begin_s"] >= t["preprocessed_s"]).all() and (t["preprocessed_s"] >= t["issued_s"]).all()
    # the start-up steps left out are the first step of each of the 7 context workers: the 7 earliest
    # begins, each longer than every later step
    s = t.sort_values("context_begin_s")["context_s"].to_numpy()
    assert s[:epd.ARTIFACT_STARTUP_STEPS].min() > s[epd.ARTIFACT_STARTUP_STEPS:].max()
    assert len(epd.artifact_context_s()) == 100 - epd.ARTIFACT_STARTUP_STEPS
    manifest = (DATA_DIR / "reference" / "MANIFEST.csv").read_text()
    assert "epdserve/derived/pd_offline_context_stage.csv" in manifest


def test_calibrated_encode_closes_the_measured_context_stage():
    enc, roof = epd.encode_cost(True), epd.encode_cost(False)
    assert roof.host_s_per_tile == 0.0 and enc.host_s_per_tile > 0.0
    tiles = 2 * 10  # two 4032x3024 images, 10 tiles each (paper Table 3)
    prefill = iteration_time(build("roofline", epd.MODEL, epd.GPU), BatchShape.prefill_only(epd.ARTIFACT_PROMPT_TOKENS))
    measured = float(np.median(epd.artifact_context_s()))
    assert encode_time_s(enc, tiles) + prefill == pytest.approx(measured, rel=1e-9)
    # the host term is exactly the remainder after the ViT and prefill rooflines, per tile
    assert enc.host_s_per_tile == pytest.approx((measured - encode_time_s(roof, tiles) - prefill) / tiles, rel=1e-12)
    # negative control: a "measurement" equal to the rooflines leaves no host time
    assert host_s_per_tile_from_stage(encode_time_s(roof, tiles) + prefill, tiles,
                                      encode_time_s(roof, tiles) + prefill) == 0.0


def test_systems_use_the_artifact_layouts_and_irp_shards():
    c = epd.cluster("epd")
    assert [(g.role, g.count) for g in c.instances] == [("encode", 6), ("prefill", 1), ("decode", 1)]
    assert dict(c.encode_router_params) == {"unit": "image"}
    assert dict(epd.cluster("epd-no-irp").encode_router_params) == {"degree": 1, "unit": "image"}
    assert dict(epd.cluster("epd-tile-irp").encode_router_params) == {"unit": "tile"}
    assert [(g.role, g.count) for g in epd.cluster("distserve").instances] == [("prefill", 7), ("decode", 1)]
