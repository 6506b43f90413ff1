"""Plots from the summary table (`--plot`), and grid dimensions over whole cluster layouts."""

from __future__ import annotations

from llmsched.experiments import cli, sweep
from llmsched.experiments.sweep_testing import synthetic_sweep_toml


def test_plot_from_summary(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(synthetic_sweep_toml())
    out = tmp_path / "o"
    rc = cli.main(["sweep", str(f), "--out", str(out), "-q", "--jobs", "1",
                   "--plot", "workload.rate:e2e_s.mean:cluster.instances.0.batching", "--plot", "seed:rho"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["e2e_s.mean_vs_workload.rate_by_cluster.instances.0.batching.pdf",
                     "e2e_s.mean_vs_workload.rate_by_cluster.instances.0.batching.png",
                     "rho_vs_seed.pdf", "rho_vs_seed.png"]
    capsys.readouterr()
    assert cli.main(["sweep", str(f), "--out", str(out), "-q", "--plot", "workload.rate:nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'nope'" in err[0]
    assert cli.main(["sweep", str(f), "--out", str(out), "-q", "--plot", "justone"]) == 2


def test_grid_over_cluster_layouts_applies_keys_in_file_order(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        '[grid]\n'
        '"cluster.instances" = [[{model = "llama-2-7b", count = 2}], '
        '[{model = "llama-2-13b", gpu = "a100-80gb"}, {model = "llama-2-7b"}]]\n'
        '"cluster.instances.0.batching" = ["vllm", "sarathi"]\n'
        '"cluster.router" = ["round-robin", "least-outstanding-tokens"]\n'
    )
    points = sweep.expand(sweep.load_spec(f))
    assert len(points) == 8
    layouts = [[(i["model"], i["count"], i["batching"]) for i in p.config["cluster"]["instances"]] for p in points]
    assert layouts[0] == [("llama-2-7b", 2, "vllm")]
    # the layout is set first, then instance 0's batching; instance 1 keeps the default (sarathi)
    assert layouts[4] == [("llama-2-13b", 1, "vllm"), ("llama-2-7b", 1, "sarathi")]
    assert layouts[6] == [("llama-2-13b", 1, "sarathi"), ("llama-2-7b", 1, "sarathi")]
    assert [p.config["cluster"]["router"] for p in points[:2]] == ["round-robin", "least-outstanding-tokens"]
