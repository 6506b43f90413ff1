"""The power model: what an instance draws while it runs an iteration, and what a byte costs on the
wide-area network. Owns every energy constant the engine applies (the catalogue owns each device's
maximum and idle power, `llmsched.sim.hardware.catalogue`); `Instance._segment_rates` calls
`busy_power_w` once per segment and turns it into integer nanojoules per token.

Busy power (GPUs). A memory-bound decode iteration does not draw the board's maximum power: the
ML.ENERGY Benchmark v3.0 measured an H100-SXM5 (700 W) at about 300 W serving batch 1 and about
600 W at batch 128 (the two calibration anchors quoted by the vLLM semantic-router `fleet-sim`
power-model reference, vllm-semantic-router.com/docs/fleet-sim/power-model). We read power as
linear in the iteration's compute utilisation u = tokens / ridge, where ridge = peak FLOP/s /
memory bytes/s of the device (the roofline's balance point for 2-byte weights: an iteration of
`ridge` tokens is as long on the tensor cores as streaming its weights), and fit the line through the
two anchors on the H100's ridge (catalogue: 989.5 TFLOP/s / 3.35 TB/s = 295 tokens):

    fraction(u) = clip(f1 + (f128 - f1) * (u - u1) / (u128 - u1), f1, 1),
    f1 = 300/700, f128 = 600/700, u1 = 1/295, u128 = 128/295
    busy power = fraction(u) * the catalogue's maximum board power

so a compute-bound iteration (a long prefill chunk, u >= ~0.58) draws the maximum, and batch-1 decode
0.43 of it, on any GPU (the fractions carry over between GPUs: our assumption). The slope is fixed by
the anchors (it comes out at ~1.0 per unit of u); nothing is fitted to a reproduction.

Busy power (CPUs, `CPU_DEVICES`): a CPU running LLM inference keeps every core busy whatever the
batch (the GEMMs/GEMVs are spread over all threads), so it draws its TDP whenever busy: fraction 1.

Idle power is the catalogue's `idle_power_w` (charged by `llmsched.sim.run` over each instance's
unbusy makespan). `power_model("flat")` restores the previous model (the maximum board power
whenever busy) inside a `with` block, for ablations.

Transmission: `TRANSMISSION_J_PER_BYTE` is the electricity intensity of internet data transmission,
0.06 kWh/GB (Aslan, Mayers, Koomey, France, "Electricity Intensity of Internet Data Transmission:
Untangling the Estimates", J. Industrial Ecology 22(4), 2018, the 2015 estimate), i.e. 2.16e-4 J a
byte. The engine books link time, not link energy; `transmission_energy_j` is the one formula
callers apply to the bytes they send over a wide-area link.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

#: ML.ENERGY Benchmark v3.0 anchors (H100-SXM5, as quoted by vLLM semantic-router fleet-sim docs).
ANCHOR_TDP_W = 700.0
ANCHOR_BATCH_1_W = 300.0
ANCHOR_BATCH_128_W = 600.0
ANCHOR_GPU = "h100-80gb"
#: Devices that draw their maximum power whenever busy (CPUs: every core runs every iteration).
CPU_DEVICES = frozenset({"xeon-silver-4214r"})
#: Aslan et al. 2018: 0.06 kWh per GB (2015) -> joules per byte.
TRANSMISSION_J_PER_BYTE = 0.06 * 3.6e6 / 1e9

_MODELS = ("utilisation", "flat")
_state = {"model": "utilisation"}


@contextlib.contextmanager
def power_model(name: str) -> Iterator[None]:
    """Within the block, busy power follows `name`: "utilisation" (the default, above) or "flat"
    (the maximum board power whenever busy, the model before this module)."""
    if name not in _MODELS:
        raise ValueError(f"power model must be one of {', '.join(_MODELS)}, got {name!r}")
    old = _state["model"]
    _state["model"] = name
    try:
        yield
    finally:
        _state["model"] = old


@functools.cache
def _ridge_tokens(gpu: str) -> float:
    """Tokens per iteration at which the device's compute time equals its weight-streaming time
    (2-byte weights): peak FLOP/s / memory bytes/s; 0.0 for a device the catalogue lacks or a CPU."""
    from llmsched.sim.errors import InputError
    from llmsched.sim.hardware import get_gpu

    try:
        g = get_gpu(gpu)
    except InputError:
        return 0.0
    if g.name in CPU_DEVICES:
        return 0.0
    return g.peak_flops / g.hbm_bandwidth_Bps


def busy_fraction(gpu: str, tokens: int) -> float:
    """Fraction of the maximum board power drawn by an iteration of `tokens` tokens on `gpu`."""
    ridge = _ridge_tokens(gpu)
    if ridge <= 0.0 or _state["model"] == "flat":
        return 1.0
    anchor = _ridge_tokens(ANCHOR_GPU)
    f1, f128 = ANCHOR_BATCH_1_W / ANCHOR_TDP_W, ANCHOR_BATCH_128_W / ANCHOR_TDP_W
    u1, u128 = 1.0 / anchor, 128.0 / anchor
    f = f1 + (f128 - f1) * (tokens / ridge - u1) / (u128 - u1)
    return min(max(f, f1), 1.0)


def busy_power_w(gpu: str, max_power_w: float, tokens: int) -> float:
    """Watts an instance whose maximum power is `max_power_w` draws while it runs an iteration of
    `tokens` tokens on `gpu` (see the module docstring)."""
    return max_power_w * busy_fraction(gpu, tokens)


def transmission_energy_j(num_bytes: float) -> float:
    """Joules to carry `num_bytes` over the wide-area network (Aslan et al. 2018 intensity)."""
    return float(num_bytes) * TRANSMISSION_J_PER_BYTE


__all__ = [
    "ANCHOR_BATCH_1_W",
    "ANCHOR_BATCH_128_W",
    "ANCHOR_TDP_W",
    "CPU_DEVICES",
    "TRANSMISSION_J_PER_BYTE",
    "busy_fraction",
    "busy_power_w",
    "power_model",
    "transmission_energy_j",
]
