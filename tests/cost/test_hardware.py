"""Catalogue lookups, parameter/FLOP/byte counts and KV capacity against hand derivations."""

import numpy as np
import pytest

from llmsched.sim.cost.base import BatchShape
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import (
    GPUS,
    MODELS,
    effective_tp,
    get_gpu,
    get_model,
    kv_bytes_per_token,
    kv_capacity_tokens,
    layer_work,
    param_count,
    weight_bytes,
)

L7 = get_model("llama-2-7b")


def test_llama2_7b_parameter_count_matches_hand_count():
    # per layer: attention 4 * 4096^2 = 67,108,864; MLP 3 * 4096 * 11008 = 135,266,304; 2 norms 8,192
    per_layer = 67_108_864 + 135_266_304 + 8_192  # = 202,383,360
    # embeddings + LM head 2 * 32000 * 4096 = 262,144,000; final norm 4,096
    total = 32 * per_layer + 262_144_000 + 4_096
    assert total == 6_738_415_616  # the count Hugging Face reports for Llama-2-7b-hf
    assert param_count("llama-2-7b") == total
    assert weight_bytes("llama-2-7b") == 2 * total


def test_llama2_7b_kv_bytes_per_token():
    # K and V, 32 layers, 32 KV heads of 128 dims, 2 bytes: 2 * 32 * 32 * 128 * 2 = 524,288 B (0.5 MiB)
    assert kv_bytes_per_token("llama-2-7b") == 524_288
    # Llama-2-70B uses GQA: 2 * 80 layers * 8 KV heads * 128 * 2 = 327,680 B
    assert kv_bytes_per_token("llama-2-70b") == 327_680
    import llmsched.sim.hardware as hw
    assert hw.model("llama-2-7b").kv_bytes_per_token == 524_288 and hw.gpu("t4").name == "t4"


def test_one_layer_prefill_flops_and_bytes_llama2_7b():
    # one chunk of 512 tokens with no cached past, TP1
    w = 4 * 4096 * 4096 + 3 * 4096 * 11008  # linear weights per layer = 202,375,168
    assert w == 202_375_168
    work = layer_work("llama-2-7b", BatchShape.prefill_only(512), tp=1)
    assert work["linear_flops"][0] == 2 * w * 512  # = 207,232,172,032
    # causal pairs 512*513/2 = 131,328; 4 * head_dim 128 * 32 heads = 16,384 FLOPs per pair
    assert work["prefill_attn_flops"][0] == 16_384 * 131_328  # = 2,151,677,952
    # weights (202,375,168 + 2 norms * 4096) * 2 B = 404,766,720 B; activations per token:
    # norm 2h + QKV (h+q+2k) + RoPE 2(q+k) + O (q+h) + adds 6h + norm 2h + up (h+2f) + act 3f + down (f+h)
    h = q = k = 4096
    f = 11008
    act_elems = 2 * h + (h + q + 2 * k) + 2 * (q + k) + (q + h) + 6 * h + 2 * h + (h + 2 * f) + 3 * f + (f + h)
    assert act_elems == 156_160
    assert work["linear_bytes"][0] == 404_766_720 + 512 * act_elems * 2
    # attention bytes: no past; the chunk writes K,V (2*32*128*2 = 16,384 B/token) and reads Q + writes O (16,384)
    assert work["prefill_attn_bytes"][0] == 512 * (16_384 + 16_384)


def test_one_layer_decode_flops_and_bytes_llama2_7b():
    # 8 sequences decoding, 1000 cached tokens each
    work = layer_work("llama-2-7b", BatchShape.decode_only(8, 1000), tp=1)
    assert work["linear_flops"][0] == 2 * 202_375_168 * 8  # = 3,238,002,688
    # each new token attends to 1000 cached + itself: 8 * 1001 = 8,008 pairs, 16,384 FLOPs each
    assert work["decode_attn_flops"][0] == 16_384 * 8_008
    # KV read 8,000 tokens * 16,384 B = 131,072,000 B; new tokens: 8 * (16,384 KV write + 16,384 Q/O)
    assert work["decode_attn_bytes"][0] == 131_072_000 + 8 * 32_768
    assert work["linear_bytes"][0] == 404_766_720 + 8 * 156_160 * 2


def test_tp_splits_layer_work():
    one = layer_work("llama-2-7b", BatchShape.prefill_only(256, 100), tp=1)
    two = layer_work("llama-2-7b", BatchShape.prefill_only(256, 100), tp=2)
    assert two["linear_flops"][0] * 2 == one["linear_flops"][0]
    assert two["prefill_attn_flops"][0] * 2 == one["prefill_attn_flops"][0]


def test_kv_capacity_llama2_7b_a100_80gb_hand_derivation():
    mem = 80 * 2**30  # 85,899,345,920 B
    usable = 0.9 * mem  # vLLM gpu_memory_utilization default -> 77,309,411,328 B
    weights = 2 * 6_738_415_616  # 13,476,831,232 B
    # activation reserve: 2048 profiling tokens * (2*4096 + 3*11008) * 2 B = 168,820,736 B
    # + 256 sequences * 32000 vocab * 4 B fp32 logits = 32,768,000 B
    reserve = 2048 * (2 * 4096 + 3 * 11008) * 2 + 256 * 32000 * 4
    assert reserve == 201_588_736
    free = usable - weights - reserve  # = 63,630,991,360 B
    assert free == 63_630_991_360
    expected = int(free // 524_288)  # = 121,366 tokens (121,366.5...)
    assert expected == 121_366
    assert kv_capacity_tokens("llama-2-7b", "a100-80gb", 1) == expected


def test_kv_capacity_grows_with_tp_and_utilization():
    a = kv_capacity_tokens("llama-2-13b", "a100-40gb", 1)
    b = kv_capacity_tokens("llama-2-13b", "a100-40gb", 2)
    assert b > 2 * a  # weights are split, so more than double
    assert kv_capacity_tokens("llama-2-7b", "a100-80gb", 1, gpu_memory_utilization=0.5) < kv_capacity_tokens(
        "llama-2-7b", "a100-80gb", 1)


def test_model_that_does_not_fit_names_the_fix():
    with pytest.raises(InputError) as e:
        kv_capacity_tokens("llama-2-70b", "a100-80gb", 1)
    assert e.value.field == "gpu" and "tp=2" in e.value.fix
    assert kv_capacity_tokens("llama-2-70b", "a100-80gb", 2) > 0


def test_lookup_is_case_insensitive_with_aliases_and_unknown_lists_names():
    assert get_gpu("A100-80GB") is get_gpu("a100_80gb") is get_gpu("nvidia-a100-80gb")
    assert get_model("Meta-Llama/Llama-2-7b-hf") is L7
    assert get_gpu("H100").name == "h100-80gb"
    with pytest.raises(InputError) as e:
        get_gpu("b200")
    assert "a100-80gb" in e.value.fix and e.value.field == "gpu"
    with pytest.raises(InputError) as e:
        get_model("gpt-5")
    assert "llama-2-7b" in e.value.fix


def test_catalogue_cites_every_number():
    for g in GPUS:
        cited = {k for k, _ in g.sources}
        assert "all" in cited or {"peak_flops", "hbm_bandwidth_Bps", "memory_bytes"} <= cited, g.name
        assert g.peak_flops > 5e11 and g.hbm_bandwidth_Bps > 1e11 and g.memory_bytes >= 16 * 2**30  # CPU: 0.92e12
    for m in MODELS:
        assert m.source and m.hidden % m.heads == 0 and m.heads % m.kv_heads == 0


def test_helix_nodes_run_tp_over_their_gpus():
    assert effective_tp("llama-1-30b", "t4x4", 1) == 4
    assert effective_tp("llama-2-7b", "l4x2", 2) == 2
    with pytest.raises(InputError):
        effective_tp("llama-2-7b", "t4x2", 4)
    with pytest.raises(InputError):
        effective_tp("llama-2-7b", "a100-80gb", 3)  # 32 heads not divisible by 3


def test_layer_work_is_elementwise():
    s = BatchShape(*(np.array(v, dtype=np.int64) for v in
                     ([512, 0, 128], [131_328, 0, 8_256], [512, 0, 128], [0, 8, 4], [0, 8000, 400], [1, 8, 5])))
    both = layer_work("llama-2-7b", s)
    for i in range(3):
        one = layer_work("llama-2-7b", BatchShape(*(np.array([getattr(s, f)[i]]) for f in
                                                   ("prefill_tokens", "prefill_attention_pairs", "prefill_context_tokens",
                                                    "decode_tokens", "decode_context_tokens", "num_requests"))))
        for k in both:
            assert both[k][i] == one[k][0]


def test_gqa_kv_heads_split_then_replicated_across_tp():
    from llmsched.sim.hardware.derived import kv_bytes_per_token_per_gpu
    m = get_model("llama-2-70b")  # 8 KV heads of 128 dims, 80 layers
    assert kv_bytes_per_token_per_gpu(m, 4) == 2 * 80 * 2 * 128 * 2  # 2 heads per rank = 81,920 B
    assert kv_bytes_per_token_per_gpu(m, 16) == 2 * 80 * 1 * 128 * 2  # 16 ranks > 8 heads: one (replicated) each
