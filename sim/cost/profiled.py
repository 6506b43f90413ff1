"""Profiled cost models: iteration times interpolated from measured tables in data/reference/.

Tables: Vidur per-operator linear-layer profiles (attention, LM head and overheads from the fitted
roofline, all-reduce from Vidur's collective profiles), Helix per-layer `bs2time` curves, Sarathi-Serve
Yi-34B batch times, SLAI batch time vs token budget. Each table covers one (model, GPU[, TP]);
asking it for another pair is an InputError. Element-wise: np.interp, +, *, max only.

Decode attention at the running context: the Helix, Sarathi and SLAI tables were measured at one
(assumed) context per decoding sequence, or with no decodes at all (SLAI). Each adds `DecodeKV`: the
KV bytes a decode iteration reads beyond that reference context, at the fitted roofline's streaming
rate for the GPU (`RooflineCost` "kv_s_per_token", data/reference/fits.json `eff_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from llmsched.sim.cost import refdata
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.cost.reference_points import HELIX_DECODE_CONTEXT, SARATHI_DECODE_CONTEXT
from llmsched.sim.errors import InputError
from llmsched.sim.hardware import get_gpu, get_model

if TYPE_CHECKING:
    from llmsched.sim.cost.roofline import RooflineCost


@dataclass(frozen=True, eq=False)
class Curve:
    """Piecewise-linear y(x) through measured points; flat below the first point; beyond the last,
    extended at the average rate y_last / x_last of the last point."""

    xs: np.ndarray
    ys: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        x_last, y_last = float(self.xs[-1]), float(self.ys[-1])
        return np.interp(x, self.xs, self.ys) + np.maximum(x - x_last, 0.0) * (y_last / x_last)


def _measured_curve(xs: np.ndarray, ys: np.ndarray) -> Curve:
    """A curve through the measured points only: Helix's files start with a (0 tokens, 0 ms) row that
    is not a measurement; interpolating from it priced one decoding sequence at half the two-sequence
    time, below the time to read the layer's weights once."""
    keep = xs > 0
    return Curve(xs[keep], ys[keep])


@dataclass(frozen=True)
class TableInfo:
    name: str
    model: str
    gpu: str
    tps: tuple[int, ...]
    kind: str  # "vidur" | "helix" | "sarathi" | "slai"
    description: str
    key: tuple = ()


@cache
def profiled_tables() -> dict[str, TableInfo]:
    """Every profiled table by name."""
    out: dict[str, TableInfo] = {}
    for (model, gpu), _ in refdata.VIDUR_MLP.items():
        name = f"vidur-{model}-{gpu}"
        out[name] = TableInfo(name, model, gpu, tuple(refdata.vidur_mlp_tps(model, gpu)), "vidur",
                              "Vidur per-layer linear-operator medians (mlp.csv) + roofline attention/head/overhead "
                              "+ Vidur all-reduce profile", (model, gpu))
    for hmodel, hgpu in refdata.helix_tables():
        model, gpu = refdata.HELIX_MODEL[hmodel], refdata.HELIX_GPU[hgpu]
        name = f"helix-{model}-{gpu}"
        out[name] = TableInfo(name, model, gpu, (get_gpu(gpu).num_gpus,), "helix",
                              "Helix per-layer prompt/decode bs2time x layers + decode KV reads beyond 1000 tokens per sequence",
                              (hmodel, hgpu))
    out["sarathi-yi-34b-a100-80gb"] = TableInfo(
        "sarathi-yi-34b-a100-80gb", "yi-34b", "a100-80gb", (2,), "sarathi",
        "Sarathi-Serve Fig 2 batch times (Yi-34B TP2, A100-80GB PCIe pairs): prefill + decode curves "
        "+ decode KV reads beyond 1024 tokens per sequence")
    out["slai-mistral-7b-rtx-6000-ada"] = TableInfo(
        "slai-mistral-7b-rtx-6000-ada", "mistral-7b", "rtx-6000-ada", (1,), "slai",
        "SLAI Fig 5(a) mean batch time vs token budget (Mistral-7B, RTX 6000 Ada), over total tokens "
        "+ every decode KV read")
    return out


@dataclass(frozen=True)
class DecodeKV:
    """Seconds to stream the decode KV cache beyond what a table's measurement already read:

        s_per_token * max(decode_context_tokens - ref_tokens_per_seq * decode_tokens, 0)

    s_per_token: whole-iteration seconds per cached KV token = layers * (KV bytes per token per layer
                 per rank) / (HBM bandwidth * fitted eff_memory), i.e. the roofline's decode memory term.
    ref_tokens_per_seq: the cached context per decoding sequence at which the table was measured
                 (0 when the table has no decodes). Below it the table's own time stands (never less).
    """

    s_per_token: float
    ref_tokens_per_seq: float

    @staticmethod
    def from_roofline(roofline, ref_tokens_per_seq: float) -> DecodeKV:
        return DecodeKV(roofline.kv_read_s_per_token, float(ref_tokens_per_seq))

    def __call__(self, shape: BatchShape) -> np.ndarray:
        dctx = shape.decode_context_tokens.astype(np.float64)
        dt = shape.decode_tokens.astype(np.float64)
        return np.maximum(dctx - self.ref_tokens_per_seq * dt, 0.0) * self.s_per_token


NO_DECODE_KV = DecodeKV(0.0, 0.0)


@dataclass(frozen=True, eq=False)
class HelixCost:
    """layers * (prompt_curve(prefill_tokens) + decode_curve(decode_tokens)) + decode KV reads beyond
    the profile's context (Helix bs2time; Helix models each decoding sequence at <= 1000 cached tokens)."""

    prompt: Curve
    decode: Curve
    layers: int
    name: str
    kv: DecodeKV = NO_DECODE_KV

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        pt = shape.prefill_tokens.astype(np.float64)
        dt = shape.decode_tokens.astype(np.float64)
        per_layer = np.where(pt > 0, self.prompt(pt), 0.0) + np.where(dt > 0, self.decode(dt), 0.0)
        return per_layer * float(self.layers) + self.kv(shape)


@dataclass(frozen=True, eq=False)
class TwoCurveCost:
    """Whole-iteration curves: P(prefill_tokens) and D(decode_tokens). A mixed batch pays
    P + D - shared_s, where shared_s (the decode time of one sequence: weight reads and fixed
    overhead) is counted once. Our combination rule, checked against Sarathi-Serve's Table 2.
    Plus decode KV reads beyond the assumed measuring context (1024 tokens per sequence)."""

    prefill: Curve
    decode: Curve
    shared_s: float
    name: str
    kv: DecodeKV = NO_DECODE_KV

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        pt = shape.prefill_tokens.astype(np.float64)
        dt = shape.decode_tokens.astype(np.float64)
        p = np.where(pt > 0, self.prefill(pt), 0.0)
        d = np.where(dt > 0, self.decode(dt), 0.0)
        both = (pt > 0) & (dt > 0)
        return p + d - np.where(both, self.shared_s, 0.0) + self.kv(shape)


@dataclass(frozen=True, eq=False)
class TokenCurveCost:
    """One curve over total tokens (prefill + decode), plus every decode KV read (the curve was
    measured on prefill chunks only, so none of a decode's cache reads is in it)."""

    curve: Curve
    name: str
    kv: DecodeKV = NO_DECODE_KV

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        t = shape.total_tokens.astype(np.float64)
        return np.where(t > 0, self.curve(t), 0.0) + self.kv(shape)


@dataclass(frozen=True, eq=False)
class VidurCost:
    """layers * (measured linear ops(T) + roofline attention + all-reduce) + roofline head/overhead."""

    linear: Curve
    roofline: RooflineCost  # attention, comm, head, overheads
    layers: int
    name: str

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        c = self.roofline.components(shape)
        tokens = shape.total_tokens.astype(np.float64)
        lin = np.where(tokens > 0, self.linear(tokens), 0.0)
        layer = lin + c["prefill_attn"] + c["decode_attn"] + c["comm"]
        return layer * float(self.layers) + c["head"] + c["overhead"]


def build_profiled(table: str, model: str, gpu: str, tp: int, roofline_factory):
    """The profiled model for `table`, checked against the instance's (model, gpu, tp)."""
    tables = profiled_tables()
    if table in {t.kind for t in tables.values()}:  # "profiled:helix" -> the helix table of this (model, gpu)
        match = [n for n, t in tables.items() if t.kind == table and (t.model, t.gpu) == (model, gpu)]
        if not match:
            have = sorted(f"{t.model} on {t.gpu}" for t in tables.values() if t.kind == table)
            raise InputError("cost model", "cost", f"no {table} table for {model} on {gpu}",
                             f"{table} tables exist for: {', '.join(have)}; or use cost=roofline")
        table = match[0]
    info = tables.get(table)
    if info is None:
        raise InputError("cost model", "cost", f"unknown profiled table {table!r}",
                         f"use profiled:<table> with one of: {', '.join(sorted(tables))}")
    if (model, gpu) != (info.model, info.gpu) or tp not in info.tps:
        raise InputError("cost model", "cost",
                         f"table {table} was measured for {info.model} on {info.gpu} at tp in {list(info.tps)}, "
                         f"not {model} on {gpu} at tp={tp}",
                         f"set model={info.model}, gpu={info.gpu}, tp={info.tps[0]} or use cost=roofline")
    name = f"profiled:{table}"
    if info.kind == "helix":
        hmodel, hgpu = info.key
        return HelixCost(_measured_curve(*refdata.helix_bs2time(hmodel, hgpu, "prompt")),
                         _measured_curve(*refdata.helix_bs2time(hmodel, hgpu, "decode")), get_model(model).layers, name,
                         DecodeKV.from_roofline(roofline_factory(), HELIX_DECODE_CONTEXT))
    if info.kind == "sarathi":
        pp, _, pt_s = refdata.sarathi_batches("prefill")
        _, dd, dt_s = refdata.sarathi_batches("decode")
        return TwoCurveCost(Curve(pp.astype(float), pt_s), Curve(dd.astype(float), dt_s), float(dt_s[0]), name,
                            DecodeKV.from_roofline(roofline_factory(), SARATHI_DECODE_CONTEXT))
    if info.kind == "slai":
        x, y = refdata.slai_batches()
        return TokenCurveCost(Curve(x.astype(float), y), name, DecodeKV.from_roofline(roofline_factory(), 0))
    n, t = refdata.vidur_mlp(model, gpu, tp)
    return VidurCost(Curve(n.astype(float), t), roofline_factory(), get_model(model).layers, name)
