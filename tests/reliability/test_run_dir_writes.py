"""A run directory is written as a whole (issue 15 items 11, 12 and the kill -9 acceptance test).

- `simulate --out` refuses an existing non-empty directory unless `--force`, and validates `--out`
  before it simulates;
- a save replaces the old run completely (no stray files left beside the new ones);
- files and the directory honour the umask (not mkstemp's 0600);
- kill -9 at 20 random moments while saving leaves the complete old run or the complete new one.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmsched.experiments.cli import main
from llmsched.sim import atomic
from llmsched.sim.errors import InputError
from llmsched.sim.results import FILES, load_run


def _run(out: Path, *extra: str, n: int = 30, seed: int = 0) -> int:
    return main(["simulate", "--workload", "poisson", "--rate", "4", "--num-requests", str(n),
                 "--seed", str(seed), "--no-progress", "--out", str(out), *extra])


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_existing_run_is_refused_without_force_and_replaced_with_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out, seed=0) == 0
    old = _digest(out)
    (out / "stray.txt").write_text("from an earlier tool\n")
    capsys.readouterr()
    assert _run(out, seed=1) == 2
    err = capsys.readouterr().err
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert {k: v for k, v in _digest(out).items() if k != "stray.txt"} == old
    assert _run(out, "--force", seed=1) == 0
    new = _digest(out)
    assert set(new) == set(FILES), "the stray file must not survive a replacement"
    assert new["requests.parquet"] != old["requests.parquet"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temp directory left behind"


def test_out_that_is_a_file_fails_before_the_simulation(tmp_path, monkeypatch, capsys):
    target = tmp_path / "file.txt"
    target.write_text("keep\n")
    import llmsched.sim.run as sim_run

    def boom(*a, **k):  # the simulation must not even start
        raise AssertionError("simulated before validating --out")

    monkeypatch.setattr(sim_run, "run", boom)
    assert _run(target) == 2
    assert target.read_text() == "keep\n"
    assert "not a directory" in capsys.readouterr().err


def test_save_api_refuses_a_non_empty_directory(tmp_path):
    out = tmp_path / "run"
    assert _run(out) == 0
    res = load_run(out)
    with pytest.raises(InputError):
        res.save(out)
    assert res.save(out, force=True) == out


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        out = tmp_path / "run"
        assert _run(out) == 0
        f = atomic.write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    for p in [out / name for name in FILES] + [f]:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, (p, oct(p.stat().st_mode))
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask


def test_concurrent_saves_never_mix(tmp_path):
    """Two processes saving different runs into one --out with --force: the directory ends up as
    exactly one of them (the lock serialises the writes; the rename makes each one whole)."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    assert _run(a, seed=0) == 0 and _run(b, seed=1) == 0
    script = textwrap.dedent("""
        import sys
        from llmsched.sim.results import load_run
        res = load_run(sys.argv[1])
        for _ in range(5):
            res.save(sys.argv[2], force=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(src), str(out)]) for src in (a, b)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    final = _digest(out)
    assert final in (_digest(a), _digest(b))


_CHILD = textwrap.dedent("""
    import sys
    from llmsched.sim.results import load_run
    res = load_run(sys.argv[1])
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    res.save(sys.argv[2], force=True)
    sys.stdout.write("saved\\n"); sys.stdout.flush()
""")


def _save_in_child(src: Path, out: Path, kill_after_s: float | None) -> bool:
    """Save `src` over `out` in a child; kill -9 it `kill_after_s` after the go signal. True if the
    child finished its save before the kill."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(src), str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("go\n")
    proc.stdin.flush()
    if kill_after_s is None:
        proc.wait(timeout=60)
        return True
    time.sleep(kill_after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return proc.returncode == 0


def _kill_test(tmp_path: Path, kills: int, n: int) -> None:
    old_src, new_src, out = tmp_path / "old", tmp_path / "new", tmp_path / "out"
    assert _run(old_src, n=n, seed=0) == 0
    assert _run(new_src, n=n, seed=1) == 0
    old, new = _digest(old_src), _digest(new_src)
    assert old != new
    # How long one save takes in a child (after its imports), to aim the kills inside it.
    t0 = time.perf_counter()
    _save_in_child(new_src, tmp_path / "calib", None)
    span = time.perf_counter() - t0
    rng = random.Random(15)
    outcomes = {"old": 0, "new": 0}
    for _ in range(kills):
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(old_src, out)  # the complete old run
        _save_in_child(new_src, out, rng.uniform(0.0, span))
        got = _digest(out)
        assert got in (old, new), f"mixed run directory after kill -9: {sorted(got)}"
        outcomes["old" if got == old else "new"] += 1
    # the next save cleans up whatever a killed writer left beside the directory
    _save_in_child(new_src, out, None)
    assert _digest(out) == new
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.") and p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    assert outcomes["old"] + outcomes["new"] == kills


@pytest.mark.slow
def test_kill_minus_9_while_saving_leaves_old_or_new(tmp_path):
    """The acceptance test: 20 kills at random offsets inside the save (about a minute)."""
    _kill_test(tmp_path, 20, 1500)


def test_kill_minus_9_while_saving_quick(tmp_path):
    """The same with 3 kills, in the default suite."""
    _kill_test(tmp_path, 3, 200)
