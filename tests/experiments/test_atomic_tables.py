"""Atomic writes and tidy tables: no temp file survives a write, a failing writer leaves the old file
intact, and `flatten` gives dotted scalar columns."""

from __future__ import annotations

import pandas as pd
import pytest

from llmsched.experiments.tables import flatten, write_table
from llmsched.sim import atomic


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "x.json"
    atomic.write_json(p, {"b": 1, "a": [1.5, float("inf")]})
    assert p.read_text() == '{\n "a": [\n  1.5,\n  Infinity\n ],\n "b": 1\n}\n'
    atomic.write_text(p, "new")
    assert p.read_text() == "new" and [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_failing_writer_keeps_old_content_and_cleans_up(tmp_path):
    p = tmp_path / "x.txt"
    atomic.write_text(p, "old")

    def writer(tmp):
        tmp.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic.write_with(p, writer)
    assert p.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["x.txt"]
    assert atomic.is_temp_name(".x.txt.abcd.tmp") and not atomic.is_temp_name("x.txt")


def test_flatten():
    d = {"a": {"b": [1, {"c": 2}], "e": {}}, "f": "x", "g": []}
    assert flatten(d) == {"a.b.0": 1, "a.b.1.c": 2, "a.e": "{}", "f": "x", "g": "[]"}
    assert flatten({"x": 1}, "config") == {"config.x": 1}


def test_write_table_parquet_and_csv_with_mixed_object_column(tmp_path):
    df = pd.DataFrame({"k": [1, 2, 3], "mixed": [None, 3, "x"], "f": [0.5, float("nan"), 1.0]})
    paths = write_table(df, tmp_path, "t")
    assert [p.name for p in paths] == ["t.parquet", "t.csv"]
    back = pd.read_parquet(paths[0])
    assert back["k"].tolist() == [1, 2, 3] and back["mixed"].tolist()[1:] == ["3", "x"]
    assert len(pd.read_csv(paths[1])) == 3
