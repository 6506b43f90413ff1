"""perllm-edge-cloud reproduction plumbing: capacity-scaled loads, the power-model and edge-class
ablations change what they should (energy; the edge device) and nothing else, and transmission
energy is charged only to cloud-bound bytes."""

from __future__ import annotations

import pytest

from llmsched.experiments.reproductions import perllm


def test_capacity_grows_with_faster_edges_and_shrinks_with_the_model():
    cpu = perllm.capacity_rps("llama-2-7b", 200, 0)
    assert cpu > 0
    assert perllm.capacity_rps("llama-2-7b", 200, 0, "l4") > cpu  # an L4 edge serves more than a CPU
    assert perllm.capacity_rps("llama-2-13b", 200, 0) < cpu


def test_flat_power_ablation_changes_energy_only():
    main = perllm.one_run("cloud-only", "llama-2-7b", 0.5, 0.5, 40, 0)
    flat = perllm.one_run("cloud-only", "llama-2-7b", 0.5, 0.5, 40, 0, "flat-power")
    assert main["requests_per_s"] == flat["requests_per_s"]
    assert main["energy_active_j"] < flat["energy_active_j"]  # light load: batches far below the ridge
    assert main["energy_idle_j"] == pytest.approx(flat["energy_idle_j"])


def test_transmission_energy_is_charged_to_cloud_bound_bytes_only():
    edge = perllm.one_run("edge-only", "llama-2-7b", 0.5, 0.05, 10, 0)
    cloud = perllm.one_run("cloud-only", "llama-2-7b", 0.5, 0.05, 10, 0)
    assert edge["energy_transmission_j"] == 0.0
    assert cloud["energy_transmission_j"] > 0.0
    l4 = perllm.one_run("edge-only", "llama-2-7b", 0.5, 0.05, 10, 0, "l4-edge")
    assert l4["energy_j_per_request"] < edge["energy_j_per_request"]  # the L4 edge, not the CPU
