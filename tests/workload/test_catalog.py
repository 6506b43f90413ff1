"""The catalogue contract: entries(), load(spec, seed) semantics for rate / duration / count,
parameters and their errors, determinism for every name, and the `llmsched workloads` command."""

import dataclasses
import json
import math

import numpy as np
import pytest

from llmsched.experiments.cli import main
from llmsched.sim.config import WorkloadSpec, freeze_params
from llmsched.sim.errors import InputError
from llmsched.sim.workload import catalog, generic

REQUIRED_NAMES = {
    "azure-conv-2023", "azure-code-2023", "mooncake-conversation", "mooncake-synthetic", "lmsys-arena-vtc",
    "sharegpt", "arxiv-summarization", "servegen-m-large", "servegen-m-mid", "servegen-m-small",
    "servegen-mm-image", "servegen-deepseek-r1", "poisson", "gamma", "uniform", "onoff", "ramp",
    "multi-client", "shared-system-prompt", "multi-turn", "tree-of-thought", "long-doc-qa",
}
GENERATORS = ["poisson", "multimodal", "gamma", "uniform", "onoff", "ramp", "multi-client", "shared-system-prompt",
              "multi-turn", "tree-of-thought", "long-doc-qa"]


def spec(source, rate=None, duration_s=None, num_requests=None, **params):
    return WorkloadSpec(source=source, rate=rate, duration_s=duration_s, num_requests=num_requests,
                        params=freeze_params(params))


def test_entries_contract():
    es = catalog.entries()
    assert {e.name for e in es} >= REQUIRED_NAMES
    assert all(e.kind in ("trace", "generator") for e in es)
    assert {e.name for e in es if e.kind == "generator"} == set(GENERATORS)
    e = es[0]
    assert [f.name for f in dataclasses.fields(e)] == ["name", "kind", "description", "source"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.name = "x"


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_every_name_loads_with_defaults_deterministically(name):
    s = spec(name, duration_s=300.0) if name not in ("mooncake-synthetic",) else spec(name)
    a, b = catalog.load(s, 3), catalog.load(s, 3)
    assert a.n > 50
    for col in ("arrival_s", "client", "prompt_tokens", "output_tokens", "hash_offsets", "hash_values"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    if name in GENERATORS or name.startswith("servegen") or name in ("sharegpt", "arxiv-summarization"):
        c = catalog.load(s, 4)
        assert not (np.array_equal(a.arrival_s, c.arrival_s) and np.array_equal(a.prompt_tokens, c.prompt_tokens))


def test_trace_rate_rescaling_duration_and_count():
    base = catalog.load(spec("azure-conv-2023"), 0)
    w = catalog.load(spec("azure-conv-2023", rate=20.0), 0)
    assert w.n == base.n and (w.n - 1) / w.duration_s == pytest.approx(20.0, rel=1e-12)
    assert np.array_equal(w.prompt_tokens, base.prompt_tokens)
    cut = catalog.load(spec("azure-conv-2023", rate=20.0, duration_s=60.0), 0)
    assert cut.arrival_s.max() < 60.0 and cut.n == int((w.arrival_s < 60.0).sum())
    head = catalog.load(spec("azure-conv-2023", num_requests=100), 0)
    assert head.n == 100 and np.array_equal(head.arrival_s, base.arrival_s[:100])
    # rescaling keeps the prefix blocks of Mooncake untouched
    m = catalog.load(spec("mooncake-synthetic", rate=1.0, num_requests=50), 0)
    assert m.hash_block_tokens == 512 and np.array_equal(np.diff(m.hash_offsets), -(-m.prompt_tokens // 512))


def test_generator_rate_duration_count():
    w = catalog.load(spec("poisson", rate=50.0, duration_s=200.0), 0)
    # N ~ Poisson(10,000), sd 100: allow 5 sd
    assert abs(w.n - 10000) < 500 and w.arrival_s.max() < 200.0
    assert catalog.load(spec("gamma", num_requests=1234, cv=3.0), 0).n == 1234
    for name in ("multi-turn", "tree-of-thought", "long-doc-qa", "shared-system-prompt", "multi-client"):
        assert catalog.load(spec(name, num_requests=77), 1).n == 77
        assert catalog.load(spec(name, duration_s=100.0), 1).arrival_s.max() < 100.0


def test_multi_client_rates_weights_and_lengths():
    w = catalog.load(spec("multi-client", duration_s=2000.0, rates=(1.0, 3.0), weights=(1, 4),
                          input_tokens=(32, 512), output_tokens=(512, 32)), 0)
    counts = np.bincount(w.client, minlength=2)
    # client shares follow the rates: share of client 1 = 0.75; binomial sd over ~8000 requests < 0.005
    assert counts[1] / counts.sum() == pytest.approx(0.75, abs=0.025)
    assert w.client_weight.tolist() == [1.0, 4.0]
    assert set(w.prompt_tokens[w.client == 0]) == {32} and set(w.output_tokens[w.client == 1]) == {32}
    total = catalog.load(spec("multi-client", rate=10.0, duration_s=1000.0, rates=(1.0, 3.0)), 0)
    assert abs(total.n - 10000) < 500  # spec.rate is the total rate
    n3 = catalog.load(spec("multi-client", clients=3, lengths=("fixed", "sharegpt", "uniform"),
                           input_tokens=(10, 20), output_tokens=(10, 20)), 0)
    assert n3.n_clients == 3 and set(n3.prompt_tokens[n3.client == 0]) == {10}
    assert n3.prompt_tokens[n3.client == 1].mean() > 1000  # ShareGPT prompts (mean 2,340)
    assert set(n3.prompt_tokens[n3.client == 2]) <= set(range(10, 21))


def test_length_options():
    sh = catalog.load(spec("poisson", lengths="sharegpt", num_requests=3000), 0)
    assert sh.prompt_tokens.mean() == pytest.approx(2340.0, rel=0.05)
    ln = catalog.load(spec("poisson", lengths="lognormal", input_tokens=500, output_tokens=100,
                           input_sigma=0.5, output_sigma=0.5, num_requests=20000), 0)
    # lognormal mean is exact before rounding: sd of the sample mean = 500 sqrt(e^0.25 - 1) / sqrt(20000) = 1.9
    assert abs(ln.prompt_tokens.mean() - 500) < 10
    un = catalog.load(spec("onoff", lengths="uniform", input_tokens=(5, 9), output_tokens=7), 0)
    assert set(un.prompt_tokens) == set(range(5, 10)) and set(un.output_tokens) == {7}


def test_length_file_path(tmp_path):
    w = catalog.load(spec("poisson", num_requests=50), 0)
    path = generic.write_file(w.with_columns(prompt_tokens=np.full(w.n, 77)), tmp_path / "mine.jsonl")
    got = catalog.load(spec("poisson", lengths=str(path), num_requests=30), 0)
    assert set(got.prompt_tokens) == {77}


def test_user_file_through_load(tmp_path):
    w = catalog.load(spec("multi-turn", num_requests=200), 0)
    path = generic.write_file(w, tmp_path / "mine.csv")
    r = catalog.load(WorkloadSpec(source=str(path)), 0)
    assert np.array_equal(r.hash_values, w.hash_values) and np.array_equal(r.arrival_s, w.arrival_s)
    r2 = catalog.load(WorkloadSpec(source=str(path), rate=1.0), 0)
    assert (r2.n - 1) / r2.duration_s == pytest.approx(1.0)
    with pytest.raises(InputError, match="not found"):
        catalog.load(WorkloadSpec(source=str(tmp_path / "missing.csv")), 0)


@pytest.mark.parametrize("s, field", [
    (spec("nonsense"), "source"),
    (spec("poisson", bogus=1), "params.bogus"),
    (spec("azure-conv-2023", cv=2.0), "params.cv"),
    (spec("gamma", cv="abc"), "params.cv"),
    (spec("poisson", lengths="nowhere"), "params.lengths"),
    (spec("poisson", lengths="uniform", input_tokens=(5, 1)), "params.input_tokens"),
    (spec("multi-client", rates=(1.0, -1.0)), "params.rates"),
    (spec("multi-client", rates=(1.0, 2.0), weights=(1, 2, 3)), "params.weights"),
    (spec("multi-turn", min_turns=0), "params.min_turns"),
    (spec("servegen-m-large", clients=(-1,)), "params.clients"),
    (spec("poisson", rate=-1.0), "rate"),
    (spec("poisson", num_requests=0), "num_requests"),
])
def test_bad_specs_raise_input_errors(s, field):
    with pytest.raises(InputError) as exc:
        catalog.load(s, 0)
    assert exc.value.field == field
    if field == "source":
        assert "azure-conv-2023" in exc.value.one_line() and "long-doc-qa" in exc.value.one_line()


def test_describe_matches_loaded_traces():
    d = catalog.describe("lmsys-arena-vtc")
    assert d["rows"] == 1500 and d["clients"] == 27 and d["span_s"] == pytest.approx(600.0)
    assert catalog.describe("poisson") == {}
    sg = catalog.describe("servegen-mm-image")
    assert sg["rate_rps"] == pytest.approx(9.47, abs=0.005) and sg["clients"] == 35  # data/README.md


def test_cli_lists_everything(capsys):
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED_NAMES:
        assert name in out
    assert "19,366" in out
    assert main(["workloads", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    conv = next(r for r in rows if r["name"] == "azure-conv-2023")
    assert conv["rows"] == 19366 and conv["rate_rps"] == pytest.approx(5.53, abs=0.005)
    assert main(["workloads", "--params", "gamma", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cv"] == 2.0
    assert main(["workloads", "--params", "nope"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    assert math.isfinite(conv["span_s"])


def test_command_line_style_list_params():
    w = catalog.load(spec("multi-client", rates="1,3", input_tokens="32,512", output_tokens="8,9",
                          duration_s=100.0), 0)
    assert w.n_clients == 2 and set(w.prompt_tokens[w.client == 1]) == {512}
    u = catalog.load(spec("poisson", lengths="uniform", input_tokens="5,9", num_requests=200), 0)
    assert set(u.prompt_tokens) <= set(range(5, 10))
