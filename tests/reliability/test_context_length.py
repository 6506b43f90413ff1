"""The model's context length is enforced at arrival (issue 15 item 7, issue 12): a request whose
prompt + output exceeds it is rejected and counted, as a server rejects it, never served."""

from __future__ import annotations

import math

import numpy as np

from llmsched.experiments.cli import main
from llmsched.sim.config import ClusterSpec, InstanceSpec, RunConfig
from llmsched.sim.hardware import model
from llmsched.sim.run import run, simulate
from tests.sim.helpers import LinearCost, fast_equals_step, workload


def _cluster(**kw) -> ClusterSpec:
    return ClusterSpec(instances=(InstanceSpec(kv_capacity_tokens=1 << 20, **kw),))


def test_catalogue_context_lengths():
    # max_position_embeddings of the models' config.json (vidur/derived/model_configs.csv for the
    # Llama-2 and CodeLlama rows)
    assert model("llama-2-7b").context_tokens == 4096
    assert model("llama-2-70b").context_tokens == 4096
    assert model("codellama-34b").context_tokens == 16384


def test_request_over_the_context_is_rejected_and_counted():
    # Llama-2-7B, 4096 tokens of context. Requests (prompt, output):
    #   (5000, 10): 5010 > 4096 -> rejected (the example)
    #   (4000, 96): 4096 = 4096 -> served (fits exactly)
    #   (4000, 97): 4097 > 4096 -> rejected
    #   (100, 10): served
    w = workload([0.0, 0.1, 0.2, 0.3], [5000, 4000, 4000, 100], [10, 96, 97, 10])
    fast, _ = fast_equals_step(w, _cluster(model="llama-2-7b"), LinearCost())
    r = fast.requests
    assert r["rejected"].tolist() == [True, False, True, False]
    assert math.isnan(r["finish_s"].iloc[0]) and math.isnan(r["finish_s"].iloc[2])
    assert np.isfinite(r["finish_s"].iloc[[1, 3]]).all()
    assert fast.summary["num_rejected"] == 2 and fast.summary["num_rejected_context"] == 2
    assert int(r["generated_tokens"].iloc[0]) == 0  # never served a token


def test_override_and_kv_rejections_are_told_apart():
    # context override 200: (150, 60) = 210 > 200 -> context rejection;
    # KV capacity 128 tokens: (100, 40) = 140 > 128 -> KV rejection, not a context one
    w = workload([0.0, 0.1, 0.2], [150, 100, 50], [60, 40, 10])
    spec = InstanceSpec(context_tokens=200, kv_capacity_tokens=128)
    fast, _ = fast_equals_step(w, ClusterSpec(instances=(spec,)), LinearCost())
    assert fast.requests["rejected"].tolist() == [True, True, False]
    assert fast.summary["num_rejected"] == 2 and fast.summary["num_rejected_context"] == 1


def test_a_model_outside_the_catalogue_has_no_limit():
    w = workload([0.0], [9000], [10])
    res = simulate(w, _cluster(model="my-own-model"), cost_models=lambda s: LinearCost())
    assert not res.requests["rejected"].any()


def test_cli_reports_the_rejections(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,client_id,input_tokens,output_tokens\n0,0,5000,10\n0.5,0,100,10\n")
    assert main(["simulate", "--workload", str(trace), "--model", "llama-2-7b", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 / 2" in out and "1 longer than the model's context length" in out


def test_config_field_round_trips():
    cfg = RunConfig.from_dict({"workload": {"source": "poisson", "num_requests": 5},
                               "cluster": {"instances": [{"context_tokens": 64}]}})
    res = run(cfg)
    assert res.summary["config"]["cluster"]["instances"][0]["context_tokens"] == 64
