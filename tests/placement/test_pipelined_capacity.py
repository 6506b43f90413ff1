"""The pipelined capacity model (ours): the inspection-paradox wait factor, hand-derived; it never
raises T_i(k) above Helix's; Helix's own model is unchanged by it."""

import pytest

from llmsched.theory.placement.io import load_cluster
from llmsched.theory.placement.profiles import (
    GpuProfile,
    TypicalBatch,
    _typical_setup,
    iteration_wait_factor,
    typical_capacity_table,
)
from llmsched.theory.placement.spec import MODELS

M70 = MODELS["llama-2-70b"]


def _toy_profile() -> GpuProfile:
    # prompt: 0.001 s per 100 tokens (linear); decode: flat 0.002 s for 1..100 tokens
    return GpuProfile("toy", 4, (0, 1000), (0.0, 0.01), (1, 100), (0.002, 0.002), (100,) * 4,
                      (2048,) * 4, (100,) * 4)


def test_wait_factor_hand_derived():
    prof = _toy_profile()
    # 1 prompt of 750 tokens every 4 iterations: t_dec = 0.002, t_pro = 0.0075 + 0.002 = 0.0095.
    # E[t] = 0.75*0.002 + 0.25*0.0095 = 0.003875; E[t^2] = 0.75*4e-6 + 0.25*9.025e-5 = 2.55625e-5
    # W = 1 + 2.55625e-5 / (2 * 0.003875^2) = 1.851196...
    b = TypicalBatch(prompt_tokens=187, decode_tokens=10, iterations_per_prompt=750 / 187, tokens_per_s=0.0)
    q = 187 / 750
    mean = (1 - q) * 0.002 + q * 0.0095
    second = (1 - q) * 0.002**2 + q * 0.0095**2
    assert iteration_wait_factor(prof, b) == pytest.approx(1 + second / (2 * mean**2), rel=1e-9)
    # identical iterations (no rescaling, prompt every iteration): residual = t/2, so W = 1.5 exactly
    same = TypicalBatch(prompt_tokens=750, decode_tokens=10, iterations_per_prompt=1.0, tokens_per_s=0.0)
    assert iteration_wait_factor(prof, same) == pytest.approx(1.5, rel=1e-12)


@pytest.mark.parametrize("name", ["single24", "3cluster24", "cluster42"])
def test_pipelined_capacity_never_exceeds_helix(name):
    c = load_cluster(name)
    helix = typical_capacity_table(M70, c.type_counts())
    piped = typical_capacity_table(M70, c.type_counts(), "pipelined")
    for g in helix:
        # waiting stretches the round trip, so a node's share of it and its batch shrink: T can only fall
        assert all(tp <= th * (1 + 1e-12) for tp, th in zip(piped[g], helix[g]))
        assert any(tp < 0.95 * th for tp, th in zip(piped[g], helix[g]))


def test_pipelined_fixed_point_settles_and_helix_waits_are_one():
    c = load_cluster("single24")
    *_, wait_helix = _typical_setup(M70, c.type_counts(), "helix")
    assert set(wait_helix.values()) == {1.0}
    import llmsched.theory.placement.profiles as prof
    *_, w30 = _typical_setup(M70, c.type_counts(), "pipelined")
    old = prof.PIPELINED_ITERATIONS
    try:
        prof.PIPELINED_ITERATIONS = 60
        *_, w60 = _typical_setup(M70, c.type_counts(), "pipelined")
    finally:
        prof.PIPELINED_ITERATIONS = old
    assert w30 == pytest.approx(w60, rel=1e-9)
    # every type's typical batch has rare long prompt iterations, so W > 1.5
    assert all(1.5 < w < 3.0 for w in w30.values())


def test_unknown_capacity_model_is_an_input_error():
    from llmsched.sim.errors import InputError

    with pytest.raises(InputError):
        typical_capacity_table(M70, load_cluster("single24").type_counts(), "magic")
