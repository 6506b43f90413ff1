"""Dask equals local: the same sweep on a real `distributed` LocalCluster (loopback, 2 worker
processes) gives exactly the summary table of the in-process joblib run."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from llmsched.experiments import sweep
from llmsched.experiments.sweep_testing import synthetic_sweep_toml

pytestmark = pytest.mark.dask

REAL_SWEEP = """
[base.workload]
source = "sharegpt"
num_requests = 30
[base.cluster]
instances = [{model = "llama-2-7b", gpu = "a100-80gb"}]
[grid]
"cluster.instances.0.batching" = ["sarathi", "vllm"]
"workload.rate" = [1.0, 3.0]
"""


def test_dask_cluster_equals_local(tmp_path):
    distributed = pytest.importorskip("distributed")
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5, 1.0, 1.5, 2.5), seeds=(0, 1, 2)))
    spec = sweep.load_spec(toml)
    local = sweep.run_sweep(spec, tmp_path / "local", jobs=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = sweep.run_sweep(spec, tmp_path / "dask", dask_address=cluster.scheduler_address,
                                 progress=False, dask_window=5)  # 24 points through 5 slots
        pids = set(pd.read_parquet(tmp_path / "dask" / "timings.parquet")["pid"])
        with distributed.Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        # the same on real (tiny) simulations through the default point function (sim.run.run)
        real_toml = tmp_path / "real.toml"
        real_toml.write_text(REAL_SWEEP)
        real_spec = sweep.load_spec(real_toml)
        real_remote = sweep.run_sweep(real_spec, tmp_path / "real-dask", dask_address=cluster.scheduler_address,
                                      progress=False)
    real_local = sweep.run_sweep(real_spec, tmp_path / "real-local", progress=False)
    assert real_local.ok and real_remote.ok, (real_local.failed, real_remote.failed)
    assert len(real_local.summary) == 4 and "ttft_s.p50" in real_local.summary
    pd.testing.assert_frame_equal(real_local.summary, real_remote.summary, check_exact=True)
    assert local.ok and remote.ok and remote.backend.startswith("dask(")
    assert len(local.summary) == 24
    pd.testing.assert_frame_equal(local.summary, remote.summary, check_exact=True)
    # the files on disk are identical too (Parquet read back, CSV byte for byte)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / "summary.parquet"),
                                  pd.read_parquet(tmp_path / "dask" / "summary.parquet"), check_exact=True)
    assert (tmp_path / "local" / "summary.csv").read_bytes() == (tmp_path / "dask" / "summary.csv").read_bytes()
    # the points really ran on the cluster's worker processes, not in this one
    assert pids <= worker_pids and len(pids) >= 1
    # negative control: the comparison notices a difference in the last bit of one metric
    tampered = remote.summary.copy()
    tampered.loc[3, "e2e_s.noise"] = float(tampered.loc[3, "e2e_s.noise"]) * (1 + 2**-50)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(local.summary, tampered, check_exact=True)


def test_dask_local_flag_equals_in_process(tmp_path):
    pytest.importorskip("distributed")
    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5, 1.0), seeds=(0, 1)))
    spec = sweep.load_spec(toml)
    a = sweep.run_sweep(spec, tmp_path / "local", jobs=1, progress=False)
    b = sweep.run_sweep(spec, tmp_path / "dask", dask_local=2, progress=False)
    assert b.backend == "dask-local(2)" and a.ok and b.ok
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)


def test_a_point_that_kills_its_worker_is_a_failed_point_not_a_crash(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import dask

    toml = tmp_path / "s.toml"
    toml.write_text(synthetic_sweep_toml(rates=(0.5,), seeds=(0,), policies=("vllm",)))
    spec = sweep.load_spec(toml)
    # Worker processes inherit this: every point calls os._exit; the scheduler gives up at once.
    monkeypatch.setenv("LLMSCHED_SWEEP_TEST_CRASH_AFTER", "0")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster:
        out = sweep.run_sweep(spec, tmp_path / "dask", dask_address=cluster.scheduler_address, progress=False)
    assert not out.ok and len(out.failed) == 1 and out.ran == 0
    assert "KilledWorker" in next(iter(out.failed.values()))
    monkeypatch.delenv("LLMSCHED_SWEEP_TEST_CRASH_AFTER")
    again = sweep.run_sweep(spec, tmp_path / "dask", progress=False)  # retried locally, now fine
    assert again.ok and again.ran == 1
