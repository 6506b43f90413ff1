"""Per-stack iteration overhead: the `+stack:<name>` grammar, each term's formula, and that the calibrated
terms explain the measurements they were calibrated on (with the default stack as negative control)."""

import numpy as np
import pytest

import llmsched.sim.cost as C
from llmsched.sim.cost import refdata
from llmsched.sim.cost.base import BatchShape, iteration_time
from llmsched.sim.cost.stacks import STACKS
from llmsched.sim.errors import InputError


@pytest.mark.parametrize("name", sorted(STACKS))
def test_stack_replaces_the_overhead_terms_only(name):
    """t(stack) - t(roofline) = (io_s - io_vllm) + (ro_s - ro_vllm) * num_requests: same GPU time."""
    s, v = C.get_stack(name), C.get_stack("vllm")
    a = C.build(f"roofline+stack:{name}", "llama-2-7b", "a10g")
    b = C.build("roofline", "llama-2-7b", "a10g")
    for n in (1, 10, 100):
        shape = BatchShape.decode_only(n, 500)
        want = (s.iteration_overhead_s - v.iteration_overhead_s) + (s.request_overhead_s - v.request_overhead_s) * n
        assert iteration_time(a, shape) - iteration_time(b, shape) == pytest.approx(want, abs=1e-12)
    assert iteration_time(a, BatchShape.single()) == 0.0  # an empty iteration costs nothing on any stack


def test_engine_stacks_are_the_jointly_fitted_engines():
    e = refdata.load_fits()["engines"]
    for stack, engine in (("vllm", "vllm"), ("sarathi", "sarathi"), ("slai", "slai"), ("slora", "vtc")):
        s = C.get_stack(stack)
        assert (s.iteration_overhead_s, s.request_overhead_s) == (e[engine]["iteration_overhead_s"],
                                                                 e[engine]["request_overhead_s"])


def test_vllm_stack_is_the_line_through_vidur_cpu_overheads():
    """Vidur Llama-2-7B CPU overheads: 1.17 ms at batch 8, 6.22 ms at batch 128 -> slope ~42 us/request."""
    s = C.get_stack("vllm")
    assert s.request_overhead_s == pytest.approx((6.2215e-3 - 1.1731e-3) / 120, rel=0.05)
    assert s.iteration_overhead_s + 8 * s.request_overhead_s == pytest.approx(1.1731e-3, rel=0.05)


def test_vllm_llumnix_explains_llumnix_fig10_decode_and_default_does_not():
    """Llumnix Fig 10: LLaMA-7B on one A10, one sequence of 1,024 tokens decodes in 43.30 ms (plot.py L119).
    With the vLLM-0.x (Llumnix) stack the model is within 10%; with Vidur's vLLM overhead it is ~28% short."""
    shape = BatchShape.decode_only(1, 1024)
    with_stack = iteration_time(C.build("roofline+stack:vllm-llumnix", "llama-2-7b", "a10"), shape)
    default = iteration_time(C.build("roofline", "llama-2-7b", "a10"), shape)
    assert abs(with_stack / 43.30e-3 - 1) < 0.10
    assert default / 43.30e-3 < 0.8
    # the term itself: mean over the 12 Fig 10 decode points of (measured - GPU time) - vLLM request term
    fit = refdata.load_fits()["stacks"]["vllm-llumnix"]
    resid = [q["measured_s"] - q["gpu_time_s"] for q in fit["points"]]
    assert len(resid) == 12
    assert C.get_stack("vllm-llumnix").iteration_overhead_s == pytest.approx(
        np.mean(resid) - fit["request_overhead_s"], rel=1e-12)


def test_sglang_stack_is_zero_because_gpu_time_already_exceeds_prebles_fit():
    """Preble's SGLang fit: 8.96 ms below 64 batched tokens (Mistral-7B, A100, model_equations.py L47); our
    fitted A100-80GB roofline's GPU time for one decode (no overhead) is above that, so no overhead is left."""
    s = C.get_stack("sglang")
    assert (s.iteration_overhead_s, s.request_overhead_s) == (0.0, 0.0)
    t = iteration_time(C.build("roofline+stack:sglang", "mistral-7b", "a100-80gb"), BatchShape.decode_only(1, 0))
    assert t > 8.96e-3


def test_vidur_table_takes_a_stack_other_tables_refuse():
    plain = C.build("profiled:vidur-llama-2-7b-a100-80gb", "llama-2-7b", "a100-80gb")
    sg = C.build("profiled:vidur-llama-2-7b-a100-80gb+stack:sglang", "llama-2-7b", "a100-80gb")
    v = C.get_stack("vllm")
    shape = BatchShape.decode_only(4, 100)
    assert iteration_time(plain, shape) - iteration_time(sg, shape) == pytest.approx(
        v.iteration_overhead_s + 4 * v.request_overhead_s, abs=1e-12)
    assert sg.name == "profiled:vidur-llama-2-7b-a100-80gb+stack:sglang"
    with pytest.raises(InputError):
        C.build("profiled:slai-mistral-7b-rtx-6000-ada+stack:vllm", "mistral-7b", "rtx-6000-ada")
    with pytest.raises(InputError):
        C.build("staircase+stack:vllm", "codellama-34b", "a100-80gb", 2)


@pytest.mark.parametrize("bad", ["roofline+stack:nope", "roofline+foo:vllm", "roofline+stack:", "roofline+stack:vllm+stack:sglang",
                                 "roofline+extra:-1", "roofline+extra:abc", "roofline+extra:0.1+extra:0.2",
                                 "staircase+extra:0.01"])
def test_bad_stack_spec_is_input_error(bad):
    with pytest.raises(InputError) as e:
        C.build(bad, "llama-2-7b", "a10g")
    assert "stack" in str(e.value) or "extra" in str(e.value)


def test_extra_adds_a_fixed_time_to_every_busy_iteration():
    """roofline+stack:slora+extra:0.005: 5 ms more than roofline+stack:slora for any non-empty batch."""
    a = C.build("roofline+stack:slora+extra:0.005", "llama-2-7b", "a10g")
    b = C.build("roofline+stack:slora", "llama-2-7b", "a10g")
    for shape in (BatchShape.decode_only(1, 10), BatchShape.decode_only(64, 900), BatchShape.prefill_only(512)):
        assert iteration_time(a, shape) - iteration_time(b, shape) == pytest.approx(5e-3, abs=1e-12)
    assert iteration_time(a, BatchShape.single()) == 0.0
    assert C.build("roofline+extra:0", "llama-2-7b", "a10g").name == "roofline+extra:0"
