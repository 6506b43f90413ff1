"""Shared mechanics of the fairness/locality batching policies (VTC family, DLPM, LPM, FCFS, RPM).

Owns the plan skeleton (running decodes, ongoing prefill chunks, then admissions that stop at the
first misfit), the optional output reservation that makes admission non-preemptive, and the
stability guard. Holds no policy's decision state and never touches the engine's accounting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import overload

import numpy as np

from llmsched.sim.config import InstanceSpec
from llmsched.sim.policy_api import InstanceView, PlanBuilder

ADMISSION_MODES = ("engine", "reserve", "peak")
#: The default for every fairness policy: the admission under which VTC's and DLPM's theorems hold
#: (non-preemptive, every admitted request's prompt + output reserved). "engine" preempts and broke
#: VTC's 2U on held-out flooding workloads (issue 15); docs/theory/fairness.md, "Admission modes".
DEFAULT_ADMISSION = "reserve"
GUARD_LOOKAHEAD = 64  # left-behind requests checked by the stability guard (cost cap, our choice)


@overload
def kv_capacity_blocks(instance_spec: InstanceSpec) -> int: ...
@overload
def kv_capacity_blocks(instance_spec: None) -> None: ...
def kv_capacity_blocks(instance_spec: InstanceSpec | None) -> int | None:
    """KV capacity of the instance in blocks (None if no spec was given)."""
    if instance_spec is None:
        return None
    return instance_spec.kv_blocks()


class Admitter:
    """Admission control shared by the policies.

    admission="engine": a request fits when the engine says its prompt's KV fits now (vLLM-style;
    the engine may later preempt to make room for decodes).
    admission="reserve": additionally reserve every admitted request's full prompt + output KV
    (the artifact's `ignore_eos` runs know the output length; VTC-artifact
    `slora/server/router/req_queue.py::_can_add_new_req` reserves for it too), so a reserved batch
    never needs preemption: VTC's theorems assume non-preemptive batching.
    admission="peak": the artifact's own test (`_can_add_new_req`): with every running and new
    request run to its output length in lock-step, the peak KV, max_i Σ_{j≤i} (held_j + left_i)
    over requests sorted by remaining output descending, must stay below the capacity (counted in
    blocks, see `_peak_ok`). Also non-preemptive (the engine decodes every running request each
    iteration), and admits more than "reserve".
    """

    def __init__(self, admission: str = DEFAULT_ADMISSION, instance_spec: InstanceSpec | None = None) -> None:
        if admission not in ADMISSION_MODES:
            raise ValueError(f"admission must be one of {', '.join(ADMISSION_MODES)}, got {admission!r}")
        self.mode = admission
        self.reserve = admission in ("reserve", "peak")
        self.capacity_blocks = kv_capacity_blocks(instance_spec) if self.reserve else None
        self.block_size = int(instance_spec.block_size) if instance_spec is not None else 16
        if self.reserve and self.capacity_blocks is None:
            raise ValueError(f"admission={admission!r} needs the instance spec (KV capacity); "
                             "pass instance_spec=, or admission='engine'")
        self._reserved = 0

    def _blocks(self, view: InstanceView, rid: int) -> int:
        tokens = view.prompt_tokens(rid) + view.output_tokens(rid)
        return -(-tokens // self.block_size)

    def start(self, view: InstanceView) -> PlanBuilder:
        """A builder holding every running decode and the next chunk of every ongoing prefill."""
        b = PlanBuilder(view)
        b.decode_all()
        for rid in view.prefilling:
            b.chunk(rid)
        if self.mode == "reserve":
            self._reserved = sum(self._blocks(view, r) for r in (*view.prefilling, *view.decoding))
        elif self.mode == "peak":
            self._held = [(view.prompt_tokens(r) + view.generated_tokens(r),
                           view.output_tokens(r) - view.generated_tokens(r))
                          for r in (*view.prefilling, *view.decoding)]
        return b

    def _peak_ok(self, extra: tuple[int, int]) -> bool:
        """The artifact's peak test, in the engine's blocks: when the i-th request (by remaining
        output, descending) finishes, `left_i` iterations from now, requests 0..i each hold their
        h_j + left_i tokens, ceil((h_j + left_i)/block) blocks; every such peak must stay below the
        pool (strict, as the artifact's `<`). Counting tokens, as the artifact does, let our blocks'
        rounding outgrow memory (preemptions). A request alone on the instance may fill it
        exactly: the strict test refused it forever, and VTC, which never skips a client's head
        request, stalled behind it (tests/reliability/test_issue15_recheck.py)."""
        capacity = self.capacity_blocks
        assert capacity is not None  # "peak" reserves: __init__ refuses it without a capacity
        rows = sorted([*self._held, extra], key=lambda x: -x[1])
        held = np.array([h for h, _ in rows], dtype=np.int64)
        limit = capacity + (1 if len(rows) == 1 else 0)
        for i, (_, left) in enumerate(rows):
            if int((-(-(held[:i + 1] + left) // self.block_size)).sum()) >= limit:
                return False
        return True

    def _entry(self, view: InstanceView, rid: int) -> tuple[int, int]:
        return view.prompt_tokens(rid), view.output_tokens(rid)

    def fits(self, b: PlanBuilder, view: InstanceView, rid: int) -> bool:
        if self.mode == "reserve" and not self._reserve_ok(view, rid):
            return False  # the cheap test first (both are pure; the engine's walks the prefix cache)
        if not b.can_admit(rid):
            return False
        if self.mode == "peak":
            if self._peak_ok(self._entry(view, rid)):
                return True
            # the peak shrinks as running requests decode (unlike free memory), so a refusal may
            # turn into an admission before the next change point: ask again each iteration
            b.replan_each_iteration = True
            return False
        return not self.reserve or self._reserve_ok(view, rid)

    def _reserve_ok(self, view: InstanceView, rid: int) -> bool:
        assert self.capacity_blocks is not None  # __init__ refuses a reserve mode without it
        return self._reserved + self._blocks(view, rid) <= self.capacity_blocks

    def admit(self, b: PlanBuilder, view: InstanceView, rid: int) -> bool:
        """Admit `rid` with its first chunk; False (no change) when it does not fit."""
        if not self.fits(b, view, rid) or not b.admit(rid):
            return False
        if self.mode == "reserve":
            self._reserved += self._blocks(view, rid)
        elif self.mode == "peak":
            self._held.append(self._entry(view, rid))
        return True

    def guard(self, b: PlanBuilder, view: InstanceView, left_behind: Iterable[int]) -> None:
        """Stability guard: a plan that stopped at a misfit stays right until the next change
        point only if nothing left behind fits now (free memory only shrinks between change
        points). Otherwise the choice may depend on counters that move every iteration, so ask
        again each iteration (the fast-forward-equals-step contract of `llmsched.sim.policy_api`).
        Enough where planning leaves nothing that later plans read (the VTC family, Preble's
        queue); DLPM, whose plans grant quanta, has its own (`DLPM._guard`), and orders that move
        only at change points need none (`lpm._Ordered`)."""
        if any(self.fits(b, view, rid) for rid in left_behind):
            b.replan_each_iteration = True


def waiting_by_client(view: InstanceView) -> dict[int, list[int]]:
    """The waiting queue split per client, each list in arrival order."""
    out: dict[int, list[int]] = {}
    for rid in view.waiting:
        out.setdefault(view.client(rid), []).append(rid)
    return out
