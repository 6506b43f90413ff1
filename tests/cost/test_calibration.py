"""The fitted roofline reproduces its own fitting data within the error data/reference/fits.json
reports, meets the calibration target, and is what `build('roofline', ...)` uses."""

import numpy as np
import pytest

import llmsched.sim.cost as C
from llmsched.sim.cost import refdata
from llmsched.sim.cost.reference_points import predict, reference_points
from llmsched.sim.cost.roofline import RooflineParams
from llmsched.sim.hardware import get_gpu

FITS = refdata.load_fits()
pytestmark = pytest.mark.skipif(not FITS, reason="run python -m llmsched.experiments.calibration first")


def _params_for(p):
    d = dict(FITS["gpus"][p.gpu]["params"])
    eng = FITS["engines"].get(p.engine or "vllm")
    d.update({k: eng[k] for k in ("iteration_overhead_s", "request_overhead_s")})
    return RooflineParams(**{k: float(v) for k, v in d.items() if k in RooflineParams.__dataclass_fields__})


def _ratios(points):
    pred = predict(points, _params_for)
    return pred / np.array([p.measured_s for p in points])


def test_fit_reproduces_its_data_within_reported_error_per_gpu():
    points = reference_points()
    r = _ratios(points)
    for gpu, f in FITS["gpus"].items():
        sel = np.array([p.gpu == gpu for p in points])
        assert sel.sum() == f["n_points"]
        med = float(np.median(np.abs(r[sel] - 1)))
        worst = float(np.max(np.maximum(r[sel], 1 / r[sel])))
        assert med <= f["median_abs_rel_err"] + 1e-9, gpu
        assert worst <= f["max_ratio"] + 1e-9, gpu


def test_calibration_meets_target():
    r = _ratios(reference_points())
    assert float(np.median(np.abs(r - 1))) <= 0.15
    assert float(np.max(np.maximum(r, 1 / r))) <= 2.0
    # negative control: the unfitted defaults are measurably worse on the same data
    r0 = predict(reference_points(), lambda p: RooflineParams()) / np.array([p.measured_s for p in reference_points()])
    assert float(np.median(np.abs(r0 - 1))) > float(np.median(np.abs(r - 1)))


def test_build_uses_fitted_factors():
    for gpu, f in FITS["gpus"].items():
        p = C.fitted_params(gpu)
        assert p.eff_compute == f["params"]["eff_compute"] and p.eff_memory == f["params"]["eff_memory"]
    tp = get_gpu("l4x2").num_gpus
    m = C.build("roofline", "llama-1-30b", "l4x2", tp)
    assert m.params == C.fitted_params("l4x2")


def test_every_catalogue_pair_that_fits_builds_a_roofline():
    from llmsched.sim.energy import CPU_DEVICES
    from llmsched.sim.errors import InputError
    from llmsched.sim.hardware import GPUS, MODELS, kv_capacity_tokens
    n = 0
    for g in GPUS:
        for m in MODELS:
            for tp in (1, 2, 4, 8):
                try:
                    kv_capacity_tokens(m, g, tp)
                except InputError:
                    continue
                cost = C.build("roofline", m.name, g.name, tp)
                t = C.iteration_time(cost, C.BatchShape.prefill_only(512))
                assert 0 < t < (600 if g.name in CPU_DEVICES else 60)  # a CPU: ~60 s for 30B, ~260 s for 70B
                n += 1
    assert n > 50
