"""The run's logs as they are produced: per-client service rows and per-instance timeline rows.

Owns only appending rows at change points. Each column is a typed `array.array` (int64 or
float64, fixed per column): an append stores 8 bytes, with no Python object kept per value, and
the columns become NumPy arrays at the end without a conversion pass. It decides nothing; the
instance tells it when a change point happened.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmsched.sim.instance import Instance

# RunLog.change_point and .timeline unpack their bound appenders in these orders: keep them in step.
# Each column's type: "q" int64 (counts, tokens, indices), "d" float64 (times, weighted service).
SERVICE_COLUMNS = ("time_s", "seq", "instance", "client", "input_tokens", "cached_input_tokens",
                   "output_tokens", "service", "waiting", "running")
TIMELINE_COLUMNS = ("time_s", "instance", "batch_requests", "prefill_tokens", "decode_tokens",
                    "kv_blocks_used", "kv_blocks_total", "waiting", "running", "iteration_s",
                    "run_iterations", "run_end_s")
FLOAT_COLUMNS = frozenset({"time_s", "service", "iteration_s", "run_end_s"})


class _Columns:
    """Named typed columns (float64 for `FLOAT_COLUMNS`, int64 otherwise). An int column refuses a
    float (TypeError) rather than truncating it."""

    __slots__ = ("columns",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.columns: dict[str, array] = {c: array("d" if c in FLOAT_COLUMNS else "q") for c in names}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the columns as NumPy arrays (the log can go on after); an empty column is
        float64, as an empty list was before the columns were typed."""
        return {c: np.frombuffer(values, dtype=np.float64 if values.typecode == "d" else np.int64).copy()
                if len(values) else np.zeros(0) for c, values in self.columns.items()}


class RunLog:
    def __init__(self, n_instances: int, input_weight: float, output_weight: float,
                 record_service: bool = True) -> None:
        self.input_weight = float(input_weight)  # the service column is float64 whatever the weights' type
        self.output_weight = float(output_weight)
        self.record_service = record_service
        self._service = _Columns(SERVICE_COLUMNS)
        self._timeline = _Columns(TIMELINE_COLUMNS)
        self.timeline_rows = self._timeline.columns
        # each column's bound `append`, in column order (the columns are never replaced)
        self._svc_append = tuple(self._service.columns[c].append for c in SERVICE_COLUMNS)
        self._tl_append = tuple(self.timeline_rows[c].append for c in TIMELINE_COLUMNS)
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
        a_time, a_seq, a_inst, a_client, a_in, a_cached, a_out, a_svc, a_wait, a_run = self._svc_append
        dirty = inst.dirty
        for c in (dirty if len(dirty) == 1 else sorted(dirty)):
            at = (i, c)
            inp = r.input_service.item(at)  # .item: a Python int, without a NumPy scalar in between
            out = r.output_service.item(at)
            a_time(t)
            a_seq(seq)
            a_inst(i)
            a_client(c)
            a_in(inp)
            a_cached(r.cached_input_service.item(at))
            a_out(out)
            a_svc(self.input_weight * inp + self.output_weight * out)
            a_wait(r.waiting_count.item(at))
            a_run(r.running_count.item(at))
        dirty.clear()

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
        i = inst.index
        self._close_row(i)
        self._open_row[i] = (len(tl["time_s"]), inst.iterations, inst)
        a_time, a_inst, a_batch, a_pre, a_dec, a_used, a_total, a_wait, a_run, a_iter, a_runs, a_end = self._tl_append
        pool = inst.pool
        a_runs(0)
        a_end(t)
        a_time(t)
        a_inst(inst.index)
        a_batch(decode_tokens + n_chunks)
        a_pre(prefill_tokens)
        a_dec(decode_tokens)
        a_used(pool.used_blocks)
        a_total(pool.total_blocks)
        a_wait(len(inst.waiting) + len(inst.ready))
        a_run(len(inst.prefilling) + len(inst.decoding))
        a_iter(iteration_s)
        inst.changed = False

    def frames(self):
        import pandas as pd

        for i in list(self._open_row):
            self._close_row(i)

        svc = pd.DataFrame(self._service.arrays())
        if len(svc):
            svc = svc.astype({"seq": "int64", "instance": "int64", "client": "int64"})
            svc = svc.sort_values(["time_s", "instance", "seq", "client"], kind="stable")
            svc = svc.reset_index(drop=True)
        tl = pd.DataFrame(self._timeline.arrays())
        if len(tl):
            tl = tl.sort_values(["time_s", "instance"], kind="stable").reset_index(drop=True)
        return svc, tl
