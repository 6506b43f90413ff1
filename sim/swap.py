"""The host-memory KV tier: vLLM's CPU swap space, used by swap-style preemption.

Owns the host tier's block accounting and the transfer time it adds to the next iteration. The
instance decides when to swap (preemption of a decoding request, resumption before new
admissions); this module only counts.

Sources and choices:
- vLLM 0.x preempts by swapping a running sequence group's KV blocks to a CPU swap space
  (`--swap-space`, default 4 GiB per GPU: `vllm/engine/arg_utils.py`, `EngineArgs.swap_space = 4`)
  or by recomputing it; `Scheduler._preempt` picks RECOMPUTE for a group with one running
  sequence and SWAP otherwise, unless `--preemption-mode` forces one. llmsched's requests are
  single-sequence, so vLLM's default rule is our default, `preemption = "recompute"`;
  `preemption = "swap"` is vLLM's forced swap mode.
- vLLM runs the swap copies in the same engine step, before the model runs (the cache engine's
  `swap_out`/`swap_in` are issued in `Worker.execute_model`), so the transfer time is added to the
  next iteration's duration.
- Transfer time = KV bytes per GPU / host-link bandwidth. The default bandwidth, 31.5e9 B/s, is
  PCIe 4.0 x16 per direction (16 GT/s x 16 lanes x 128/130 / 8), the A100's host link; measured
  pinned copies reach less, so this is a lower bound on the time (our choice).
- When the swap space is full, vLLM aborts the request group ("Aborted due to the lack of CPU swap
  space"); llmsched falls back to recompute for that request instead (our choice), so a run never
  loses a request.
"""

from __future__ import annotations

from dataclasses import dataclass

PREEMPTION_MODES = ("recompute", "swap")
DEFAULT_SWAP_SPACE_BYTES = 4 * 2**30  # vLLM EngineArgs.swap_space = 4 (GiB per GPU)
PCIE4_X16_BANDWIDTH_BPS = 16e9 * 16 * 128 / 130 / 8  # 31.5 GB/s per direction


@dataclass
class SwapTier:
    """Host swap space of one instance, in KV blocks, and the transfer time owed to the next iteration."""

    capacity_blocks: int
    seconds_per_token: float
    used_blocks: int = 0
    pending_s: float = 0.0
    swapped_out_tokens: int = 0
    swapped_in_tokens: int = 0

    def can_hold(self, blocks: int) -> bool:
        return self.used_blocks + blocks <= self.capacity_blocks

    def swap_out(self, blocks: int, tokens: int) -> None:
        self.used_blocks += blocks
        self.pending_s += tokens * self.seconds_per_token
        self.swapped_out_tokens += tokens

    def swap_in(self, blocks: int, tokens: int) -> None:
        self.used_blocks -= blocks
        self.pending_s += tokens * self.seconds_per_token
        self.swapped_in_tokens += tokens

    def drop(self, blocks: int) -> None:
        """Free host blocks whose KV is no longer needed (the request restarts elsewhere)."""
        self.used_blocks -= blocks

    def take_pending_s(self) -> float:
        """The transfer time to add to the next iteration, and reset it."""
        owed, self.pending_s = self.pending_s, 0.0
        return owed
