"""The policy interface the engine calls: `Plan`, the read-only views, the hooks and `PlanBuilder`.

A batching policy sees a read-only `InstanceView` and returns a `Plan` for the next iteration; a
router sees a `ClusterView` and returns an instance index. The engine owns all bookkeeping
(memory, accounting, progress); policies keep only their own decision state (e.g. VTC lift offsets).

Stability contract (what makes exact fast-forward possible): between two change points (arrival,
admission, prefill completion, completion, preemption, migration, admission-cadence tick) a policy
asked again must return the same plan, with each prefill chunk the same size, as long as that
request still has at least a full chunk left. A policy whose decisions depend on the clock sets
`Plan.replan_each_iteration = True`; one whose decision depends on a counter that moves every
iteration but crosses its threshold at an iteration the policy can compute sets
`Plan.replan_after_iterations` to it. The fast-forward-equals-step property test holds every
registered policy to this contract.

The Protocols declare what the registered policies use, no more: routers read a `ClusterView`
(with `InstanceStats` per instance) and act only through `ClusterActions` (their `tick` gets an
`ActingClusterView`); batching policies read an `InstanceView`. The type checker
(tests/contracts/test_typecheck.py) holds the policies to these declarations and the engine's
concrete views (`llmsched.sim.engine`, `llmsched.sim.instance`) to providing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from llmsched.sim.config import InstanceSpec
from llmsched.sim.cost.base import CostModel
from llmsched.sim.variants import ModelVariant


@dataclass(slots=True)
class Plan:
    """One iteration's decisions.

    admit:   waiting request ids to admit now, in order (the engine allocates their KV and charges
             their uncached prompt tokens at this moment)
    chunks:  prefill request id -> prompt tokens to compute this iteration (>= 1)
    decodes: decoding request ids that generate one token this iteration (None = all of them)
    replan_each_iteration: the plan depends on the clock; ask again every iteration
    replan_after_iterations: the plan stays right for at most this many iterations (>= 1), then
                ask again (a counter it depends on crosses a threshold there); None = until the
                next change point
    retry_at_s: for an empty plan (nothing to run), wake the instance again at this time even if
                nothing else happens (rate limiters that are not work-conserving need it)
    slice_tokens: generation slice (SCLS, arXiv 2406.13511): every request admitted by this plan
                generates at most this many tokens (its prefill's token included) and then leaves
                the instance with its KV dropped; the engine hands it back to the router, and its
                next slice recomputes prompt + generated tokens wherever it is placed. A request
                that finishes within its slice just finishes. None = no slice.
    variant: run this iteration with a model variant (`llmsched.sim.variants.ModelVariant`,
             SuperServe arXiv 2312.16733): the variant is the batch's cost model, switching the
             instance to it from another variant adds its actuation delay to the iteration, and
             every token the iteration produces is credited with its accuracy. None = the
             instance's own model and cost model.
    """

    admit: list[int] = field(default_factory=list)
    chunks: dict[int, int] = field(default_factory=dict)
    decodes: list[int] | None = None
    replan_each_iteration: bool = False
    retry_at_s: float | None = None
    slice_tokens: int | None = None
    variant: ModelVariant | None = None
    replan_after_iterations: int | None = None

    @property
    def empty(self) -> bool:
        return not self.chunks and not self.admit and self.decodes == []


@runtime_checkable
class InstanceView(Protocol):
    """Read-only view of one instance at the current decision point: what batching policies read."""

    now: float  # the decision time (the engine sets it; policies read it)

    @property
    def token_budget(self) -> int: ...
    @property
    def max_batch_requests(self) -> int: ...
    @property
    def admission_open(self) -> bool: ...  # the admission cadence allows new requests this iteration
    @property
    def waiting(self) -> Sequence[int]: ...  # request ids queued at this instance, in arrival order
    @property
    def prefilling(self) -> Sequence[int]: ...  # admitted, prompt not fully computed, in admission order
    @property
    def decoding(self) -> Sequence[int]: ...  # admitted and generating, in admission order
    @property
    def n_clients(self) -> int: ...  # clients of the workload (ids 0 .. n_clients - 1)

    def prompt_tokens(self, rid: int) -> int: ...
    def output_tokens(self, rid: int) -> int: ...
    def generated_tokens(self, rid: int) -> int: ...
    def remaining_prefill(self, rid: int) -> int: ...  # tokens to compute before the next token
    def client(self, rid: int) -> int: ...
    def arrival_s(self, rid: int) -> float: ...
    def tbt_slo_s(self, rid: int) -> float: ...
    def last_token_s(self, rid: int) -> float: ...  # time of the request's latest token (nan if none)
    def cached_prefix_tokens(self, rid: int) -> int: ...  # prefix-cache hit if admitted now
    def prefix_hashes(self, rid: int) -> np.ndarray: ...  # the request's prefix block hashes
    def cacheable_hashes(self, rid: int) -> np.ndarray: ...  # its full prompt blocks (what a cache matches)
    @property
    def hash_block_tokens(self) -> int: ...  # prompt tokens per prefix hash block
    def admissible(self, rids: Sequence[int]) -> bool: ...  # would KV fit for all of these?
    def client_weight(self, client: int) -> float: ...
    def input_service(self, client: int) -> int: ...  # prompt tokens charged on this instance
    def cached_input_service(self, client: int) -> int: ...
    def output_service(self, client: int) -> int: ...  # output tokens generated on this instance
    def kv_free_fraction(self) -> float: ...


class BatchPolicy(Protocol):
    """Per-instance batching. Hooks are optional; `plan` is required."""

    def plan(self, view: InstanceView) -> Plan: ...


@runtime_checkable
class ArrivalHook(Protocol):
    def on_arrival(self, rid: int, view: InstanceView) -> None: ...


@runtime_checkable
class LeaveHook(Protocol):
    """Called when a request leaves the waiting queue (admitted), with the view after it left."""

    def on_leave_queue(self, rid: int, view: InstanceView) -> None: ...


@runtime_checkable
class RequeueHook(Protocol):
    """Called when a preempted request goes back to the head of the waiting queue (its KV dropped,
    to be recomputed), with the view after it went back."""

    def on_requeue(self, rid: int, view: InstanceView) -> None: ...


class InstanceStats(Protocol):
    """What a router reads of one instance of its pool (synced to the current time)."""

    @property
    def spec(self) -> InstanceSpec: ...  # the instance's configuration (model, GPU, cost, ...)
    @property
    def cost_model(self) -> CostModel: ...  # the iteration-time model the run simulates it with
    @property
    def waiting_count(self) -> int: ...  # queued requests, with or without KV (+ swapped out)
    @property
    def running_count(self) -> int: ...
    @property
    def outstanding_tokens(self) -> int: ...  # remaining prefill + decode tokens of its requests
    @property
    def block_size(self) -> int: ...  # tokens per KV block
    @property
    def kv_blocks_total(self) -> int: ...
    @property
    def kv_blocks_available(self) -> int: ...  # free plus evictable (prefix cache) blocks
    @property
    def waiting(self) -> Sequence[int]: ...  # request ids queued without KV
    @property
    def ready(self) -> Sequence[int]: ...  # request ids queued with their KV (transferred or migrated)
    @property
    def prefilling(self) -> Sequence[int]: ...  # admitted, prompt not fully computed
    @property
    def decoding(self) -> Sequence[int]: ...
    @property
    def running(self) -> Sequence[int]: ...  # prefilling, then decoding

    def prefix_match_tokens(self, rid: int) -> int: ...  # tokens of `rid` its prefix cache holds
    def drain_evictions(self) -> list[tuple[int, ...]]: ...  # hash paths evicted since the last call
    def input_service(self, client: int) -> int: ...
    def cached_input_service(self, client: int) -> int: ...
    def output_service(self, client: int) -> int: ...


class ClusterView(Protocol):
    """What a router reads: the instances of its pool (indices 0 .. n_instances - 1) and the
    requests' attributes. Reading changes nothing; actions go through `ClusterActions`."""

    now: float  # the decision time (the engine sets it; routers read it)

    @property
    def n_instances(self) -> int: ...
    @property
    def hash_block_tokens(self) -> int: ...  # tokens per prefix hash block of the workload

    def instance(self, i: int) -> InstanceStats: ...
    def ready_at(self, i: int) -> float: ...  # when instance i may start its next iteration (start-up)
    def prompt_tokens(self, rid: int) -> int: ...
    def output_tokens(self, rid: int) -> int: ...
    def generated_tokens(self, rid: int) -> int: ...
    def client(self, rid: int) -> int: ...
    def arrival_s(self, rid: int) -> float: ...
    def priority(self, rid: int) -> int: ...
    def first_token_s(self, rid: int) -> float: ...  # nan if none yet
    def finish_s(self, rid: int) -> float: ...  # nan if unfinished
    def ttft_slo_s(self, rid: int) -> float: ...  # inf = none
    def energy_j(self, rid: int) -> float: ...  # joules credited to it so far (needs the GPU's power)
    def hashes(self, rid: int) -> np.ndarray: ...  # the request's prefix block hashes
    def kv_tokens(self, rid: int) -> int: ...  # tokens of `rid` whose KV is in memory now
    def charged(self, rid: int) -> bool: ...  # has its prompt been charged to its client (admitted)?


class ClusterActions(Protocol):
    """What a router may do to the cluster besides choosing an instance (pool indices)."""

    def migrate_live(self, rid: int, to_instance: int, max_stages: int = 3,
                     last_stage_max_blocks: int = 4, abort_after_max_stages: bool = False) -> bool: ...
    def migrate(self, rid: int, to_instance: int, downtime_s: float | None = None) -> bool: ...  # stop-and-copy
    def restart(self, rid: int, to_instance: int) -> bool: ...  # drop the KV, recompute there
    def set_down(self, j: int, down: bool) -> None: ...  # instance j goes down (or comes back)
    def set_ready_at(self, j: int, t: float) -> None: ...  # instance j starts no iteration before t


class ActingClusterView(ClusterView, ClusterActions, Protocol):
    """The one object the engine passes to a router's `tick`: it reads and it acts."""


class Router(Protocol):
    """Per-cluster routing: an arriving request -> a pool index. Optional members the engine
    looks up: `tick(view: ActingClusterView)` with `tick_interval_s` (periodic work, e.g.
    migrations), `decision_latency` and `decision_state_nodes()` (a costed global scheduler)."""

    def route(self, rid: int, view: ClusterView) -> int: ...


class TickingRouter(Router, Protocol):
    """A router that also works periodically, every `tick_interval_s` (None or 0: never)."""

    tick_interval_s: float | None

    def tick(self, view: ActingClusterView) -> None: ...


class PlanBuilder:
    """Writes a plan within the token budget, the request cap and KV memory.

    Typical use (Sarathi-Serve):
        b = PlanBuilder(view)
        b.decode_all()
        for rid in view.prefilling: b.chunk(rid)
        for rid in view.waiting:
            if not b.admit(rid): break
        return b.plan()
    """

    __slots__ = (
        "_admit",
        "_chunks",
        "_decodes",
        "_in_batch",
        "_in_batch_pending",
        "budget_left",
        "replan_after_iterations",
        "replan_each_iteration",
        "retry_at_s",
        "slice_tokens",
        "slots_left",
        "variant",
        "view",
    )

    def __init__(self, view: InstanceView, token_budget: int | None = None) -> None:
        self.view = view
        self.budget_left = view.token_budget if token_budget is None else token_budget
        self.slots_left = view.max_batch_requests
        self._admit: list[int] = []
        self._chunks: dict[int, int] = {}
        self._decodes: list[int] = []
        self._in_batch: set[int] = set()
        # decodes taken in bulk by `decode_all` and not yet in `_in_batch` (added when a later call
        # asks who is in the batch: most plans never do, and the set would cost one add per decode)
        self._in_batch_pending: list[int] | None = None
        self.replan_each_iteration = False
        self.replan_after_iterations: int | None = None  # Plan.replan_after_iterations
        self.retry_at_s: float | None = None
        self.slice_tokens: int | None = None  # generation slice of this plan's admissions (Plan)
        self.variant: ModelVariant | None = None  # the model variant this iteration runs (Plan)

    # -- decodes ---------------------------------------------------------------------------
    def _batch(self) -> set[int]:
        """The requests in the plan so far (`_in_batch` with the pending bulk decodes added)."""
        if self._in_batch_pending is not None:
            self._in_batch.update(self._in_batch_pending)
            self._in_batch_pending = None
        return self._in_batch

    def decode(self, rid: int) -> bool:
        if self.budget_left < 1 or self.slots_left < 1 or rid in self._batch():
            return False
        self._decodes.append(rid)
        self._in_batch.add(rid)
        self.budget_left -= 1
        self.slots_left -= 1
        return True

    def continue_static_batch(self) -> bool:
        """A static batch in progress runs to its end: every decode and every prefill chunk of its
        members, nothing admitted. Returns whether a batch was in progress (the caller then returns
        `plan()`); static-batch policies (SLS-style, MBS, SlackFit) call it first."""
        if not (self.view.prefilling or self.view.decoding):
            return False
        self.decode_all()
        for rid in self.view.prefilling:
            self.chunk(rid)
        return True

    def decode_all(self, rids: Sequence[int] | None = None) -> int:
        """Add decodes in order until the budget or the request cap runs out; returns how many."""
        rids = self.view.decoding if rids is None else rids
        if self._in_batch or self._in_batch_pending is not None:
            n = 0
            for rid in rids:
                if not self.decode(rid):
                    break
                n += 1
            return n
        n = min(len(rids), self.budget_left, self.slots_left)
        if n > 0:
            take = rids[:n] if isinstance(rids, list) else list(rids[:n])  # a list slice is a new list
            self._decodes.extend(take)
            self._in_batch_pending = take
            self.budget_left -= n
            self.slots_left -= n
        return max(n, 0)

    # -- prefills --------------------------------------------------------------------------
    def chunk(self, rid: int, max_tokens: int | None = None, whole: bool = False) -> int:
        """Schedule up to `max_tokens` of an admitted request's prompt (0 if nothing fits).

        whole=True: only schedule if the entire remaining prompt fits (no chunking).
        """
        pending = self._in_batch_pending  # one scan of the bulk decodes, cheaper than making their set
        if rid in self._in_batch or (pending is not None and rid in pending) or self.slots_left < 1:
            return 0
        remaining = self.view.remaining_prefill(rid)
        if whole and remaining > self.budget_left:
            return 0
        c = min(remaining, self.budget_left, remaining if max_tokens is None else max_tokens)
        if c < 1:
            return 0
        self._chunks[rid] = c
        self._in_batch.add(rid)
        self.budget_left -= c
        self.slots_left -= 1
        return c

    def can_admit(self, rid: int, whole: bool = False) -> bool:
        if not self.view.admission_open or self.slots_left < 1 or self.budget_left < 1:
            return False
        if whole and self.view.remaining_prefill(rid) - self.view.cached_prefix_tokens(rid) > self.budget_left:
            return False
        return self.view.admissible([*self._admit, rid])

    def admit(self, rid: int, whole: bool = False, max_tokens: int | None = None) -> bool:
        """Admit a waiting request and schedule its first chunk; False (and no change) if it
        does not fit in memory, slots or budget, or admission is closed."""
        if not self.can_admit(rid, whole):
            return False
        self._admit.append(rid)
        remaining_after_cache = self.view.remaining_prefill(rid) - self.view.cached_prefix_tokens(rid)
        c = min(remaining_after_cache, self.budget_left)
        if max_tokens is not None:
            c = min(c, max_tokens)
        self._chunks[rid] = c
        self._in_batch.add(rid)
        self.budget_left -= c
        self.slots_left -= 1
        return True

    @property
    def admitted(self) -> list[int]:
        return list(self._admit)

    @property
    def decodes(self) -> Sequence[int]:
        """The decodes in the plan so far, in order (read only)."""
        return self._decodes

    def plan(self) -> Plan:
        return Plan(
            admit=self._admit,
            chunks=self._chunks,
            decodes=self._decodes,
            replan_each_iteration=self.replan_each_iteration,
            replan_after_iterations=self.replan_after_iterations,
            retry_at_s=self.retry_at_s,
            slice_tokens=self.slice_tokens,
            variant=self.variant,
        )
