"""A stateful test of the engine (hypothesis.stateful): arrivals, router ticks, stop-and-copy and
live migrations, restarts, instance failures and recoveries interleave in any order, and after
every step the engine's books must balance:

- blocks: each instance's private KV blocks equal the blocks its running requests hold, and
  used blocks never exceed the pool; a request that runs nowhere holds none;
- counters: the per-(instance, client) waiting/running counters equal the queues they count, and
  the per-client service counters equal the tokens the request table says were served (output:
  one per generated token; input: the prompt of every charged request, once);
- every request is in at most one queue, finishes at most once, and keeps its finish time.

The simulation runs in a worker thread. The driver below is its router: at each tick it hands
control to the state machine and blocks until told to go on, so the machine inspects and acts on
a paused engine (the two threads never run at once). Negative control: an engine whose migration
forgets one counter update fails the machine (`test_machine_catches_a_lost_counter_update`).
"""

from __future__ import annotations

import math
import os
import queue
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from llmsched.policies import registry
from llmsched.sim.instance import Instance
from llmsched.sim.registry import POLICIES
from llmsched.sim.run import simulate
from llmsched.sim.state import DONE, REJECTED
from llmsched.testing import clusters, cost_models, workloads

DRIVER = "stateful-test-driver"
ACTIONS: dict[str, int] = {}  # action -> times the engine accepted it (the machine must exercise each)


def _count(action: str, accepted: bool = True) -> None:
    if accepted:
        ACTIONS[action] = ACTIONS.get(action, 0) + 1
BATCHING = ["sarathi", "orca", "vllm", "fastertransformer"]
HANDOFF_TIMEOUT_S = 60.0


class Driver:
    """The router: new requests go round-robin over live instances; each tick pauses the engine."""

    current: Driver | None = None

    def __init__(self, tick_interval_s: float) -> None:
        self.tick_interval_s = tick_interval_s
        self._next = 0
        self.to_engine: queue.Queue = queue.Queue()
        self.to_test: queue.Queue = queue.Queue()
        self.free = False  # run to the end without pausing
        self.view = None
        self.engine = None

    def route(self, rid: int, view) -> int:
        self.engine = view._engine
        down = view._engine.down
        live = [j for j in range(view.n_instances) if view.pool[j] not in down]
        j = live[self._next % len(live)]
        self._next += 1
        return j

    def tick(self, view) -> None:
        if self.free:
            return
        self.view = view
        self.engine = view._engine
        self.to_test.put(("paused", None))
        if self.to_engine.get(timeout=HANDOFF_TIMEOUT_S) == "free":
            self.free = True


def _driver_factory() -> Driver:
    assert Driver.current is not None
    return Driver.current


class EngineMachine(RuleBasedStateMachine):
    @initialize(data=st.data(), tick_s=st.sampled_from([0.05, 0.3, 1.0, 2.5]))
    def start(self, data, tick_s: float) -> None:
        w = data.draw(workloads(max_requests=16, tasks=False), label="workload")
        cluster = data.draw(clusters(w, BATCHING, [DRIVER], allow_pd=False, min_instances=2), label="cluster")
        cost = data.draw(cost_models(), label="cost")
        self.workload = w
        self.driver = Driver.current = Driver(tick_s)
        self.finish_s: dict[int, float] = {}
        self.last_now = -math.inf
        self.result = None
        self.error: BaseException | None = None
        self.finished = False

        def body() -> None:
            try:
                self.result = simulate(w, cluster, cost_models=lambda spec: cost)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
                self.error = exc
            finally:
                self.driver.to_test.put(("finished", None))

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        self._wait()

    # ------------------------------------------------------------------ handoff
    def _wait(self) -> None:
        kind, _ = self.driver.to_test.get(timeout=HANDOFF_TIMEOUT_S)
        if kind == "finished":
            self.thread.join()
            self.finished = True
            if self.error is not None:
                raise self.error

    @property
    def engine(self):
        return self.driver.engine

    def _live(self) -> list[int]:
        return [j for j in range(len(self.engine.instances)) if j not in self.engine.down]

    def paused(self) -> bool:
        return not self.finished and self.driver.view is not None

    # ------------------------------------------------------------------ rules
    @rule(ticks=st.integers(1, 12))
    def advance(self, ticks: int) -> None:
        """Let the engine run through `ticks` router ticks (a no-op once the run has ended)."""
        for _ in range(ticks):
            if self.finished:
                return
            _count("tick")
            self.driver.to_engine.put("go")
            self._wait()
            if self.finished:
                return

    def _decoding(self) -> list[tuple[int, int]]:
        out = []
        for inst in self.engine.instances:
            self.engine.sync(inst)
            out.extend((rid, inst.index) for rid in inst.decoding)
        return sorted(out)

    def _on_instance(self) -> list[tuple[int, int]]:
        out = []
        for inst in self.engine.instances:
            self.engine.sync(inst)
            out.extend((rid, inst.index) for rid in (*inst.waiting, *inst.ready, *inst.prefilling,
                                                     *inst.decoding))
        return sorted(out)

    @precondition(lambda self: self.paused())
    @rule(data=st.data(), live=st.booleans())
    def migrate(self, data, live: bool) -> None:
        """Move a decoding request elsewhere (stop-and-copy, or Llumnix-style multi-stage)."""
        cands = self._decoding()
        dsts = self._live()
        if not cands or len(dsts) < 2:
            return
        rid, src = data.draw(st.sampled_from(cands), label="request")
        dst = data.draw(st.sampled_from([j for j in dsts if j != src] or dsts), label="destination")
        view = self.driver.view
        if live:
            _count("migrate_live", view.migrate_live(rid, view.pool.index(dst)))
        else:
            _count("migrate", view.migrate(rid, view.pool.index(dst)))

    @precondition(lambda self: self.paused())
    @rule(data=st.data())
    def restart(self, data) -> None:
        """Drop a request's KV and recompute it on another (or the same) live instance."""
        cands = self._on_instance()
        if not cands:
            return
        rid, _ = data.draw(st.sampled_from(cands), label="request")
        dst = data.draw(st.sampled_from(self._live()), label="destination")
        _count("restart", self.driver.view.restart(rid, dst))

    @precondition(lambda self: self.paused() and len(self._live()) >= 2)
    @rule(data=st.data())
    def fail(self, data) -> None:
        """An instance dies: it takes no new work and everything on it restarts elsewhere."""
        j = data.draw(st.sampled_from(self._live()), label="instance")
        view = self.driver.view
        view.set_down(j, True)
        inst = self.engine.instances[j]
        self.engine.sync(inst)
        others = [x for x in self._live() if x != j]
        _count("fail")
        for k, rid in enumerate((*inst.waiting, *inst.ready, *inst.prefilling, *inst.decoding)):
            _count("restart_after_failure", view.restart(rid, others[k % len(others)]))

    @precondition(lambda self: self.paused() and len(self.engine.down) > 0)
    @rule(data=st.data())
    def recover(self, data) -> None:
        j = data.draw(st.sampled_from(sorted(self.engine.down)), label="instance")
        self.driver.view.set_down(j, False)
        _count("recover")

    @precondition(lambda self: not self.finished)
    @rule()
    def run_to_end(self) -> None:
        self.driver.to_engine.put("free")
        self._wait()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def books_balance(self) -> None:
        """Checked on the paused engine after every step, and once more on the finished one."""
        engine = self.engine
        if engine is None:  # nothing has arrived yet
            return
        reqs = engine.reqs
        if not self.finished:
            now = self.driver.view.now if self.driver.view is not None else engine.now
            assert now >= self.last_now, "clock went backwards"
            self.last_now = now
        placed: dict[int, int] = {}
        running_anywhere = np.zeros(reqs.n, dtype=bool)
        for inst in engine.instances:
            engine.sync(inst)
            running = (*inst.prefilling, *inst.decoding)
            for rid in (*inst.waiting, *inst.ready, *inst.swapped, *running):
                assert rid not in placed, f"request {rid} is on instances {placed[rid]} and {inst.index}"
                placed[rid] = inst.index
                assert int(reqs.instance[rid]) == inst.index
            # block conservation: running requests' blocks, blocks a migration reserved here (still
            # reserved, or already holding a landed request's KV while it waits for memory)
            held = int(sum(int(reqs.held_blocks[rid]) for rid in (*running, *inst.ready)))
            held += sum(inst.reserved.values())
            assert inst.pool.private_blocks == held, (inst.index, inst.pool.private_blocks, held)
            assert 0 <= inst.pool.used_blocks <= inst.pool.total_blocks
            running_anywhere[list(running)] = True
            # queue counters
            n_clients = reqs.waiting_count.shape[1]
            waiting = np.bincount(reqs.client[list(inst.waiting)], minlength=n_clients)
            run_c = np.bincount(reqs.client[list(running)], minlength=n_clients)
            assert np.array_equal(reqs.waiting_count[inst.index], waiting), (inst.index, "waiting")
            assert np.array_equal(reqs.running_count[inst.index], run_c), (inst.index, "running")
        assert (reqs.held_blocks[~running_anywhere] == 0).all(), "a request that runs nowhere holds KV"
        self._service_matches_requests()
        self._finish_once()

    def _service_matches_requests(self) -> None:
        reqs = self.engine.reqs
        n_clients = reqs.output_service.shape[1]
        out = np.bincount(reqs.client, weights=reqs.generated, minlength=n_clients)
        inp = np.bincount(reqs.client, weights=np.where(reqs.charged, reqs.prompt, 0), minlength=n_clients)
        assert np.array_equal(reqs.output_service.sum(axis=0), out.astype(np.int64)), "output service"
        assert np.array_equal(reqs.input_service.sum(axis=0), inp.astype(np.int64)), "input service"
        assert (reqs.generated <= reqs.output).all()

    def _finish_once(self) -> None:
        reqs = self.engine.reqs
        done = np.flatnonzero(reqs.state == DONE)
        assert np.isnan(reqs.finish_s[reqs.state != DONE]).all(), "finish time on an unfinished request"
        for rid in self.finish_s:
            assert reqs.state[rid] == DONE, f"request {rid} finished, then came back"
        for rid in done:
            t = float(reqs.finish_s[rid])
            assert self.finish_s.setdefault(int(rid), t) == t, f"request {rid} finished twice"
            assert reqs.generated[rid] == reqs.output[rid]

    def teardown(self) -> None:
        if not hasattr(self, "thread"):
            return
        if not self.finished:
            self.driver.to_engine.put("free")
            self._wait()
        res = self.result
        req = res.requests
        # the end: every request finished exactly once with all its tokens, or was rejected
        assert ((req["finish_s"].notna()) ^ req["rejected"]).all()
        done = req[req["finish_s"].notna()]
        assert (done["generated_tokens"] == done["output_tokens"]).all()
        for rid, t in self.finish_s.items():
            assert req.loc[rid, "finish_s"] == t
        final = res.service.groupby(["instance", "client"]).last() if len(res.service) else None
        if final is not None:
            assert final["output_tokens"].sum() == req["generated_tokens"].sum()
        if self.engine is not None:
            self.books_balance()  # the books of the finished engine: empty queues, zero counters
            reqs = self.engine.reqs
            assert set(np.unique(reqs.state)) <= {DONE, REJECTED}
            assert not reqs.waiting_count.any() and not reqs.running_count.any()
            assert all(inst.pool.private_blocks == 0 for inst in self.engine.instances)


@pytest.fixture
def driver_router():
    registry.load_all()
    registry.register(registry.ROUTING, DRIVER)(_driver_factory)
    try:
        yield
    finally:
        routers = POLICIES[registry.ROUTING]
        routers._entries.pop(DRIVER, None)
        routers._docs.pop(DRIVER, None)
        Driver.current = None


MACHINE_SETTINGS = settings(max_examples=int(os.environ.get("LLMSCHED_STATEFUL_EXAMPLES", "200")), stateful_step_count=30, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


CHILD_ENV = "LLMSCHED_STATEFUL_CHILD"


def test_engine_books_balance_under_interleaved_actions(driver_router):
    """Runs in a fresh interpreter: in a worker that earlier ran a reproduction, the machine's
    examples differed (migrate_live accepted 0-2 times instead of >= 3), so some global state
    leaks between tests (not yet found; see the issue notes); a child process keeps this test's
    draws and its action counts independent of test order."""
    if os.environ.get(CHILD_ENV) != "1":
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, "-m", "pytest", f"{__file__}::{test_engine_books_balance_under_interleaved_actions.__name__}",
                               "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly"],
                              env={**os.environ, CHILD_ENV: "1"}, capture_output=True, text=True, cwd=os.path.dirname(__file__))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return
    ACTIONS.clear()
    run_state_machine_as_test(EngineMachine, settings=MACHINE_SETTINGS)
    # the machine did interleave every kind of action with the engine (else the test says little)
    for action in ("tick", "migrate", "migrate_live", "restart", "fail", "recover", "restart_after_failure"):
        assert ACTIONS.get(action, 0) >= 3, (action, ACTIONS)
    print("accepted actions:", dict(sorted(ACTIONS.items())))


def test_machine_catches_a_lost_counter_update(driver_router, monkeypatch):
    """Negative control: a migration that forgets to decrement the source's running counter."""
    original = Instance.remove_for_migration

    def leaky(self, rid):
        kv = original(self, rid)
        self.reqs.running_count[self.index, int(self.reqs.client[rid])] += 1  # the lost update
        return kv

    monkeypatch.setattr(Instance, "remove_for_migration", leaky)
    no_shrink = settings(MACHINE_SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                         print_blob=False)
    with pytest.raises(AssertionError, match="running"):
        run_state_machine_as_test(EngineMachine, settings=no_shrink)
