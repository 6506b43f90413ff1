"""No policy keeps per-request state after the request has left (issue 13, item 4).

For every registered batching policy and router, a small workload runs to completion (every request
finished or rejected); then the policy objects the run built are walked (attributes, dicts, lists,
sets, deques, heaps, nested policy objects, numpy object arrays; bounded depth; never into the
engine, an instance, a view or other simulator objects they hold) and every container is measured
at its attribute path: how many entries, and which ints it holds as keys or elements.

Request ids are ints 0..n-1, and so are client ids, instance ids and counters, so one run cannot
tell them apart. The test runs the same kind of workload with n and with 2n requests (same seed,
the 2n workload's first half is the n workload). A container leaks per-request state when, at the
end of the 2n run,
  - it holds ids in [n, 2n): only request ids reach that range (3 clients, at most 4 instances), and
  - it is bigger than at the end of the n run (per-client or per-instance state does not grow with
    the number of requests; a bounded cache of recent requests does not either).
A radix tree (`llmsched.sim.radix`) is measured by its dead nodes instead: its node ids are ints
that are not request ids, and they are never reused, so a tree that only prunes keeps per-request
slots; growing dead nodes count as a leak too. The failure names the policy, the attribute path,
both sizes and a few leaked request ids. State kept on purpose, or bounded, is named in `ALLOWED`
with its reason; a policy whose run here leaves requests unserved is named in `DOES_NOT_DRAIN`.

`test_walker_catches_a_leaking_policy` is the negative control: an unregistered policy that keeps a
dict rid -> prompt tokens is caught, with its path and witnesses.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from llmsched.policies import registry
from llmsched.sim import run as sim_run
from llmsched.sim.config import ClusterSpec, InstanceSpec, freeze_params
from llmsched.sim.policy_api import InstanceView, Plan, PlanBuilder
from llmsched.sim.radix import RadixTree
from llmsched.sim.workload.core import Workload
from llmsched.testing import LinearCost

N_REQUESTS = 200
N_CLIENTS = 3
MAX_DEPTH = 10
#: a path leaks when it holds at least GROWTH x its size after n requests (+ SLACK) after 2n:
#: per-request state doubles; what is left at the end of a drained run by bounded caches or by
#: hooks that run lazily (at the next arrival or plan) does not grow with n
GROWTH, SLACK = 1.5, 16
#: a container without ints (or a tree's dead nodes) must grow about as the requests do to count
PROPORTIONAL = 1.8
HASH_BASE = 10**12  # prefix block hashes far above every request id
#: objects of these modules are policy state (their trees, spot and re-parallelization controllers)
#: and are walked into; everything else that is not a container (the engine, instances, views,
#: request tables, cost models, specs, generators) is not
FOLLOW_MODULES = ("llmsched.policies.", "llmsched.sim.radix", "llmsched.sim.prefix_index", "llmsched.sim.spot",
                  "llmsched.sim.reparallel", __name__)

DEAD_NODES = "<dead nodes>"
#: policies whose run leaves requests unserved at the end here; their leaks are looked for among the
#: requests that did leave. Found by this test (stalls, not leaks: not this test's subject)
DOES_NOT_DRAIN: dict[str, str] = {}  # RPM and FasterTransformer were here; both fixed (their stalls)
#: state kept per request for the whole run on purpose: (policy, attribute path) -> why
ALLOWED: dict[tuple[str, str], str] = {
    ("slai", "._lst"): "bounded cache: last schedulable times, pruned to the decoding requests once it holds "
                       "more than 4 x decoding + 64 entries (so at most that many per instance)",
    ("preble", ".window"): "the same window, one record per request (see .window[*])",
    ("preble", ".window[*]"): "Preble's load window H (180 s by default): the records of the requests routed in "
                              "the last window_s, its load estimate's input; bounded by arrival rate x window_s",
}

#: routers whose defaults leave their per-request paths (migration, eviction, preemption notices)
#: unexercised get these parameters too (as in tests/routing/test_router_fast_forward.py)
ROUTER_PARAMS: dict[str, list[dict[str, Any]]] = {
    "llumnix": [{"migrate_out_threshold": 30.0, "migration_interval_s": 0.03}],
    "d2lpm": [{"quantum": 64.0, "eviction_delay_s": 0.3}],
    "sglang-router": [{"max_tree_size": 32, "eviction_interval_s": 0.1, "balance_abs_threshold": 1}],
    "preble": [{"warmup_per_instance": 0, "window_s": 1.0}],
    "spot": [{"inner": "llumnix", "notices": [[0, 0.1], [1, 0.4]], "grace_s": 0.1, "migrate": True,
              "tick_interval_s": 0.05}],
    # SpotServe needs a pool sized to its re-parallelization plan (one instance per replica id)
    "spotserve": [{"system": "spotserve", "trace": "Bs", "time_scale": 0.005, "load_Bps": 2e12,
                   "link_Bps": 1e12, "tick_interval_s": 0.05}],
}
#: routers that cannot run with their defaults (the parameters above replace them)
ROUTERS_WITHOUT_DEFAULTS = {"spotserve"}


# ------------------------------------------------------------------------------ the walker
@dataclass
class Measure:
    """One attribute path of a policy: entries summed over every container found there, and the
    ints those containers hold as keys or elements (also inside tuple elements: heap entries)."""

    size: int = 0
    ints: set[int] = field(default_factory=set)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _ints_of(x: Any) -> Iterator[int]:
    if _is_int(x):
        yield int(x)
    elif isinstance(x, tuple):
        for y in x:
            if _is_int(y):
                yield int(y)


def _follow(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith(FOLLOW_MODULES) or mod == __name__


def _contents(obj: Any) -> tuple[list[Any], list[Any]] | None:
    """(keys or elements, the objects to walk into) of a container; None for anything else."""
    if isinstance(obj, dict):
        return list(obj.keys()), list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        items = list(obj)
        return items, items
    if isinstance(obj, np.ndarray) and obj.dtype == object:  # numeric arrays are numbers, not objects
        items = list(obj.ravel())
        return items, items
    return None


def _attributes(obj: Any) -> dict[str, Any]:
    """An object's attributes, `__slots__` along its class's MRO included."""
    attrs = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
    return attrs


def walk(root: Any, max_depth: int = MAX_DEPTH) -> dict[str, Measure]:
    """Every container reachable from `root` through policy objects and containers, by path
    (`.attr`, `[*]` for any element or value), measured. A radix tree is measured by its dead
    nodes: its node ids are not request ids, and they are never reused (`llmsched.sim.radix`)."""
    out: dict[str, Measure] = {}
    seen: set[int] = set()

    def visit(obj: Any, path: str, depth: int) -> None:
        if depth > max_depth or id(obj) in seen or isinstance(obj, (str, bytes, float, int, np.generic)):
            return
        if isinstance(obj, RadixTree):
            seen.add(id(obj))
            out.setdefault(f"{path}{DEAD_NODES}", Measure()).size += len(obj._parent) - obj.nodes_alive
            return
        got = _contents(obj)
        if got is None:
            if obj is not None and _follow(obj):
                seen.add(id(obj))
                for name, value in _attributes(obj).items():
                    visit(value, f"{path}.{name}", depth + 1)
            return
        seen.add(id(obj))
        keys, elements = got
        if not isinstance(obj, tuple):  # a tuple is a record, counted inside its container
            m = out.setdefault(path, Measure())
            m.size += len(keys)
            for k in keys:
                m.ints.update(_ints_of(k))
        sub = path if isinstance(obj, tuple) else f"{path}[*]"
        for e in elements:
            visit(e, sub, depth + 1)

    visit(root, "", 0)
    return out


@dataclass(frozen=True)
class Leak:
    policy: str
    path: str
    size_n: int
    size_2n: int
    witnesses: tuple[int, ...]

    def __str__(self) -> str:
        if self.path.endswith(DEAD_NODES):
            what = "dead tree nodes of departed requests' prefix paths (node ids are never reused)"
        elif not self.witnesses:
            what = "no request ids in it, but it grows with the number of requests"
        else:
            what = f"request ids that left: {list(self.witnesses)}"
        return (f"{self.policy}: {self.path or '(the policy itself)'} holds {self.size_2n} entries after "
                f"{2 * N_REQUESTS} requests ({self.size_n} after {N_REQUESTS}); {what}")


def leaks(policy: str, n_run: dict[str, Measure], big_run: dict[str, Measure], n: int,
          departed: set[int]) -> list[Leak]:
    """Paths that hold ids of departed requests in [n, 2n) and grew from the n run to the 2n run;
    a radix tree's dead nodes, and containers without ints (times, records), count as departed
    requests' state when they grow in proportion to the requests (PROPORTIONAL)."""
    found = []
    for path, m in sorted(big_run.items()):
        late = sorted(i for i in m.ints if n <= i < 2 * n and i in departed)
        small = n_run.get(path, Measure()).size
        if (policy, path) in ALLOWED:
            continue
        if path.endswith(DEAD_NODES) or not m.ints:  # no request ids to show: the witness is the size
            if m.size >= PROPORTIONAL * small + SLACK:
                found.append(Leak(policy, path, small, m.size, ()))
        elif late and m.size >= GROWTH * small + SLACK:
            found.append(Leak(policy, path, small, m.size, tuple(late[:5])))
    return found


# ------------------------------------------------------------------------------ the runs
def workload(n: int, seed: int = 7) -> Workload:
    """n requests of 3 clients at about twice what 2 instances serve (queues, preemption), prompts
    16-150 tokens with shared 16-token prefix blocks, outputs 1-40 tokens, half with TTFT/TBT
    SLOs. Drawn for 2n requests and cut, so the n workload is the first half of the 2n one."""
    rng = np.random.default_rng(seed)
    m = 2 * N_REQUESTS
    arrivals = np.cumsum(rng.exponential(0.04, m))
    prompts = rng.integers(16, 151, m)
    outputs = rng.integers(1, 41, m)
    clients = rng.integers(0, N_CLIENTS, m)
    offsets, values = [0], []
    for p in prompts:
        acc = 0
        for pos in range(int(rng.integers(0, p // 16 + 1))):
            acc = acc * 5 + int(rng.integers(0, 3)) + 1
            values.append(HASH_BASE + acc * 100 + pos)
        offsets.append(len(values))
    slo = rng.random(m) < 0.5
    w = Workload(arrival_s=arrivals, client=clients, prompt_tokens=prompts, output_tokens=outputs,
                 hash_offsets=offsets, hash_values=values, hash_block_tokens=16,
                 ttft_slo_s=np.where(slo, 2.0, np.inf), tbt_slo_s=np.where(slo, 0.1, np.inf),
                 client_weight=np.array([1.0, 2.0, 1.0]))
    return w.head(n)


def cluster(batching: str, router: str, router_params: dict[str, Any] | None = None) -> ClusterSpec:
    count = 2
    if router == "spotserve":
        from llmsched.policies.routing.spot import SpotServe

        count = SpotServe(**(router_params or {})).n_replicas
    spec = InstanceSpec(batching=batching, count=count, block_size=16, kv_capacity_tokens=1600,
                        token_budget=128, max_batch_requests=8)
    return ClusterSpec(instances=(spec,), router=router, router_params=freeze_params(router_params or {}),
                       kv_link_bandwidth_Bps=1e8)


def run_and_capture(w: Workload, spec: ClusterSpec, family: str, name: str,
                    monkeypatch: pytest.MonkeyPatch, substitute: Any = None,
                    departed: set[int] | None = None) -> list[Any]:
    """Simulate; return the policy objects of `family` named `name` that the run built
    (`substitute()` builds them instead of the registered factory: the negative control) and add
    the ids of the requests that left (finished or rejected) to `departed`."""
    departed = set() if departed is None else departed
    built: list[tuple[str, str, Any]] = []
    make = sim_run.make_policy

    def recording(fam: str, nm: str, *args: Any, **kwargs: Any) -> Any:
        obj = make(fam, nm, *args, **kwargs)
        if substitute is not None and (fam, nm) == (family, name):
            obj = substitute()
        built.append((fam, nm, obj))
        return obj

    with monkeypatch.context() as m:
        m.setattr(sim_run, "make_policy", recording)
        res = sim_run.simulate(w, spec, cost_models=lambda s: LinearCost())
    req = res.requests
    left = (req["finish_s"].notna() | req["rejected"]).to_numpy()
    if name not in DOES_NOT_DRAIN:
        assert left.all(), f"{name}: the run did not drain: requests {np.flatnonzero(~left)[:5].tolist()} never left"
    departed.update(np.flatnonzero(left).tolist())
    return [obj for fam, nm, obj in built if fam == family and nm == name]


def measure(objs: list[Any]) -> dict[str, Measure]:
    """The walks of several objects of one policy (one per instance), summed path by path."""
    merged: dict[str, Measure] = {}
    for obj in objs:
        for path, m in walk(obj).items():
            tot = merged.setdefault(path, Measure())
            tot.size += m.size
            tot.ints |= m.ints
    return merged


def find_leaks(family: str, name: str, spec: ClusterSpec, monkeypatch: pytest.MonkeyPatch,
               substitute: Any = None) -> list[Leak]:
    """Run n and 2n requests through `spec`; the leaks of the `family` policy `name`."""
    small = measure(run_and_capture(workload(N_REQUESTS), spec, family, name, monkeypatch, substitute))
    departed: set[int] = set()
    big = measure(run_and_capture(workload(2 * N_REQUESTS), spec, family, name, monkeypatch, substitute, departed))
    return leaks(name, small, big, N_REQUESTS, departed)


def _cases() -> list[Any]:
    registry.load_all()
    cases = [pytest.param(registry.BATCHING, name, cluster(name, "round-robin"), id=f"batching-{name}")
             for name in registry.names(registry.BATCHING)]
    for name in registry.names(registry.ROUTING):
        if name not in ROUTERS_WITHOUT_DEFAULTS:
            cases.append(pytest.param(registry.ROUTING, name, cluster("sarathi", name), id=f"routing-{name}"))
        for k, params in enumerate(ROUTER_PARAMS.get(name, [])):
            cases.append(pytest.param(registry.ROUTING, name, cluster("sarathi", name, params),
                                      id=f"routing-{name}-params{k}"))
    return cases


@pytest.mark.parametrize(("family", "name", "spec"), _cases())
def test_no_request_state_outlives_its_request(family: str, name: str, spec: ClusterSpec,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_leaks(family, name, spec, monkeypatch)
    assert not found, "per-request state kept after the request left:\n" + "\n".join(map(str, found))


# ------------------------------------------------------------------------------ negative control
class _LeakyFCFS:
    """FCFS that remembers every admitted request's prompt length and admission time and never
    forgets (the leaks), next to per-client counts (state that does not grow with the number of requests) and a bounded heap."""

    def __init__(self) -> None:
        self.prompt_of: dict[int, int] = {}  # rid -> prompt tokens: the leak
        self.admitted_at: list[float] = []  # every admission's time: a leak without request ids
        self.admitted_per_client: dict[int, int] = {}
        self.recent: list[tuple[int, int]] = []  # (prompt, rid), the 4 longest: bounded

    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        self.prompt_of[rid] = view.prompt_tokens(rid)
        self.admitted_at.append(view.now)
        c = view.client(rid)
        self.admitted_per_client[c] = self.admitted_per_client.get(c, 0) + 1
        heapq.heappush(self.recent, (view.prompt_tokens(rid), rid))
        if len(self.recent) > 4:
            heapq.heappop(self.recent)

    def plan(self, view: InstanceView) -> Plan:
        b = PlanBuilder(view)
        b.decode_all()
        for rid in view.prefilling:
            b.chunk(rid)
        for rid in view.waiting:
            if not b.admit(rid):
                break
        return b.plan()


class _LeakyRoundRobin:
    """Round-robin that remembers where it sent every request, in a list of (rid, instance) pairs
    inside a per-instance dict (the leak, one level down), and counts per instance (no leak)."""

    def __init__(self) -> None:
        self.sent: dict[int, list[tuple[int, int]]] = {}
        self.count: dict[int, int] = {}
        self._next = 0

    def route(self, rid: int, view: Any) -> int:
        j = self._next % view.n_instances
        self._next += 1
        self.sent.setdefault(j, []).append((rid, j))
        self.count[j] = self.count.get(j, 0) + 1
        return j


def test_walker_catches_a_leaking_router(monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_leaks(registry.ROUTING, "round-robin", cluster("sarathi", "round-robin"), monkeypatch,
                       substitute=_LeakyRoundRobin)
    assert [f.path for f in found] == [".sent[*]"], found
    assert found[0].size_2n == 2 * N_REQUESTS and found[0].size_n == N_REQUESTS
    assert all(N_REQUESTS <= w < 2 * N_REQUESTS for w in found[0].witnesses) and found[0].witnesses


def test_walker_catches_a_leaking_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leaky policy (not registered) runs in place of FCFS: its dict is caught, with witnesses,
    and its list of times; its per-client counts and its bounded heap are not."""
    found = find_leaks(registry.BATCHING, "fcfs", cluster("fcfs", "round-robin"), monkeypatch,
                       substitute=_LeakyFCFS)
    assert [f.path for f in found] == [".admitted_at", ".prompt_of"], found
    assert not found[0].witnesses and "grows with the number of requests" in str(found[0])
    leak = found[1]
    assert leak.size_2n > leak.size_n > 0
    assert all(N_REQUESTS <= w < 2 * N_REQUESTS for w in leak.witnesses) and leak.witnesses
    assert "prompt_of" in str(leak) and str(leak.witnesses[0]) in str(leak)
