"""Readers on the real bundled files: counts and statistics match data/README.md (which restates
the staged traces' README; numbers there were computed independently of this code)."""

import math
import time

import numpy as np
import pytest

from llmsched.sim.errors import InputError
from llmsched.sim.workload import readers
from llmsched.sim.workload.readers import DATA_DIR, TRACES_DIR


def test_data_lives_in_the_repo():
    assert DATA_DIR.name == "data" and (DATA_DIR.parent / "pyproject.toml").is_file()
    for rel in readers.TRACE_FILES.values():
        assert (TRACES_DIR / rel).is_file(), rel


@pytest.mark.parametrize(
    "name, rows, span_s, rate, in_mean, out_mean",
    [
        # data/README.md table: rows, span, mean rate (rows-1)/span, input / output mean
        ("azure-conv-2023", 19366, 3502, 5.53, 1154.7, 211.1),
        ("azure-code-2023", 8819, 3436, 2.57, 2047.8, 27.9),
        ("mooncake-conversation", 12031, 3537, 3.40, 12035.1, 342.6),
        ("mooncake-synthetic", 3993, 1022, 3.91, 15325.5, 149.1),
        ("lmsys-arena-vtc", 1500, 600, 2.50, 136.3, 256.2),
    ],
)
def test_request_traces_match_readme(name, rows, span_s, rate, in_mean, out_mean):
    w = readers.read_bundled(name)
    assert w.n == rows
    assert w.arrival_s[0] == 0.0
    assert w.duration_s == pytest.approx(span_s, abs=0.6)
    assert (w.n - 1) / w.duration_s == pytest.approx(rate, abs=0.005)
    assert w.prompt_tokens.mean() == pytest.approx(in_mean, abs=0.05)
    assert w.output_tokens.mean() == pytest.approx(out_mean, abs=0.05)
    assert np.all(np.diff(w.arrival_s) >= 0)


def test_azure_timestamps_keep_seven_digits():
    # first two rows of the conv file: 18:15:46.6805900 and 18:15:50.9951690 -> gap 4.314579 s
    w = readers.read_bundled("azure-conv-2023")
    assert w.arrival_s[1] == pytest.approx(4.3145790, abs=1e-9)
    assert (w.prompt_tokens[0], w.output_tokens[0]) == (374, 44)


def test_azure_conv_loads_fast_and_is_cached():
    readers.read_azure.cache_clear()
    t0 = time.perf_counter()
    w1 = readers.read_bundled("azure-conv-2023")
    cold = time.perf_counter() - t0
    assert cold < 1.0, f"cold load took {cold:.2f} s"
    assert readers.read_bundled("azure-conv-2023") is w1


@pytest.mark.parametrize("name, refs, distinct", [("mooncake-conversation", 288500, 182790),
                                                  ("mooncake-synthetic", 121877, 43924)])
def test_mooncake_blocks(name, refs, distinct):
    w = readers.read_bundled(name)
    assert w.hash_block_tokens == 512
    blocks = np.diff(w.hash_offsets)
    assert np.array_equal(blocks, -(-w.prompt_tokens // 512))  # ceil(input / 512), last block partial
    assert len(w.hash_values) == refs
    assert len(np.unique(w.hash_values)) == distinct  # scrambling keeps equal ids equal, distinct distinct


def test_mooncake_conversation_first_block_shared_by_all():
    w = readers.read_bundled("mooncake-conversation")
    first = w.hash_values[w.hash_offsets[:-1]]
    assert len(np.unique(first)) == 1  # data/README.md: block 0 starts all 12,031 requests


def test_mooncake_files_have_disjoint_ids():
    a = readers.read_bundled("mooncake-conversation").hash_values
    b = readers.read_bundled("mooncake-synthetic").hash_values
    assert len(np.intersect1d(a, b)) == 0  # raw ids overlap (both start at 0); salted ids must not


def test_lmsys_clients_match_readme():
    w = readers.read_bundled("lmsys-arena-vtc")
    assert w.n_clients == 27
    counts = sorted(np.bincount(w.client, minlength=27).tolist(), reverse=True)
    assert counts == [296, 262, 199, 120, 67, 66, 56, 46, 44, 43, 40, 36, 31, 26, 25, 23, 22, 22,
                      19, 19, 12, 11, 7, 3, 2, 2, 1]
    assert all(n.startswith("dummy-lora") for n in w.client_names)


@pytest.mark.parametrize("name, rows, in_mean, out_mean, in_max, out_max",
                         [("sharegpt", 30731, 2340.0, 438.7, 8141, 1024),
                          ("arxiv-summarization", 28257, 2588.1, 291.4, 4054, 4056)])
def test_length_files(name, rows, in_mean, out_mean, in_max, out_max):
    p = readers.trace_pairs(name)
    assert p.shape == (rows, 2)
    assert p[:, 0].mean() == pytest.approx(in_mean, abs=0.05)
    assert p[:, 1].mean() == pytest.approx(out_mean, abs=0.05)
    assert (p[:, 0].max(), p[:, 1].max()) == (in_max, out_max)
    assert not p.flags.writeable


def test_trace_span_is_finite_and_rates_positive():
    for name in ("azure-conv-2023", "azure-code-2023", "lmsys-arena-vtc"):
        w = readers.read_bundled(name)
        assert math.isfinite(w.duration_s) and w.duration_s > 0


def test_shipped_files_match_sha256sums():
    import hashlib

    lines = (TRACES_DIR / "SHA256SUMS").read_text().split("\n")
    entries = [line.split(maxsplit=1) for line in lines if line.strip()]
    assert len(entries) == 19
    for digest, rel in entries:
        assert hashlib.sha256((TRACES_DIR / rel).read_bytes()).hexdigest() == digest, rel


# -- the bundled readers reject bad copies with one line naming file and field ----------------------
def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, field", [
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,3\n", "GeneratedTokens"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,3,4\n", "TIMESTAMP"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,3,x\n", "GeneratedTokens"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:47.0,3,4\n2023-11-16 18:15:46.0,3,4\n",
     "TIMESTAMP"),
])
def test_azure_reader_rejects(tmp_path, text, field):
    p = _bad(tmp_path, "az.csv", text)
    with pytest.raises(InputError) as exc:
        readers.read_azure(p)
    assert exc.value.field == field and str(p) in exc.value.one_line()


@pytest.mark.parametrize("line, field", [
    ('{"timestamp": 0, "input_length": 600, "output_length": 5}', "hash_ids"),
    ('{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2, 3]}', "hash_ids"),
    ('{"timestamp": 0, "input_length": -1, "output_length": 5, "hash_ids": []}', "input_length"),
    ('{"timestamp": 0, "input_length": 6', "line 1"),
])
def test_mooncake_reader_rejects(tmp_path, line, field):
    p = _bad(tmp_path, "mc.jsonl", line + "\n")
    with pytest.raises(InputError) as exc:
        readers.read_mooncake(p)
    assert exc.value.field == field and str(p) in exc.value.one_line()


def test_lmsys_and_length_readers_reject(tmp_path):
    p = _bad(tmp_path, "vtc.csv", "arrival_s,client_id,input_tokens,output_tokens\n0,0,1,1\n")
    with pytest.raises(InputError, match="adapter_name"):
        readers.read_lmsys_vtc(p)
    q = _bad(tmp_path, "len.csv", "num_prefill_tokens,num_decode_tokens\n5,0\n")
    with pytest.raises(InputError, match=r"num_decode_tokens: row 1 \(line 2\): below 1"):
        readers.read_length_pairs(q)
    with pytest.raises(InputError, match="not found"):
        readers.read_azure(tmp_path / "missing.csv")
