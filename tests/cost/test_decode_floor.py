"""Decode attention at the running context: every registered cost model prices every iteration at or
above the memory-bandwidth floor (weights + decode KV bytes / catalogue HBM bandwidth), with negative
controls showing the check catches a context-free table; DecodeKV by hand."""

import dataclasses

import numpy as np
import pytest

import llmsched.sim.cost as C
from llmsched.sim.cost import refdata
from llmsched.sim.cost.base import BatchShape, iteration_time
from llmsched.sim.cost.floor import memory_floor_s
from llmsched.sim.cost.profiled import NO_DECODE_KV, Curve, DecodeKV, profiled_tables
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import get_gpu, get_model, kv_capacity_tokens

# Every registered model with the (model, GPU, TP) it answers for. `linear:a,b,c,d` is left out: its
# coefficients are the user's, so no floor can be promised for it. The roofline is checked on every GPU
# with fitted factors (data/reference/fits.json) plus unfitted, with a model that fits the GPU.
ROOFLINE_SETUPS = [
    ("llama-2-7b", "a10", 1), ("llama-2-7b", "a10g", 1), ("llama-2-7b", "a100-80gb", 1),
    ("llama-2-70b", "a100-80gb", 4), ("llama-2-7b", "h100-80gb", 1), ("mistral-7b", "rtx-6000-ada", 1),
    ("llama-2-7b", "l4", 1), ("llama-2-7b", "l4x2", 2), ("llama-2-7b", "t4", 1), ("llama-2-7b", "t4x4", 4),
    ("llama-2-7b", "v100-16gb", 1), ("yi-34b", "a100-80gb", 2), ("llama-2-13b", "a100-40gb", 1),
]
SPECS = ([(f"profiled:{n}", t.model, t.gpu, tp) for n, t in profiled_tables().items() for tp in t.tps]
         + [("roofline", m, g, tp) for m, g, tp in ROOFLINE_SETUPS]
         + [("roofline:unfitted", m, g, tp) for m, g, tp in ROOFLINE_SETUPS[:4]]
         + [("staircase", "codellama-34b", "a100-80gb", 2)])  # Li-Dai-Peng's own setup

BATCHES = (1, 2, 8, 32, 128, 256, 480)
CONTEXTS = (0, 64, 512, 1000, 2048, 8192, 32768)  # cached tokens per decoding sequence


def grid(model: str, gpu: str, tp: int) -> BatchShape:
    """Decode-only and mixed (one 512-token chunk after 1024 cached tokens) batches whose KV fits the
    instance (kv_capacity_tokens); unbounded where the whole model does not fit one node (Helix tables
    price layers of a pipeline stage)."""
    try:
        cap = kv_capacity_tokens(model, gpu, tp)
    except InputError:
        cap = None
    rows = []
    for b in BATCHES:
        for c in CONTEXTS:
            if cap is not None and b * c + 1536 > cap:
                continue
            rows.append((0, 0, 0, b, b * c, b))
            rows.append((512, 512 * 1024 + 512 * 513 // 2, 1536, b, b * c, b + 1))
    a = np.array(rows, dtype=np.int64)
    return BatchShape(*(a[:, i].copy() for i in range(6)))


def below_floor(cost, model, gpu, tp) -> list[tuple[int, int, float]]:
    """(decode batch, cached tokens, time / floor) of every grid shape priced below the floor."""
    s = grid(model, gpu, tp)
    ratio = cost.iteration_times(s) / memory_floor_s(model, gpu, tp, s)
    bad = np.nonzero(ratio < 1.0)[0]
    return [(int(s.decode_tokens[i]), int(s.decode_context_tokens[i]), float(ratio[i])) for i in bad]


@pytest.mark.parametrize("spec,model,gpu,tp", SPECS, ids=[f"{s[0]}-{s[2]}-tp{s[3]}" for s in SPECS])
def test_no_cost_model_prices_an_iteration_below_the_memory_floor(spec, model, gpu, tp):
    assert len(grid(model, gpu, tp)) >= 20
    assert below_floor(C.build(spec, model, gpu, tp), model, gpu, tp) == []


def test_negative_control_context_free_slai_table_is_caught():
    """The SLAI table as it was (decode priced as one more token in the prefill curve) prices 128 decodes
    at 2,700 cached tokens each at ~24 ms, while reading their KV alone needs
    345,600 tok * 131,072 B/tok / 960 GB/s = 47.2 ms (Mistral-7B: 32 layers * 2 * 8 KV heads * 128 * 2 B)."""
    cost = C.build("profiled:slai-mistral-7b-rtx-6000-ada", "mistral-7b", "rtx-6000-ada", 1)
    old = dataclasses.replace(cost, kv=NO_DECODE_KV)
    bad = below_floor(old, "mistral-7b", "rtx-6000-ada", 1)
    assert (128, 128 * 1000) in [(b, c) for b, c, _ in bad]
    shape = BatchShape.decode_only(128, 2700)
    floor = float(memory_floor_s("mistral-7b", "rtx-6000-ada", 1, shape)[0])
    weights = 32 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096) * 2  # QKV+O, MLP, norms
    assert floor == pytest.approx((weights + 345_600 * 131_072) / 960e9)
    assert iteration_time(old, shape) < 0.5 * floor <= iteration_time(cost, shape)


def test_negative_control_helix_zero_anchor_is_caught():
    """Helix's bs2time files start at (0 tokens, 0 ms); interpolating from it halves the one-sequence time."""
    info = profiled_tables()["helix-llama-2-70b-a100-40gb"]
    cost = C.build("profiled:helix-llama-2-70b-a100-40gb", info.model, info.gpu, info.tps[0])
    xs, ys = refdata.helix_bs2time(*info.key, "decode")
    assert xs[0] == 0 and ys[0] == 0
    anchored = dataclasses.replace(cost, decode=Curve(xs, ys))
    bad = below_floor(anchored, info.model, info.gpu, info.tps[0])
    assert any(b == 1 for b, _, _ in bad)


def test_decode_kv_by_hand():
    kv = DecodeKV(s_per_token=1e-6, ref_tokens_per_seq=1000.0)
    # 4 sequences holding 5,000 tokens: 1,000 beyond 4 x 1,000 -> 1e-3 s; 3,000 tokens: nothing extra
    assert float(kv(BatchShape.single(decode_tokens=4, decode_context_tokens=5000))[0]) == pytest.approx(1e-3)
    assert float(kv(BatchShape.single(decode_tokens=4, decode_context_tokens=3000))[0]) == 0.0


def test_slai_table_charges_decode_kv_at_the_fitted_streaming_rate():
    """s_per_token = layers * 2 * kv_heads * head_dim * 2 B / (960 GB/s * fitted eff_memory)."""
    m = get_model("mistral-7b")
    eff = C.fitted_params("rtx-6000-ada").eff_memory
    per_token = m.layers * 2 * m.kv_heads * m.head_dim * 2 / (get_gpu("rtx-6000-ada").hbm_bandwidth_Bps * eff)
    cost = C.build("profiled:slai-mistral-7b-rtx-6000-ada", "mistral-7b", "rtx-6000-ada", 1)
    assert cost.kv.s_per_token == pytest.approx(per_token, rel=1e-12) and cost.kv.ref_tokens_per_seq == 0.0
    a = iteration_time(cost, BatchShape.decode_only(128, 2700))
    b = iteration_time(cost, BatchShape.decode_only(128, 0))
    assert a - b == pytest.approx(128 * 2700 * per_token, rel=1e-9)


@pytest.mark.parametrize("name", ["helix-llama-2-70b-a100-40gb", "sarathi-yi-34b-a100-80gb"])
def test_tables_unchanged_at_their_reference_context_and_grow_beyond(name):
    info = profiled_tables()[name]
    cost = C.build(f"profiled:{name}", info.model, info.gpu, info.tps[0])
    ref = int(cost.kv.ref_tokens_per_seq)
    assert ref in (1000, 1024)
    at = iteration_time(cost, BatchShape.decode_only(16, ref))
    assert iteration_time(cost, BatchShape.decode_only(16, 0)) == at  # below the reference: table value
    more = iteration_time(cost, BatchShape.decode_only(16, ref + 4000))
    assert more - at == pytest.approx(16 * 4000 * cost.kv.s_per_token, rel=1e-9)
