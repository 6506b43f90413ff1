"""Generic CSV/JSONL reader: round trips (hypothesis) and one-line errors naming file, row and column."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.errors import InputError
from llmsched.sim.workload import generic
from llmsched.sim.workload.core import Workload

COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "client", "priority", "ttft_slo_s", "tbt_slo_s",
           "hash_offsets", "hash_values")


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 30))
    k = draw(st.integers(1, 4))
    gaps = draw(st.lists(st.floats(0, 1e4, allow_nan=False, allow_infinity=False), min_size=n, max_size=n))
    client = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    client[:k] = np.arange(min(k, n))  # every client appears, so weights round-trip
    k = int(client.max()) + 1
    prompt = np.array(draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n)))
    block = draw(st.integers(1, 64))
    with_hashes = draw(st.booleans())
    lens = [draw(st.integers(0, -(-int(p) // block))) if with_hashes else 0 for p in prompt]
    values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=sum(lens), max_size=sum(lens)))
    slo = st.one_of(st.just(math.inf), st.floats(1e-3, 1e3, allow_nan=False))
    return Workload(
        arrival_s=np.cumsum(gaps), client=client, prompt_tokens=prompt,
        output_tokens=draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n)),
        hash_offsets=np.concatenate([[0], np.cumsum(lens)]), hash_values=np.array(values, dtype=np.int64),
        priority=draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)),
        ttft_slo_s=draw(st.lists(slo, min_size=n, max_size=n)), tbt_slo_s=draw(st.lists(slo, min_size=n, max_size=n)),
        client_weight=draw(st.lists(st.floats(0.01, 100), min_size=k, max_size=k)), hash_block_tokens=block,
    )


@settings(max_examples=60)
@given(workloads(), st.sampled_from([".csv", ".jsonl"]))
def test_round_trip(tmp_path_factory, w, suffix):
    path = tmp_path_factory.mktemp("rt") / f"trace{suffix}"
    generic.write_file(w, path)
    r = generic.read_file(path, hash_block_tokens=w.hash_block_tokens)
    for col in COLUMNS:
        assert np.array_equal(getattr(r, col), getattr(w, col)), col
    assert np.array_equal(r.client_weight, w.client_weight)
    assert r.hash_block_tokens == w.hash_block_tokens


def test_text_client_labels_and_optional_columns(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,client_id,input_tokens,output_tokens,hash_ids,weight,ttft_slo_s\n"
                 '0.5,bob,20,5,"[1, 2]",2,\n'
                 "1.0,alice,17,3,,1,0.25\n")
    w = generic.read_file(p)
    assert w.client_names == ("alice", "bob") and w.client.tolist() == [1, 0]
    assert w.client_weight.tolist() == [1.0, 2.0]
    assert w.hashes(0).tolist() == [1, 2] and len(w.hashes(1)) == 0
    assert w.ttft_slo_s[0] == math.inf and w.ttft_slo_s[1] == 0.25


def _write(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEADER = "arrival_s,client_id,input_tokens,output_tokens\n"


@pytest.mark.parametrize("text, field, words", [
    ("arrival_s,client_id,input_tokens\n0,0,5\n", "output_tokens", "missing column"),
    (HEADER + "0,0,5,5\n1,0,abc,5\n", "input_tokens", "row 2 (line 3): not a number"),
    (HEADER + "0,0,5,5\n1,0,5,-3\n", "output_tokens", "row 2 (line 3): negative"),
    (HEADER + "0,0,0,5\n", "input_tokens", "row 1 (line 2): below 1"),
    (HEADER + "0,0,5.5,5\n", "input_tokens", "not an integer"),
    (HEADER + "2,0,5,5\n1,0,5,5\n", "arrival_s", "row 2 (line 3)"),
    (HEADER + "-1,0,5,5\n", "arrival_s", "negative"),
    (HEADER + "0,-2,5,5\n", "client_id", "negative id"),
    ("arrival_s,client_id,input_tokens,output_tokens,hash_ids\n0,0,20,5,\"[1,2,3]\"\n", "hash_ids", "3 blocks"),
    ("arrival_s,client_id,input_tokens,output_tokens,hash_ids\n0,0,20,5,[1\n", "hash_ids", "not a JSON list"),
    ("arrival_s,client_id,input_tokens,output_tokens,weight\n0,0,5,5,1\n1,0,5,5,2\n", "weight", "different weights"),
    ("arrival_s,client_id,input_tokens,output_tokens,ttft_slo_s\n0,0,5,5,0\n", "ttft_slo_s", "must be > 0"),
])
def test_bad_csv_names_file_row_and_column(tmp_path, text, field, words):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        generic.read_file(p)
    msg = exc.value.one_line()
    assert str(p) in msg and field in msg and words in msg
    assert "\n" not in msg


def test_unsorted_is_rejected_not_sorted(tmp_path):
    p = _write(tmp_path, HEADER + "0,0,5,5\n3,0,5,5\n2,0,5,5\n")
    with pytest.raises(InputError, match=r"sort the file by arrival_s"):
        generic.read_file(p)


def test_bad_jsonl(tmp_path):
    p = _write(tmp_path, '{"arrival_s": 0, "client_id": 0, "input_tokens": 5, "output_tokens": 5}\n{oops\n',
               "bad.jsonl")
    with pytest.raises(InputError, match=r"line 2.*not valid JSON"):
        generic.read_file(p)
    q = _write(tmp_path, json.dumps({"arrival_s": 0, "client_id": 0, "input_tokens": 5, "output_tokens": 5,
                                     "hash_ids": "nope"}) + "\n", "bad2.jsonl")
    with pytest.raises(InputError, match=r"hash_ids.*row 1"):
        generic.read_file(q)
    r = _write(tmp_path, json.dumps({"arrival_s": 0, "client_id": 0, "input_tokens": 5}) + "\n", "bad3.jsonl")
    with pytest.raises(InputError, match=r"bad3.jsonl: output_tokens: missing column"):
        generic.read_file(r)


def test_nonexistent_and_wrong_type(tmp_path):
    with pytest.raises(InputError, match="not found"):
        generic.read_file(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unknown trace file type"):
        generic.read_file(_write(tmp_path, "x", "trace.txt"))
    with pytest.raises(InputError, match="empty"):
        generic.read_file(_write(tmp_path, "", "empty.csv"))
