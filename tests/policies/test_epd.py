"""EPD (encode pools, embedding transfer, in-iteration encoding, the epd-irp router): hand-derived
encode and transfer times, IRP with a no-IRP control, invariants and fast == step with encode
pools, and bad inputs (one line, exit 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig
from llmsched.sim.cost.encode import (
    EncodeRoofline,
    LinearEncodeCost,
    encode_time_s,
    host_s_per_tile_from_stage,
)
from llmsched.sim.cost.roofline import RooflineParams
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import get_model
from llmsched.sim.run import simulate
from tests.sim.helpers import LinearCost, assert_same_run, workload

MODEL = "minicpm-v-2.6"
# Encode: 0.01 s per batch + 0.002 s per tile; 64 image tokens per tile; 1000 bytes per image token.
ENC = LinearEncodeCost(batch_s=0.01, tile_s=0.002, tokens_per_tile=64, embedding_bytes_per_token=1000.0)
# Iterations: 0.01 s + 1e-4 s per prefill token (+ decode terms, unused before the first token).
COST = LinearCost(a=0.01, b=1e-4, c=0.0, d=0.0)


def spec(role: str = "mixed", count: int = 1, **kw) -> InstanceSpec:
    return InstanceSpec(model=MODEL, gpu="a100-80gb", role=role, count=count, batching="vllm",
                        max_batch_requests=kw.pop("max_batch_requests", 4), kv_capacity_tokens=4096,
                        prefix_cache=False, **kw)


def epd(encoders: int = 1, degree: int | None = None, bw: float = 1e9, lat: float = 0.001,
        unit: str | None = None) -> ClusterSpec:
    params = (*(() if degree is None else (("degree", degree),)), *(() if unit is None else (("unit", unit),)))
    return ClusterSpec(instances=(spec("encode", encoders), spec("prefill"), spec("decode")),
                       encode_router="epd-irp", encode_router_params=params,
                       kv_link_bandwidth_Bps=bw, kv_link_latency_s=lat)


def run(w, cluster, mode="fast"):
    return simulate(w, cluster, mode=mode, cost_models=lambda s: COST, encode_costs=lambda s: ENC)


def image_request(image_tokens: int, text: int = 10, images: int = 1, at: float = 0.0, output: int = 2):
    return workload([at], [text + image_tokens], [output], images=[images], image_tokens=[image_tokens])


# ---------------------------------------------------------------------------- encode roofline
def test_encode_roofline_one_tile_hand_derived():
    # MiniCPM-V 2.6's SigLIP on an A100-80GB (312e12 FLOP/s, 2039e9 B/s) with every efficiency 1 and
    # no overheads. One 448 px tile = (448/14)^2 = 1024 ViT tokens; h = 1152, f = 4304.
    # Layer weights W = 4h^2 + 2hf = 5,308,416 + 9,916,416 = 15,224,832.
    # linear = max(2 W T / peak = 3.1180e10 / 312e12 = 9.99374e-5,
    #              (2W + T (18h + 4f) 2) / bw = (30,449,664 + 77,725,696) / 2039e9 = 5.3053e-5) = 9.99374e-5
    # attention = max(4 h L^2 / peak = 4,831,838,208 / 312e12 = 1.54867e-5, 4 h T 2 / bw = 4.63e-6) = 1.54867e-5
    # layer = 1.154240e-4; 26 layers = 3.001025e-3
    # projector = max(65.2969e9 FLOP / 312e12 = 2.09285e-4, 68.354e6 x 2 B / 2039e9 = 6.70e-5) = 2.09285e-4
    # encode = 3.001025e-3 + 2.09285e-4 = 3.210310e-3 s
    p = RooflineParams(eff_compute=1.0, eff_memory=1.0, eff_attention=1.0, layer_overhead_s=0.0,
                       attention_overhead_s=0.0, iteration_overhead_s=0.0, request_overhead_s=0.0)
    enc = EncodeRoofline.create(MODEL, "a100-80gb", p)
    assert encode_time_s(enc, 1) == pytest.approx(3.210310e-3, rel=1e-6)
    assert encode_time_s(enc, 0) == 0.0
    # 10 tiles: 10x the per-token terms, the weights read once: less than 10x one tile
    assert encode_time_s(enc, 10) <= 10 * encode_time_s(enc, 1)
    assert enc.embedding_bytes_per_token == 3584 * 2  # Qwen2-7B hidden, fp16


def test_encode_host_term_adds_per_tile_and_is_derived_from_a_stage():
    # Same all-ones roofline as above (one tile 3.210310e-3 s); a host term of 0.05 s per tile adds
    # 0.05 s to one tile and 0.5 s to ten, and nothing to zero tiles.
    p = RooflineParams(eff_compute=1.0, eff_memory=1.0, eff_attention=1.0, layer_overhead_s=0.0,
                       attention_overhead_s=0.0, iteration_overhead_s=0.0, request_overhead_s=0.0)
    gpu = EncodeRoofline.create(MODEL, "a100-80gb", p)
    host = gpu.with_host(0.05)
    assert encode_time_s(host, 1) == pytest.approx(3.210310e-3 + 0.05, abs=1e-9)
    assert encode_time_s(host, 10) == pytest.approx(encode_time_s(gpu, 10) + 0.5, rel=1e-12)
    assert encode_time_s(host, 0) == 0.0
    assert host.components([10])["host"][0] == pytest.approx(0.5)
    # a stage of 1.0 s over 4 tiles whose GPU part is modelled at 0.2 s leaves 0.8 / 4 = 0.2 s per tile
    assert host_s_per_tile_from_stage(1.0, 4, 0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="exceed"):  # negative control: the model already exceeds it
        host_s_per_tile_from_stage(0.1, 4, 0.2)
    with pytest.raises(ValueError, match="tiles"):
        host_s_per_tile_from_stage(1.0, 0, 0.2)
    with pytest.raises(ValueError, match="host_s_per_tile"):
        gpu.with_host(-0.01)


def test_minicpm_tiles_match_the_paper_table3():
    # EPD paper Table 3 "#Patch" for MiniCPM-V 2.6: 1, 3 and 10 tiles for these three resolutions
    v = get_model(MODEL).vision
    assert [v.tiles(313, 234), v.tiles(787, 444), v.tiles(4032, 3024)] == [1, 3, 10]
    assert v.tokens_per_tile == 66  # 64 resampler queries + 2 markers


# ---------------------------------------------------------------------------- encode pool mechanics
def test_epd_encode_then_transfer_then_prefill_hand_derived():
    # 128 image tokens = 2 tiles on the single encoder: 0.01 + 2 x 0.002 = 0.014 s.
    # Embeddings: 128 tokens x 1000 B = 128,000 B over 1e9 B/s = 1.28e-4 s, + 1e-3 s latency -> 0.015128 s.
    # Prefill of 138 tokens on the prefill instance: 0.01 + 138 x 1e-4 = 0.0238 s -> first token 0.038928 s.
    r = run(image_request(128), epd()).requests
    assert r.loc[0, "ttft_s"] == pytest.approx(0.014 + 0.001128 + 0.0238, abs=1e-12)


def test_irp_splits_tiles_and_waits_for_the_last_part():
    # 5 tiles (320 image tokens) over 2 idle encoders: parts of 3 and 2 tiles.
    # Part 1: 0.01 + 3 x 0.002 = 0.016 s; its 192 tokens x 1000 B / 1e9 + 0.001 = 0.001192 -> arrives 0.017192 s.
    # Part 2: 0.014 s + 0.001128 -> 0.015128 s. Prefill starts at the later, 0.017192 s, and takes
    # 0.01 + 330 x 1e-4 = 0.043 s -> TTFT 0.060192 s.
    res = run(image_request(320), epd(encoders=2))
    assert res.requests.loc[0, "ttft_s"] == pytest.approx(0.017192 + 0.043, abs=1e-12)
    assert res.summary["encode"]["tiles"] == 5 and res.summary["encode"]["batches"] == 2
    # Control: degree=1 (no IRP) puts all 5 tiles on one encoder: 0.02 s + 0.001320 s + 0.043 s.
    one = run(image_request(320), epd(encoders=2, degree=1))
    assert one.requests.loc[0, "ttft_s"] == pytest.approx(0.02 + 0.00132 + 0.043, abs=1e-12)
    assert one.requests.loc[0, "ttft_s"] > res.requests.loc[0, "ttft_s"]


def test_irp_by_image_keeps_images_whole():
    # 2 images of 3 tiles (384 image tokens) over 3 idle encoders.
    # By image (the artifact's shards): 3 + 3 tiles on two encoders: 0.01 + 3 x 0.002 = 0.016 s, each
    # part's 192 tokens x 1000 B / 1e9 + 0.001 = 0.001192 s -> 0.017192 s; prefill of 394 tokens
    # 0.01 + 0.0394 = 0.0494 s -> TTFT 0.066592 s; 2 encoder batches.
    w = workload([0.0], [10 + 384], [2], images=[2], image_tokens=[384])
    by_image = run(w, epd(encoders=3, unit="image"))
    assert by_image.requests.loc[0, "ttft_s"] == pytest.approx(0.017192 + 0.0494, abs=1e-12)
    assert by_image.summary["encode"]["batches"] == 2
    # Control, by tile: 2 + 2 + 2 tiles: 0.014 s + 0.001128 s + 0.0494 s = 0.064528 s; 3 batches.
    by_tile = run(w, epd(encoders=3, unit="tile"))
    assert by_tile.requests.loc[0, "ttft_s"] == pytest.approx(0.015128 + 0.0494, abs=1e-12)
    assert by_tile.summary["encode"]["batches"] == 3


def test_irp_by_image_spreads_uneven_tiles_and_images():
    from llmsched.policies.routing.epd import IntraRequestParallel

    class Idle:
        backlog_tiles = 0

    class View:
        def __init__(self, n, images, tiles):
            self.n_instances, self._images, self._tiles = n, images, tiles

        def tiles(self, rid):
            return self._tiles

        def images(self, rid):
            return self._images

        def instance(self, j):
            return Idle()

    # 3 images, 7 tiles: images of 3, 2, 2 tiles; over 2 encoders: images {0, 1} (5 tiles) and {2} (2)
    assert IntraRequestParallel(unit="image").assign(0, View(2, 3, 7)) == [(0, 5), (1, 2)]
    # 8 images of 10 tiles over 6 encoders: two encoders take 2 images, four take 1
    assert IntraRequestParallel(unit="image").assign(0, View(6, 8, 80)) == [(0, 20), (1, 20)] + [(j, 10) for j in range(2, 6)]
    # by tile, the same 80 tiles split 14, 14, 13, 13, 13, 13
    assert [k for _, k in IntraRequestParallel().assign(0, View(6, 8, 80))] == [14, 14, 13, 13, 13, 13]
    assert IntraRequestParallel(degree=1, unit="image").assign(0, View(6, 8, 80)) == [(0, 80)]
    with pytest.raises(ValueError, match="unit"):
        IntraRequestParallel(unit="patch")


def test_without_encode_pool_the_prefill_iteration_encodes():
    # Aggregated: the admitting iteration pays the encoder: 0.01 + 2 x 0.002 = 0.014 s, then its
    # prefill of 138 tokens 0.0238 s -> TTFT 0.0378 s. No transfer.
    agg = ClusterSpec(instances=(spec("mixed"),))
    r = run(image_request(128), agg).requests
    assert r.loc[0, "ttft_s"] == pytest.approx(0.014 + 0.0238, abs=1e-12)
    # A text request on the same instance pays no encode: 0.01 + 10 x 1e-4
    text = run(workload([0.0], [10], [2]), agg).requests
    assert text.loc[0, "ttft_s"] == pytest.approx(0.011, abs=1e-12)


def test_text_requests_skip_the_encode_pool():
    w = workload([0.0, 0.0], [10, 138], [2, 2], images=[0, 1], image_tokens=[0, 128])
    res = run(w, epd())
    assert res.requests.loc[0, "ttft_s"] == pytest.approx(0.011, abs=1e-12)  # straight to prefill
    assert res.summary["encode"]["tiles"] == 2


# ---------------------------------------------------------------------------- invariants, fast == step
@st.composite
def image_workloads(draw):
    n = draw(st.integers(1, 14))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.2]), min_size=n, max_size=n))
    arrivals = np.cumsum(gaps)
    images = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    per_image = draw(st.sampled_from([1, 64, 100, 640]))
    image_tokens = images * per_image
    text = np.array(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)))
    outputs = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n))
    return workload(arrivals, text + image_tokens, outputs, images=images, image_tokens=image_tokens)


@st.composite
def image_clusters(draw):
    layout = draw(st.sampled_from(["epd", "epd-mixed", "pd", "mixed"]))
    bs = draw(st.integers(1, 3))
    enc = spec("encode", draw(st.integers(1, 3)), max_batch_requests=bs)
    degree = draw(st.sampled_from([None, 1, 2]))
    params = (*(() if degree is None else (("degree", degree),)), ("unit", draw(st.sampled_from(["tile", "image"]))))
    groups = {"epd": (enc, spec("prefill", 2, max_batch_requests=bs), spec("decode", max_batch_requests=bs)),
              "epd-mixed": (enc, spec("mixed", 2, max_batch_requests=bs)),
              "pd": (spec("prefill", 2, max_batch_requests=bs), spec("decode", max_batch_requests=bs)),
              "mixed": (spec("mixed", 2, max_batch_requests=bs),)}[layout]
    return ClusterSpec(instances=groups, encode_router_params=params, kv_link_bandwidth_Bps=1e8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=image_workloads(), cluster=image_clusters())
def test_fast_equals_step_and_invariants_with_encode_pools(w, cluster):
    fast, step = run(w, cluster, "fast"), run(w, cluster, "step")
    assert_same_run(fast, step)
    r = fast.requests
    done = r[r["finish_s"].notna()]
    assert len(done) + int(r["rejected"].sum()) == w.n  # each request finishes once (or is rejected)
    assert (done["first_token_s"] >= done["arrival_s"]).all()
    assert (done["finish_s"] >= done["first_token_s"]).all()
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    # an image request's first token waits at least for one encode batch of its tiles' share
    img = done[w.images[done.index] > 0]
    assert (img["ttft_s"] >= ENC.batch_s).all()
    tl = fast.timeline
    assert (tl.groupby("instance")["time_s"].apply(lambda s: s.is_monotonic_increasing)).all()
    if "encode" in fast.summary:
        assert fast.summary["encode"]["tiles"] == int(np.ceil(w.image_tokens / 64).sum())


# ---------------------------------------------------------------------------- bad inputs
def test_images_on_a_text_only_model_are_bad_input():
    w = image_request(128)
    cluster = ClusterSpec(instances=(InstanceSpec(model="llama-2-7b", gpu="a100-80gb"),))
    with pytest.raises(InputError, match="text-only"):
        simulate(w, cluster)
    with pytest.raises(InputError, match="text-only"):  # also when the encode pool runs it
        simulate(w, ClusterSpec(instances=(InstanceSpec(model="llama-2-7b", role="encode"),
                                           InstanceSpec(model="llama-2-7b"))))


def test_negative_or_zero_resolution_is_bad_input():
    from llmsched.sim.config import WorkloadSpec
    from llmsched.sim.workload import catalog
    from llmsched.sim.workload.multimodal import with_images

    with pytest.raises(InputError, match="width_px"):
        with_images(workload([0.0], [5], [1]), 1, -4032, 3024, MODEL)
    with pytest.raises(InputError, match="height_px"):
        catalog.load(WorkloadSpec(source="multimodal", num_requests=3, params=(("height_px", 0),)), 0)
    with pytest.raises(InputError, match="images"):
        with_images(workload([0.0], [5], [1]), -1, 448, 448, MODEL)


@pytest.mark.parametrize("instances, needle", [
    ([{"role": "encode", "count": 0, "model": MODEL}, {"model": MODEL}], "count"),
    ([{"role": "encode", "model": MODEL}], "encode pool alone"),
    ([{"role": "encode", "model": MODEL, "tp": 2}, {"model": MODEL}], "one GPU"),
    ([{"role": "encode", "model": MODEL}, {"model": "llama-2-7b"}], "same multimodal model"),
])
def test_bad_encode_pools_exit_2_with_one_line(tmp_path, capsys, instances, needle):
    from llmsched.experiments.cli import main

    lines = ["[cluster]", ""]
    for inst in instances:
        lines.append("[[cluster.instances]]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in inst.items()]
    cfg = tmp_path / "run.toml"
    cfg.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=needle):
        RunConfig.from_toml(cfg)
    code = main(["simulate", "--config", str(cfg), "--workload", "multimodal", "--num-requests", "2",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err


def test_epd_irp_rejects_a_bad_degree_and_routes_requests_least_loaded():
    from llmsched.policies.routing.epd import IntraRequestParallel

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="degree"):
            IntraRequestParallel(bad)
    # As cluster.router: request 0 (100 prompt + 50 output tokens outstanding) goes to instance 0,
    # request 1 at the same time to the emptier instance 1 (round-robin would too), request 2 to
    # instance 1 again (its 11 + 1 outstanding < instance 0's), where round-robin would go to 0.
    w = workload([0.0, 0.0, 0.0], [100, 10, 10], [50, 1, 1])
    cluster = ClusterSpec(instances=(spec("mixed", 2),), router="epd-irp")
    assert run(w, cluster).requests["instance"].tolist() == [0, 1, 1]
    rr = ClusterSpec(instances=(spec("mixed", 2),), router="round-robin")
    assert run(w, rr).requests["instance"].tolist() == [0, 1, 0]


def test_workload_image_columns_validated():
    with pytest.raises(InputError, match="image_tokens"):
        workload([0.0], [10], [1], images=[1], image_tokens=[0])  # an image with no tokens
    with pytest.raises(InputError, match="image_tokens"):
        workload([0.0], [10], [1], images=[1], image_tokens=[11])  # more image tokens than prompt
    w = workload([0.0, 1.0], [10, 20], [1, 1], images=[0, 2], image_tokens=[0, 15])
    assert w.take([1]).images.tolist() == [2] and w.head(1).image_tokens.tolist() == [0]
    assert math.isclose(w.until(0.5).n, 1)
