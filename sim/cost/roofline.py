"""The roofline cost model: per-layer FLOPs and bytes of a batch shape, max(compute, memory) with
efficiency factors, tensor-parallel all-reduces, the LM head and fixed overheads.

Owns `RooflineParams` (the fitted factors) and `RooflineCost`. Element-wise over iterations using
only +, -, *, /, max, np.where and np.interp (bit-identical for 1 or n iterations). FLOP/byte
counting lives in `llmsched.sim.hardware.derived`; fitting lives in `experiments/calibration.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmsched.sim.cost import comm
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.hardware import GPU, Model, effective_tp, get_gpu, get_model
from llmsched.sim.hardware import derived as hw


@dataclass(frozen=True)
class RooflineParams:
    """Efficiency factors and overheads (fitted per GPU by experiments/calibration.py).

    eff_compute:          fraction of peak FLOP/s reached by the GEMMs (QKV, O, MLP, LM head)
    eff_memory:           fraction of peak memory bandwidth reached when streaming weights and KV
    eff_attention:        fraction of peak FLOP/s reached by attention kernels (score and value products)
    layer_overhead_s:     fixed time per layer per iteration (kernel launches, small element-wise ops)
    attention_overhead_s: fixed time of each attention kernel (one for prefill chunks, one for decodes)
    eff_link:             fraction of the catalogue link bandwidth a ring all-reduce reaches (only where
                          no measured collective profile exists, e.g. PCIe nodes)
    iteration_overhead_s: fixed time per iteration (scheduler, input preparation, sampling launch)
    request_overhead_s:   extra time per request in the batch (per-sequence bookkeeping, sampling)

    Defaults (used for a GPU without a fit) are the unfitted starting point of the calibration:
    iteration/request overheads from a line through Vidur's Llama-2-7B CPU overheads
    (vidur/upstream_old/.../cpu_overheads.csv: ~1.2 ms at batch 8, ~6.2 ms at batch 128),
    efficiencies chosen by us (typical GEMM ~0.6, streaming ~0.8, attention ~0.4).
    """

    eff_compute: float = 0.6
    eff_memory: float = 0.8
    eff_attention: float = 0.4
    layer_overhead_s: float = 20e-6
    attention_overhead_s: float = 10e-6
    eff_link: float = 1.0
    iteration_overhead_s: float = 0.9e-3
    request_overhead_s: float = 40e-6


@dataclass(frozen=True, eq=False)
class RooflineCost:
    """Roofline iteration time of `model` on `gpu` at tensor-parallel degree `tp`.

    Per layer and rank:
      linear    = max(2*W*T/tp / (peak*eff_compute), (W_bytes/tp + act_bytes*T) / (bw*eff_memory))
      prefill   = max(4*d*heads/tp*pairs / (peak*eff_attention), (KV(past) + KV/QO(chunk)) / (bw*eff_memory))
                  + attention_overhead_s   (if any prefill token)
      decode    = max(4*d*heads/tp*(ctx+n) / (peak*eff_attention), (KV(ctx) + KV/QO(n)) / (bw*eff_memory))
                  + attention_overhead_s   (if any decode)
      comm      = 2 all-reduces of T*hidden*bytes (measured Vidur profile or ring over the link)
      layer     = linear + prefill + decode + comm + layer_overhead_s
    iteration = layers*layer + LM head (max of its FLOPs and weight read, one token per request)
                + iteration_overhead_s + request_overhead_s*num_requests;  0 s with no tokens.
    (T = prefill + decode tokens; W = linear weights per layer; pairs = prefill_attention_pairs.)
    """

    model: Model
    gpu: GPU
    tp: int
    params: RooflineParams = field(default_factory=RooflineParams)
    name: str = "roofline"
    measured_comm: bool = True
    # derived in __post_init__ from the fields above (not arguments, not compared, not shown)
    _c: dict[str, float] = field(init=False, repr=False, compare=False)
    _allreduce: comm.CollectiveTime = field(init=False, repr=False, compare=False)
    _kernel_consts: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m, g, tp, p = self.model, self.gpu, self.tp, self.params
        flops = g.peak_flops
        bw = g.hbm_bandwidth_Bps
        c = {
            "lin_flop_s_per_token": 2.0 * hw.linear_params_per_layer(m) / tp / (flops * p.eff_compute),
            "lin_weight_s": hw.layer_weight_bytes(m, tp) / (bw * p.eff_memory),
            "lin_act_s_per_token": hw.layer_activation_elems_per_token(m, tp) * m.bytes_per_param / (bw * p.eff_memory),
            "attn_flop_s_per_pair": 4.0 * m.head_dim * (m.heads // tp) / (flops * p.eff_attention),
            "kv_s_per_token": hw.layer_kv_bytes_per_token(m, tp) / (bw * p.eff_memory),
            "qo_s_per_token": 2.0 * (m.heads // tp) * m.head_dim * m.bytes_per_param / (bw * p.eff_memory),
            "head_flop_s_per_req": 2.0 * m.hidden * m.vocab / tp / (flops * p.eff_compute),
            "head_weight_s": m.hidden * m.vocab * m.bytes_per_param / tp / (bw * p.eff_memory),
            "allreduce_bytes_per_token": float(m.hidden * m.bytes_per_param),
        }
        object.__setattr__(self, "_c", c)
        object.__setattr__(self, "_allreduce", comm.all_reduce(g, tp, measured=self.measured_comm,
                                                                   eff_link=p.eff_link))
        object.__setattr__(self, "_kernel_consts", self._consts())

    @staticmethod
    def create(model: str, gpu: str, tp: int = 1, params: RooflineParams | None = None,
               measured_comm: bool = True, name: str = "roofline") -> RooflineCost:
        m, g = get_model(model), get_gpu(gpu)
        tp = effective_tp(m, g, tp)
        return RooflineCost(m, g, tp, params or RooflineParams(), name=name, measured_comm=measured_comm)

    @property
    def kv_read_s_per_token(self) -> float:
        """Seconds one rank takes to stream one cached token's K and V in every layer (decode memory term)."""
        return float(self._c["kv_s_per_token"]) * float(self.model.layers)

    def components(self, shape: BatchShape) -> dict[str, np.ndarray]:
        """Per-layer seconds of each part (linear, prefill_attn, decode_attn, comm, layer), and the
        per-iteration extras (head, overhead) and the total."""
        c, p = self._c, self.params
        pt = shape.prefill_tokens.astype(np.float64)
        dt = shape.decode_tokens.astype(np.float64)
        tokens = pt + dt
        busy = tokens > 0
        past = shape.prefill_context_tokens.astype(np.float64) - pt
        dctx = shape.decode_context_tokens.astype(np.float64)
        nreq = shape.num_requests.astype(np.float64)

        lin = np.maximum(tokens * c["lin_flop_s_per_token"],
                         np.where(busy, c["lin_weight_s"], 0.0) + tokens * c["lin_act_s_per_token"])
        pre = np.maximum(shape.prefill_attention_pairs.astype(np.float64) * c["attn_flop_s_per_pair"],
                         past * c["kv_s_per_token"] + pt * (c["kv_s_per_token"] + c["qo_s_per_token"]))
        pre = pre + np.where(pt > 0, p.attention_overhead_s, 0.0)
        dec = np.maximum((dctx + dt) * c["attn_flop_s_per_pair"],
                         dctx * c["kv_s_per_token"] + dt * (c["kv_s_per_token"] + c["qo_s_per_token"]))
        dec = dec + np.where(dt > 0, p.attention_overhead_s, 0.0)
        com = 2.0 * self._allreduce(tokens * c["allreduce_bytes_per_token"])
        layer = lin + pre + dec + com + np.where(busy, p.layer_overhead_s, 0.0)
        head = np.where(busy, np.maximum(nreq * c["head_flop_s_per_req"], c["head_weight_s"]), 0.0)
        over = np.where(busy, p.iteration_overhead_s + p.request_overhead_s * nreq, 0.0)
        total = layer * float(self.model.layers) + head + over
        return {"linear": lin, "prefill_attn": pre, "decode_attn": dec, "comm": com, "layer": layer,
                "head": head, "overhead": over, "total": total}

    def iteration_times(self, shape: BatchShape) -> np.ndarray:
        if len(shape) == 1:  # the engine's common case: same operations on Python floats, ~10x faster
            return np.array([self._one(*(float(getattr(shape, f)[0]) for f in _FIELDS))])
        return self.components(shape)["total"]

    def segment_times(self, pt: int, sum_c2: int, pairs0: int, pctx0: int, dt: int, dctx0: int, nreq: int,
                      n: int) -> np.ndarray | float:
        """`iteration_times` of the n iterations of one engine segment, whose shape is affine in the
        iteration index j: prefill_attention_pairs = pairs0 + j * sum_c2, prefill_context_tokens =
        pctx0 + j * pt, decode_context_tokens = dctx0 + j * dt, the other fields constant (the
        layout `llmsched.sim.instance` builds). Returns a float for n == 1.

        The same IEEE operations as `components` element for element: the parts that do not depend
        on j are computed once on Python floats (as `_one` does), the rest on arrays of n. The
        engine prefers this method to `iteration_times` when a cost model has it, so a subclass that
        changes `components` must change this too (tests/sim/test_hot_path.py checks the pair)."""
        if n == 1:
            return self._one(float(pt), float(pairs0), float(pctx0), float(dt), float(dctx0), float(nreq))
        c, p = self._c, self.params
        ptf = float(pt)
        dtf = float(dt)
        nreqf = float(nreq)
        tokens = ptf + dtf
        busy = tokens > 0
        attn, kv = c["attn_flop_s_per_pair"], c["kv_s_per_token"]
        kvqo = kv + c["qo_s_per_token"]
        lin = max(tokens * c["lin_flop_s_per_token"],
                  (c["lin_weight_s"] if busy else 0.0) + tokens * c["lin_act_s_per_token"])
        # in-place array operations below are the same element-wise IEEE operations as the
        # expressions of `components` (x + y == y + x exactly; no operation is re-associated)
        pre: np.ndarray | float
        if sum_c2 or pt:
            pairs = np.arange(n, dtype=np.int64)
            pairs *= sum_c2
            pairs += pairs0
            past = np.arange(n, dtype=np.int64)
            past *= pt
            past += pctx0
            pre = pairs.astype(np.float64)
            pre *= attn
            pastf = past.astype(np.float64)
            pastf -= ptf
            pastf *= kv
            pastf += ptf * kvqo
            np.maximum(pre, pastf, out=pre)
            pre += p.attention_overhead_s if pt > 0 else 0.0
        else:
            pre = max(float(pairs0) * attn, (float(pctx0) - ptf) * kv + ptf * kvqo)
            pre = pre + (p.attention_overhead_s if pt > 0 else 0.0)
        dec: np.ndarray | float
        if dt:
            ctx = np.arange(n, dtype=np.int64)
            ctx *= dt
            ctx += dctx0
            dctx = ctx.astype(np.float64)
            dec = dctx + dtf
            dec *= attn
            dctx *= kv
            dctx += dtf * kvqo
            np.maximum(dec, dctx, out=dec)
            dec += p.attention_overhead_s if dt > 0 else 0.0
        else:
            dctx_s = float(dctx0)
            dec = max((dctx_s + dtf) * attn, dctx_s * kv + dtf * kvqo)
            dec = dec + (p.attention_overhead_s if dt > 0 else 0.0)
        com = self.comm_s(tokens)
        # layer = lin + pre + dec + com + layer_overhead, left to right
        layer: np.ndarray | float
        if isinstance(pre, np.ndarray):
            layer = pre
            layer += lin
            layer += dec
        elif isinstance(dec, np.ndarray):
            layer = dec
            layer += lin + pre
        else:
            layer = lin + pre + dec
        layer = layer + com if not isinstance(layer, np.ndarray) else np.add(layer, com, out=layer)
        lovh = p.layer_overhead_s if busy else 0.0
        head = max(nreqf * c["head_flop_s_per_req"], c["head_weight_s"]) if busy else 0.0
        over = p.iteration_overhead_s + p.request_overhead_s * nreqf if busy else 0.0
        if not isinstance(layer, np.ndarray):  # nothing depends on j
            return np.full(n, (layer + lovh) * float(self.model.layers) + head + over)
        layer += lovh
        layer *= float(self.model.layers)
        layer += head
        layer += over
        return layer

    def roofline_consts(self) -> np.ndarray | None:
        """The constants of `llmsched.sim.kernels.roofline_segment` (see `_consts`), kept read-only."""
        return self._kernel_consts

    def _consts(self) -> np.ndarray | None:
        """The constants `llmsched.sim.kernels.roofline_segment` computes a segment from, in its
        order (the same Python floats `segment_times` uses, `kv + qo` summed as there); None for a
        subclass that redefines `components` or `segment_times` (the kernel would not follow it)."""
        cls = type(self)
        if cls.components is not RooflineCost.components or cls.segment_times is not RooflineCost.segment_times:
            return None
        c, p = self._c, self.params
        out = np.array([c["lin_flop_s_per_token"], c["lin_weight_s"], c["lin_act_s_per_token"],
                         c["attn_flop_s_per_pair"], c["kv_s_per_token"], c["kv_s_per_token"] + c["qo_s_per_token"],
                         p.attention_overhead_s, p.layer_overhead_s, c["head_flop_s_per_req"], c["head_weight_s"],
                         p.iteration_overhead_s, p.request_overhead_s, float(self.model.layers)], dtype=np.float64)
        out.flags.writeable = False
        return out

    def comm_s(self, tokens: float) -> float:
        """Seconds of one iteration's all-reduces with `tokens` tokens (0.0 at TP 1), as `segment_times`."""
        if self.tp <= 1:
            return 0.0
        return 2.0 * float(self._allreduce(np.array([tokens * self._c["allreduce_bytes_per_token"]]))[0])

    def _one(self, pt: float, pairs: float, pctx: float, dt: float, dctx: float, nreq: float) -> float:
        """`components(...)["total"]` for one iteration, operation for operation (IEEE-identical)."""
        c, p = self._c, self.params
        tokens = pt + dt
        busy = tokens > 0
        past = pctx - pt
        lin = max(tokens * c["lin_flop_s_per_token"],
                  (c["lin_weight_s"] if busy else 0.0) + tokens * c["lin_act_s_per_token"])
        pre = max(pairs * c["attn_flop_s_per_pair"],
                  past * c["kv_s_per_token"] + pt * (c["kv_s_per_token"] + c["qo_s_per_token"]))
        pre = pre + (p.attention_overhead_s if pt > 0 else 0.0)
        dec = max((dctx + dt) * c["attn_flop_s_per_pair"],
                  dctx * c["kv_s_per_token"] + dt * (c["kv_s_per_token"] + c["qo_s_per_token"]))
        dec = dec + (p.attention_overhead_s if dt > 0 else 0.0)
        com = self.comm_s(tokens)
        layer = lin + pre + dec + com + (p.layer_overhead_s if busy else 0.0)
        head = max(nreq * c["head_flop_s_per_req"], c["head_weight_s"]) if busy else 0.0
        over = p.iteration_overhead_s + p.request_overhead_s * nreq if busy else 0.0
        return layer * float(self.model.layers) + head + over


_FIELDS = ("prefill_tokens", "prefill_attention_pairs", "prefill_context_tokens", "decode_tokens",
           "decode_context_tokens", "num_requests")
