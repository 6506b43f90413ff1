"""Tensor-parallel all-reduce and pipeline send/recv times.

Measured where Vidur profiled the node (reference/vidur network profiles: a100_dgx, h100_dgx, ...),
else a ring model over the catalogue link (bandwidth, per-message latency). Element-wise over byte
arrays (np.interp, +, -, *, /, max only). Must not import cost models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched.sim.cost import refdata
from llmsched.sim.hardware import GPU, get_gpu


@dataclass(frozen=True, eq=False)
class CollectiveTime:
    """Seconds for a collective of `nbytes`: a measured table (sizes, seconds) when given, extended
    beyond its largest size at the average rate of its largest message; otherwise latency_s + nbytes /
    bandwidth_Bps. Zero for zero bytes or a single rank."""

    source: str
    sizes: np.ndarray
    seconds: np.ndarray
    latency_s: float = 0.0
    bandwidth_Bps: float = float("inf")

    def __call__(self, nbytes) -> np.ndarray:
        b = np.asarray(nbytes, dtype=np.float64)
        if self.source == "none":
            return np.zeros_like(b)
        if len(self.sizes):
            s_last = float(self.sizes[-1])
            inv_bw = float(self.seconds[-1]) / s_last  # average rate of the largest measured message
            t = np.interp(b, self.sizes, self.seconds) + np.maximum(b - s_last, 0.0) * inv_bw
        else:
            t = self.latency_s + b / self.bandwidth_Bps
        return np.where(b > 0, t, 0.0)


def all_reduce(gpu: str | GPU, tp: int, measured: bool = True, eff_link: float = 1.0) -> CollectiveTime:
    """All-reduce among `tp` ranks of one node of this GPU type; `eff_link` scales the link bandwidth
    of the ring model (a fitted factor; unused when a measured profile exists)."""
    g = get_gpu(gpu)
    if tp <= 1:
        return CollectiveTime("none", np.zeros(0), np.zeros(0))
    if measured and g.node_sku:
        sizes, secs = refdata.vidur_collective(g.node_sku, "all_reduce", tp)
        if len(sizes) >= 2:
            return CollectiveTime(f"vidur:{g.node_sku}/all_reduce/{tp}", sizes, secs)
    # Ring all-reduce: 2(tp-1) steps, each moving nbytes/tp and paying one link latency.
    return CollectiveTime(
        f"ring:{g.name}", np.zeros(0), np.zeros(0),
        latency_s=2 * (tp - 1) * g.link_latency_s, bandwidth_Bps=g.link_bandwidth_Bps * eff_link * tp / (2 * (tp - 1)))


def send_recv(gpu: str | GPU, measured: bool = True) -> CollectiveTime:
    """Point-to-point activation transfer between pipeline stages on neighbouring GPUs of one node."""
    g = get_gpu(gpu)
    if measured and g.node_sku:
        sizes, secs = refdata.vidur_collective(g.node_sku, "send_recv", 2)
        if len(sizes) >= 2:
            return CollectiveTime(f"vidur:{g.node_sku}/send_recv", sizes, secs)
    return CollectiveTime(f"link:{g.name}", np.zeros(0), np.zeros(0),
                          latency_s=g.link_latency_s, bandwidth_Bps=g.link_bandwidth_Bps)
