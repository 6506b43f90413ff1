"""Reproduction registry, runner and CLI: --list, running tiny registered reproductions into a
temp dir (tables, figures, comparisons, meta), failures that do not stop the others, and the report."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from llmsched.experiments import cli, registry, style
from llmsched.experiments.registry import Comparison, ReproContext, ReproOutput, reproduction
from llmsched.experiments.reproduce import direction_met, judge, repro_status

TINY, BROKEN = "zz-test-tiny", "zz-test-broken"


def _tiny(ctx: ReproContext) -> ReproOutput:
    """A throwaway reproduction used by the tests."""
    xs = [1.0, 2.0, 3.0]
    ys = [x * x + ctx.seed for x in xs]
    fig, ax = style.figure()
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("load (req/s)")
    figs = style.save(fig, ctx.out_dir, "tiny")
    return ReproOutput(
        tables={"curve": pd.DataFrame({"x": xs, "y": ys, "quick": ctx.quick})},
        figures=figs,
        comparisons=[
            Comparison("y at x=3", 9.0, ys[-1], relation="within", tolerance=0.05),
            Comparison("slope sign", 1.0, ys[-1] - ys[0], relation="direction"),
            Comparison("label", "n/a", "text", relation="info"),
        ],
        notes="tiny notes",
    )


def _broken(ctx: ReproContext) -> ReproOutput:
    raise RuntimeError("deliberate failure\nsecond line")


@pytest.fixture
def registered():
    reproduction(name=TINY, paper="Test et al. 2099", target="Fig. 0", quick_minutes=0.01)(_tiny)
    reproduction(name=BROKEN, paper="Test et al. 2099", target="Table 0", quick_minutes=0.01)(_broken)
    yield
    registry.unregister(TINY)
    registry.unregister(BROKEN)


def test_registry_rejects_a_second_function_under_the_same_name(registered):
    entries = registry.all_reproductions()
    assert entries[TINY].paper == "Test et al. 2099" and entries[TINY].target == "Fig. 0"
    assert entries[TINY].description.startswith("A throwaway")
    with pytest.raises(ValueError, match="registered twice"):
        reproduction(name=TINY, paper="p", target="t")(_broken)


def test_list(registered, capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert TINY in out and "Test et al. 2099" in out and "Fig. 0" in out


def test_run_tiny_writes_results_and_report(registered, tmp_path, capsys):
    out, report = tmp_path / "results", tmp_path / "docs" / "reproductions.md"
    rc = cli.main(["reproduce", TINY, "--quick", "--seed", "3", "--out", str(out), "--report", str(report), "-q"])
    assert rc == 0, capsys.readouterr().err
    d = out / TINY
    for name in ("curve.parquet", "curve.csv", "tiny.png", "tiny.pdf", "comparisons.parquet",
                 "comparisons.csv", "meta.json"):
        assert (d / name).is_file(), name
    curve = pd.read_parquet(d / "curve.parquet")
    assert curve["y"].tolist() == [4.0, 7.0, 12.0]  # x^2 + seed 3
    meta = json.loads((d / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["seed"] == 3 and meta["quick"] is True and meta["mode"] == "quick"
    assert meta["paper"] == "Test et al. 2099" and meta["figures"] == ["tiny.png", "tiny.pdf"]
    assert meta["wall_s"] >= 0 and "commit" in meta and meta["agree"] == 1 and meta["disagree"] == 1
    comp = pd.read_csv(d / "comparisons.csv")
    # y(3) = 12 vs paper 9: ratio 12/9, outside 5 % -> disagrees; slope 8 > 0 like the paper -> agrees
    assert math.isclose(comp.loc[0, "ratio"], 12 / 9) and not comp.loc[0, "agrees"]
    assert bool(comp.loc[1, "agrees"]) and pd.isna(comp.loc[2, "agrees"])
    text = report.read_text()
    assert f"## {TINY}" in text and "figures/reproductions/zz-test-tiny/tiny.png" in text
    assert (report.parent / "figures" / "reproductions" / TINY / "tiny.png").is_file()
    assert "| y at x=3 | 9 | 12 |" in text and "**no**" in text and "tiny notes" in text
    assert f"llmsched reproduce {TINY} --quick --seed 3 --out {out}" in text
    assert meta["command"] == f"llmsched reproduce {TINY} --quick --seed 3 --out {out}"


def test_a_failure_does_not_stop_the_others(registered, tmp_path, capsys):
    out, report = tmp_path / "results", tmp_path / "r.md"
    rc = cli.main(["reproduce", BROKEN, TINY, "--quick", "--out", str(out), "--report", str(report), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and BROKEN in err
    meta = json.loads((out / BROKEN / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "RuntimeError: deliberate failure"
    assert "deliberate failure" in (out / BROKEN / "error.txt").read_text()
    assert json.loads((out / TINY / "meta.json").read_text())["status"] == "ok"
    text = report.read_text()
    assert "**Failed:**" in text and f"## {TINY}" in text
    # the report alone can be rebuilt from the results directory
    report.unlink()
    assert cli.main(["report", str(out), "--output", str(report)]) == 0 and report.is_file()


def test_bad_input_is_exit_2(registered, tmp_path, capsys):
    assert cli.main(["reproduce", "no-such-repro", "--out", str(tmp_path)]) == 2
    assert cli.main(["reproduce", "--out", str(tmp_path)]) == 2
    assert cli.main(["report", str(tmp_path / "absent")]) == 2
    assert cli.main(["report", str(tmp_path)]) == 2  # exists but holds no results
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)


@pytest.mark.parametrize(
    ("comp", "ratio", "agrees"),
    [
        (Comparison("m", 2.0, 2.1, relation="within", tolerance=0.1), 1.05, True),
        (Comparison("m", 2.0, 2.3, relation="ratio", tolerance=0.1), 1.15, False),
        (Comparison("m", 2.0, 2.3, relation="ratio"), 1.15, None),  # no tolerance: undecided
        (Comparison("m", -1.0, -5.0, relation="direction"), None, True),
        (Comparison("m", -1.0, 5.0, relation="direction"), None, False),
        (Comparison("m", 0.0, 5.0, relation="direction"), None, None),
        (Comparison("m", 2.0, 9.0, relation="within", tolerance=0.1, agrees=True), 4.5, True),
        (Comparison("m", "2.6x", "2.1x", relation="info"), None, None),
        (Comparison("m", "> 1", 1.5, relation="direction"), None, True),
        (Comparison("m", "> 1", 0.5, relation="direction"), None, False),
        (Comparison("m", ">= 0", 0.0, relation="direction"), None, True),
        (Comparison("m", "< 0.5x", 0.7, relation="direction"), None, False),
        (Comparison("m", "≤ 2", 2.0, relation="direction"), None, True),
        (Comparison("m", "up to 7x", 2.0, relation="direction"), None, None),  # not a bound: undecided
    ],
)
def test_judge(comp, ratio, agrees):
    r, a = judge(comp)
    assert (r is None) == (ratio is None) and (r is None or math.isclose(r, ratio))
    assert a == agrees


def test_rerun_starts_afresh_unless_resume(registered, tmp_path, capsys):
    out = tmp_path / "results"
    args = ["reproduce", TINY, "--quick", "--out", str(out), "--no-report", "-q"]
    assert cli.main(args) == 0
    (out / TINY / "stale.txt").write_text("from an older run")
    assert cli.main([*args, "--resume"]) == 0
    assert (out / TINY / "stale.txt").exists()
    assert cli.main(args) == 0
    assert not (out / TINY / "stale.txt").exists() and (out / TINY / "meta.json").is_file()
    # a directory the runner did not create is never cleared
    (out / BROKEN).mkdir()
    (out / BROKEN / "mine.txt").write_text("user data")
    assert cli.main(["reproduce", BROKEN, "--out", str(out), "--no-report", "-q"]) == 1
    assert (out / BROKEN / "mine.txt").read_text() == "user data"


def test_a_module_that_fails_to_import_does_not_hide_the_others(registered, monkeypatch, tmp_path, capsys, request):
    import importlib

    real_import = importlib.import_module
    boom = "llmsched.experiments.reproductions.zz_broken_module"

    class _Mod:
        name = "zz_broken_module"

    from llmsched.sim import registry as core

    real_iter = core.pkgutil.iter_modules
    monkeypatch.setattr(core.pkgutil, "iter_modules", lambda path: [*real_iter(path), _Mod()])

    def fake_import(name, *a, **kw):
        if name == boom:
            raise ImportError("simulated missing dependency")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(core.importlib, "import_module", fake_import)
    registry.REPRODUCTIONS.reload()
    request.addfinalizer(registry.REPRODUCTIONS.reload)  # the next lookup imports the real modules again
    assert boom in registry.import_errors()
    assert TINY in registry.all_reproductions()  # the others are still registered
    assert cli.main(["reproduce", "--list"]) == 0
    captured = capsys.readouterr()
    assert TINY in captured.out and "zz_broken_module failed to import" in captured.err


def _crashes(ctx: ReproContext) -> ReproOutput:
    os._exit(3)  # a reproduction that takes its process down with it


def test_parallel_jobs(registered, tmp_path, capsys):
    out = tmp_path / "results"
    rc = cli.main(["reproduce", TINY, BROKEN, "--quick", "--jobs", "2", "--out", str(out),
                   "--report", str(tmp_path / "r.md"), "-q"])
    assert rc == 1
    assert json.loads((out / TINY / "meta.json").read_text())["status"] == "ok"
    assert json.loads((out / BROKEN / "meta.json").read_text())["error"] == "RuntimeError: deliberate failure"
    assert (out / TINY / "tiny.png").is_file() and "## zz-test-broken" in (tmp_path / "r.md").read_text()


@pytest.mark.slow
def test_a_reproduction_that_kills_its_process(registered, tmp_path):
    crash = "zz-test-crash"
    reproduction(name=crash, paper="Test et al. 2099", target="Fig. -1", quick_minutes=0.01)(_crashes)
    try:
        out = tmp_path / "results"
        rc = cli.main(["reproduce", crash, TINY, "--quick", "--jobs", "2", "--out", str(out), "--no-report", "-q"])
        assert rc == 1
        meta = json.loads((out / crash / "meta.json").read_text())
        assert meta["status"] == "failed" and meta["error"].startswith("worker process died")
        assert (out / TINY / "meta.json").is_file()  # ok, or failed with the broken pool
    finally:
        registry.unregister(crash)


def test_reproduce_never_writes_the_tracked_report_unless_named(registered, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs" / "reproductions.md"
    docs.parent.mkdir()
    docs.write_text("tracked report\n")
    out = tmp_path / "results"
    assert cli.main(["reproduce", TINY, "--quick", "--out", str(out), "-q"]) == 0
    assert docs.read_text() == "tracked report\n"  # the README main command leaves tracked files alone
    assert (out / "reproductions.md").is_file()
    assert cli.main(["reproduce", TINY, "--quick", "--out", str(out), "-q", "--report", str(docs)]) == 0
    assert docs.read_text().startswith("# Reproductions")


def _heads(*rows):
    """A comparisons frame from (headline, agrees, direction_met) triples."""
    return pd.DataFrame([{"headline": h, "agrees": a, "direction_met": d} for h, a, d in rows])


@pytest.mark.parametrize("rows, status", [
    ([(True, True, None), (False, False, None)], "reproduced"),  # a non-headline miss does not count
    ([(True, True, None), (True, False, True)], "direction only"),
    ([(True, False, True), (True, None, True)], "direction only"),  # undecided magnitude, right way
    ([(True, True, None), (True, False, False)], "not reproduced"),
    ([(True, False, None)], "not reproduced"),  # a miss without a direction bound
    ([(False, True, None)], "no headline"),
])
def test_repro_status_is_judged_from_the_headline_comparisons(rows, status):
    assert repro_status(_heads(*rows)) == status


def test_direction_met_reads_the_bound():
    assert direction_met(Comparison("m", 7.18, 1.3, direction="> 1")) is True
    assert direction_met(Comparison("m", 7.18, 0.57, direction="> 1")) is False
    assert direction_met(Comparison("m", 7.18, 0.57)) is None
