"""The run's logs as they are produced: per-client service rows and per-instance timeline rows.

Owns only appending rows at change points (columnar Python lists, converted once at the end).
It decides nothing; the instance tells it when a change point happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmsched.sim.instance import Instance

SERVICE_COLUMNS = ("time_s", "seq", "instance", "client", "input_tokens", "cached_input_tokens",
                   "output_tokens", "service", "waiting", "running")
TIMELINE_COLUMNS = ("time_s", "instance", "batch_requests", "prefill_tokens", "decode_tokens",
                    "kv_blocks_used", "kv_blocks_total", "waiting", "running", "iteration_s",
                    "run_iterations", "run_end_s")


class RunLog:
    def __init__(self, n_instances: int, input_weight: float, output_weight: float,
                 record_service: bool = True) -> None:
        self.input_weight = input_weight
        self.output_weight = output_weight
        self.record_service = record_service
        self.service: dict[str, list[float]] = {c: [] for c in SERVICE_COLUMNS}
        self.timeline_rows: dict[str, list[float]] = {c: [] for c in TIMELINE_COLUMNS}
        self._seq = [0] * n_instances
        # per instance: (row index, the instance's iteration count at the row, the instance) of the
        # row whose run of identical iterations is still open
        self._open_row: dict[int, tuple[int, int, Instance]] = {}

    def change_point(self, inst: Instance, t: float) -> None:
        """Write a row for every client whose counters on `inst` changed since its last row."""
        if not inst.dirty:
            return
        if not self.record_service:
            inst.dirty.clear()
            return
        r = inst.reqs
        i = inst.index
        seq = self._seq[i]
        self._seq[i] = seq + 1
        svc = self.service
        for c in sorted(inst.dirty):
            inp = int(r.input_service[i, c])
            out = int(r.output_service[i, c])
            svc["time_s"].append(t)
            svc["seq"].append(seq)
            svc["instance"].append(i)
            svc["client"].append(c)
            svc["input_tokens"].append(inp)
            svc["cached_input_tokens"].append(int(r.cached_input_service[i, c]))
            svc["output_tokens"].append(out)
            svc["service"].append(self.input_weight * inp + self.output_weight * out)
            svc["waiting"].append(int(r.waiting_count[i, c]))
            svc["running"].append(int(r.running_count[i, c]))
        inst.dirty.clear()

    def _close_row(self, i: int) -> None:
        """Fill in how many iterations the instance's open row ran, and when the last one ended."""
        opened = self._open_row.pop(i, None)
        if opened is None:
            return
        row, start_iterations, inst = opened
        self.timeline_rows["run_iterations"][row] = inst.iterations - start_iterations
        self.timeline_rows["run_end_s"][row] = inst.last_iteration_end_s

    def timeline(self, inst: Instance, t: float, prefill_tokens: int, decode_tokens: int, n_chunks: int,
                 iteration_s: float) -> None:
        tl = self.timeline_rows
        self._close_row(inst.index)
        self._open_row[inst.index] = (len(tl["time_s"]), inst.iterations, inst)
        tl["run_iterations"].append(0)
        tl["run_end_s"].append(t)
        tl["time_s"].append(t)
        tl["instance"].append(inst.index)
        tl["batch_requests"].append(decode_tokens + n_chunks)
        tl["prefill_tokens"].append(prefill_tokens)
        tl["decode_tokens"].append(decode_tokens)
        tl["kv_blocks_used"].append(inst.pool.used_blocks)
        tl["kv_blocks_total"].append(inst.pool.total_blocks)
        tl["waiting"].append(len(inst.waiting) + len(inst.ready))
        tl["running"].append(inst.running_count)
        tl["iteration_s"].append(iteration_s)
        inst.changed = False

    def frames(self):
        import pandas as pd

        for i in list(self._open_row):
            self._close_row(i)

        svc = pd.DataFrame({c: np.asarray(v) for c, v in self.service.items()})
        if len(svc):
            svc = svc.astype({"seq": "int64", "instance": "int64", "client": "int64"})
            svc = svc.sort_values(["time_s", "instance", "seq", "client"], kind="stable")
            svc = svc.reset_index(drop=True)
        tl = pd.DataFrame({c: np.asarray(v) for c, v in self.timeline_rows.items()})
        if len(tl):
            tl = tl.sort_values(["time_s", "instance"], kind="stable").reset_index(drop=True)
        return svc, tl
