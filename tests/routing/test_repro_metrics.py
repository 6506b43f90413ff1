"""Metric code of the routing reproductions, on hand-built tables."""

from __future__ import annotations

import pandas as pd
import pytest

from llmsched.experiments.reproductions.llumnix import fragmentation


def _timeline(rows):
    return pd.DataFrame(rows, columns=["time_s", "instance", "kv_blocks_used", "kv_blocks_total", "waiting"])


def test_fragmentation_counts_free_memory_only_while_something_queues():
    tl = _timeline([(0.0, 0, 5, 10, 1), (0.0, 1, 2, 10, 0), (0.5, 0, 5, 10, 0), (1.0, 0, 9, 10, 0)])
    # samples at t = 0 and 0.5 (grid [0, 1) step 0.5): at 0 instance 0 queues -> free (5 + 8) / 20
    # = 0.65; at 0.5 nothing queues -> 0; mean 0.325
    assert fragmentation(tl, step_s=0.5) == pytest.approx(0.325)
    # negative control: no queue anywhere -> no fragmentation, however much memory is free
    tl2 = _timeline([(0.0, 0, 0, 10, 0), (0.0, 1, 0, 10, 0), (1.0, 0, 0, 10, 0)])
    assert fragmentation(tl2, step_s=0.5) == 0.0
