"""The run's logs as they are produced: per-client service rows and per-instance timeline rows.

Owns only appending rows at change points. Rows are appended to columnar Python lists (the
cheapest append), and every `CHUNK_ROWS` rows the lists are moved into NumPy arrays (8 bytes a
value instead of a Python object each), so memory per logged row stays small on long runs; the
chunks are joined once at the end. It decides nothing; the instance tells it when a change point
happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmsched.sim.instance import Instance

# RunLog.change_point and .timeline unpack their bound appenders in these orders: keep them in step
SERVICE_COLUMNS = ("time_s", "seq", "instance", "client", "input_tokens", "cached_input_tokens",
                   "output_tokens", "service", "waiting", "running")
TIMELINE_COLUMNS = ("time_s", "instance", "batch_requests", "prefill_tokens", "decode_tokens",
                    "kv_blocks_used", "kv_blocks_total", "waiting", "running", "iteration_s",
                    "run_iterations", "run_end_s")


CHUNK_ROWS = 1 << 16  # rows kept as Python lists before they move into NumPy arrays


class _Columns:
    """Named columns: `lists` take the newest rows, `chunks` hold older rows as arrays (each
    chunk of a column converted with `np.asarray`, so a column's dtype is what it would be as
    one list: int64 if every value is an int, float64 otherwise)."""

    __slots__ = ("chunks", "lists", "stored")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.lists: dict[str, list] = {c: [] for c in names}
        self.chunks: dict[str, list[np.ndarray]] = {c: [] for c in names}
        self.stored = 0  # rows already moved into chunks

    def __len__(self) -> int:
        return self.stored + len(next(iter(self.lists.values())))

    def flush(self) -> None:
        n = 0
        for c, values in self.lists.items():
            n = len(values)
            self.chunks[c].append(np.asarray(values))
            values.clear()  # in place: callers hold the list objects
        self.stored += n

    def set(self, column: str, row: int, value) -> None:
        """Overwrite one value of an earlier row (wherever it is stored now)."""
        if row >= self.stored:
            self.lists[column][row - self.stored] = value
            return
        chunks = self.chunks[column]
        for i, chunk in enumerate(chunks):
            if row < len(chunk):
                if chunk.dtype.kind != "f" and not isinstance(value, int | np.integer):
                    chunk = chunks[i] = chunk.astype(np.float64)  # as one list with a float in it
                chunk[row] = value
                return
            row -= len(chunk)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for c, values in self.lists.items():
            parts = [*self.chunks[c], *([np.asarray(values)] if values else [])] or [np.asarray(values)]
            out[c] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out


class RunLog:
    def __init__(self, n_instances: int, input_weight: float, output_weight: float,
                 record_service: bool = True) -> None:
        self.input_weight = input_weight
        self.output_weight = output_weight
        self.record_service = record_service
        self._service = _Columns(SERVICE_COLUMNS)
        self._timeline = _Columns(TIMELINE_COLUMNS)
        self.service: dict[str, list] = self._service.lists  # the newest rows (see _Columns)
        self.timeline_rows: dict[str, list] = self._timeline.lists
        # each column's bound `append`, in column order (the lists are cleared in place, never replaced)
        self._svc_append = tuple(self.service[c].append for c in SERVICE_COLUMNS)
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
        if len(self.service["time_s"]) >= CHUNK_ROWS:
            self._service.flush()

    def _close_row(self, i: int) -> None:
        """Fill in how many iterations the instance's open row ran, and when the last one ended."""
        opened = self._open_row.pop(i, None)
        if opened is None:
            return
        row, start_iterations, inst = opened
        tl = self._timeline
        if row >= tl.stored:  # the common case: the row is still in the lists
            self.timeline_rows["run_iterations"][row - tl.stored] = inst.iterations - start_iterations
            self.timeline_rows["run_end_s"][row - tl.stored] = inst.last_iteration_end_s
        else:
            tl.set("run_iterations", row, inst.iterations - start_iterations)
            tl.set("run_end_s", row, inst.last_iteration_end_s)

    def timeline(self, inst: Instance, t: float, prefill_tokens: int, decode_tokens: int, n_chunks: int,
                 iteration_s: float) -> None:
        tl = self.timeline_rows
        i = inst.index
        self._close_row(i)
        if len(tl["time_s"]) >= CHUNK_ROWS:
            self._timeline.flush()
        self._open_row[i] = (self._timeline.stored + len(tl["time_s"]), inst.iterations, inst)
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
