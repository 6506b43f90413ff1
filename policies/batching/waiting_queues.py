"""Incremental views of one instance's waiting queue, so that a plan costs about
O(admitted · log n) instead of a pass over all n waiting requests (issue 13, item 1).

Owns policy-side bookkeeping only, fed by the engine's hooks (`ArrivalHook.on_arrival`,
`LeaveHook.on_leave_queue`, called with the view after the queue changed):

* `ClientQueues`: the waiting queue split per client, each in queue order (per-client FIFO), with
  per-client counts. Least-counter policies (VTC) pick among the clients' heads; RPM merges the
  heads of the clients below their limit.
* `PrefixQueues`: `ClientQueues` plus the longest-prefix-match order (`lpm.lpm_order`: cached
  prefix tokens descending, ties in queue order) kept incrementally; see its docstring.
* `SubtreeQueues`: `ClientQueues` plus SGLang's DFS-weight order (`lpm.dfs_weight_order`).
* `SortedQueue`: the waiting queue under a static per-request key (SLAI's shortest prompt first).

A preempted request goes back to the head of the queue through `RequeueHook.on_requeue`; it gets
a number below every other. The engine changes the queue once without a hook: a migration takes
a request away. `sync(view)` detects that (the queue's length and its head, see
`ClientQueues.sync`) and rebuilds from `view.waiting`, so the structures never drift from the
engine's queue. Queue order is a sequence number per request: appended arrivals get increasing
numbers, requeued ones decreasing numbers, a rebuild numbers the queue as it stands.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from llmsched.sim.policy_api import InstanceView
from llmsched.sim.radix import ROOT, BlockHashes, RadixTree


class QueueHooks:
    """The engine's waiting-queue hooks (arrival, leave, requeue) forwarded to the policy's
    `queue` structure; a policy that also acts on a hook overrides it and forwards itself."""

    queue: Any  # a ClientQueues (or subclass) the policy sets in __init__

    def on_arrival(self, rid: int, view: InstanceView) -> None:
        self.queue.on_arrival(rid, view)

    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        self.queue.on_leave_queue(rid, view)

    def on_requeue(self, rid: int, view: InstanceView) -> None:
        self.queue.on_requeue(rid, view)


class SeqList:
    """Requests of one group in queue order: (seq, rid) entries, removal by lazy deletion (an
    entry is live while `owner.where[rid] is self` and its seq is the request's current one)."""

    __slots__ = ("_dead", "_items", "_live", "_owner", "_start", "key")

    def __init__(self, owner: ClientQueues, key: Any) -> None:
        self.key = key
        self._start = 0  # entries before it are dead (an entry never comes back to life)
        self._items: list[tuple[int, int]] = []
        self._owner = owner
        self._live = 0
        self._dead = 0

    def add(self, seq: int, rid: int) -> None:
        if self._items and self._items[-1][0] > seq:
            insort(self._items, (seq, rid))  # a request moved here from another group
            self._start = 0
        else:
            self._items.append((seq, rid))
        self._live += 1

    def discard(self) -> None:
        """One of its requests left (the caller has already repointed `owner.where`)."""
        self._live -= 1
        self._dead += 1
        if self._dead > 32 and self._dead > self._live:
            ok = self._owner.valid
            self._items = [e for e in self._items[self._start:] if ok(self, e)]
            self._dead = 0
            self._start = 0

    def __len__(self) -> int:
        return self._live

    def __iter__(self) -> Iterator[tuple[int, int]]:
        ok, items = self._owner.valid, self._items
        while self._start < len(items) and not ok(self, items[self._start]):
            self._start += 1
        for i in range(self._start, len(items)):
            if ok(self, items[i]):
                yield items[i]


class ClientQueues:
    """The waiting queue per client, in queue order (see the module docstring)."""

    def __init__(self) -> None:
        self.seq: dict[int, int] = {}  # waiting rid -> queue sequence number
        self.where: dict[int, SeqList] = {}  # waiting rid -> the group list holding it
        self.client_of: dict[int, int] = {}
        self.counts: dict[int, int] = {}  # client -> waiting requests (clients with some only)
        self.groups: dict[Any, SeqList] = {}  # group key -> its requests in queue order
        self._next = 0
        self._first = 0  # below every number given so far (requeued requests count down from it)
        self.rebuilds = 0

    # -- hooks ---------------------------------------------------------------------------------
    def on_arrival(self, rid: int, view: InstanceView) -> None:
        if not self.sync(view, arriving=rid):
            self._add(rid, view)

    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        if rid in self.seq:
            self._remove(rid)
        self.sync(view)

    def on_requeue(self, rid: int, view: InstanceView) -> None:
        """A preempted request went back to the head of the queue."""
        w = view.waiting
        if rid in self.seq or len(w) != len(self.seq) + 1 or w[0] != rid:
            self.rebuild(view)  # the queue changed some other way too
            return
        self._first -= 1
        self._add(rid, view, seq=self._first)

    def sync(self, view: InstanceView, arriving: int | None = None) -> bool:
        """Rebuild from `view.waiting` if the queue changed without a hook; True if rebuilt.

        Sound because hook-less changes are only (a) preempted requests inserted at the head (by a
        policy without the requeue hook) and (b) requests taken away: (a) leaves a request we do
        not know at the head until it is admitted (through the leave hook) or taken, and (b)
        without (a) shortens the queue."""
        w = view.waiting
        n = len(self.seq) + (arriving is not None)
        if len(w) == n and (not w or w[0] in self.seq or w[0] == arriving):
            return False
        self.rebuild(view)
        return True

    def rebuild(self, view: InstanceView) -> None:
        self.rebuilds += 1
        self._clear()
        for rid in view.waiting:
            self._add(rid, view)

    # -- queries -------------------------------------------------------------------------------
    def valid(self, group: SeqList, entry: tuple[int, int]) -> bool:
        rid = entry[1]
        return self.where.get(rid) is group and self.seq[rid] == entry[0]

    def count(self, client: int) -> int:
        return self.counts.get(client, 0)

    def clients(self) -> list[int]:
        """Clients with waiting requests, in the order they last became backlogged."""
        return list(self.counts)

    def of_client(self, client: int) -> Iterator[int]:
        """The client's waiting requests in queue order (groups keyed by client)."""
        for _, rid in self.groups[client]:
            yield rid

    def __len__(self) -> int:
        return len(self.seq)

    # -- mechanics (subclasses override `_key` and extend `_add`/`_removed`/`_clear`) ----------
    def _key(self, rid: int, view: InstanceView) -> Any:  # noqa: ARG002 - subclasses read the view
        return self.client_of[rid]

    def _file(self, rid: int, key: Any) -> None:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = SeqList(self, key)
        old = self.where.get(rid)
        self.where[rid] = g
        if old is not None:
            self._drop_from(old)
        g.add(self.seq[rid], rid)

    def _drop_from(self, g: SeqList) -> None:
        g.discard()
        if len(g) == 0 and self.groups.get(g.key) is g:
            del self.groups[g.key]

    def _clear(self) -> None:
        self.seq.clear()
        self.where.clear()
        self.client_of.clear()
        self.counts.clear()
        self.groups.clear()

    def _add(self, rid: int, view: InstanceView, seq: int | None = None) -> None:
        if seq is None:
            seq = self._next
            self._next += 1
        self.seq[rid] = seq
        c = self.client_of[rid] = view.client(rid)
        self.counts[c] = self.counts.get(c, 0) + 1
        self._file(rid, self._key(rid, view))

    def _remove(self, rid: int) -> None:
        self._drop_from(self.where.pop(rid))
        c = self.client_of.pop(rid)
        del self.seq[rid]
        self.counts[c] -= 1
        if not self.counts[c]:
            del self.counts[c]
        self._removed(rid)

    def _removed(self, rid: int) -> None:
        """Hook: a request left the queue (its entries are gone)."""


class _Stream:
    """A peekable iterator over (key, rid) in key order (one group of one client)."""

    __slots__ = ("head", "it", "neg_match")

    def __init__(self, neg_match: int, it: Iterator[tuple[int, int]]) -> None:
        self.neg_match = neg_match
        self.it = it
        self.head: tuple[int, int, int] | None = None
        self.advance()

    def advance(self) -> None:
        nxt = next(self.it, None)
        self.head = None if nxt is None else (self.neg_match, nxt[0], nxt[1])


class Merge:
    """K-way merge of per-client streams in (−cached prefix tokens, queue order); a client can be
    dropped in O(1) (its streams are skipped from then on)."""

    def __init__(self, per_client: dict[int, list[_Stream]], skip: set[int]) -> None:
        self._skip = skip
        self._client_heaps: dict[int, list[tuple[tuple[int, int, int], int, _Stream]]] = {}
        top: list[tuple[tuple[int, int, int], int]] = []
        for c, streams in per_client.items():
            h = []
            for i, s in enumerate(streams):
                self._skip_dead(s)
                if s.head is not None:
                    h.append((s.head, i, s))
            if h:
                heapq.heapify(h)
                self._client_heaps[c] = h
                top.append((h[0][0], c))
        heapq.heapify(top)
        self._top = top
        self.dropped: set[int] = set()

    def _skip_dead(self, s: _Stream) -> None:
        while s.head is not None and s.head[2] in self._skip:
            s.advance()

    def peek(self) -> tuple[int, int] | None:
        """(client, rid) of the next request, or None."""
        while self._top:
            _, c = self._top[0]
            if c in self.dropped:
                heapq.heappop(self._top)
                continue
            return c, self._client_heaps[c][0][0][2]
        return None

    def pop(self) -> tuple[int, int] | None:
        nxt = self.peek()
        if nxt is None:
            return None
        c, _ = nxt
        heapq.heappop(self._top)
        h = self._client_heaps[c]
        _, i, s = h[0]
        s.advance()
        self._skip_dead(s)
        if s.head is None:
            heapq.heappop(h)
        else:
            heapq.heapreplace(h, (s.head, i, s))
        if h:
            heapq.heappush(self._top, (h[0][0], c))
        return nxt

    def drop(self, client: int) -> None:
        self.dropped.add(client)

    def __iter__(self) -> Iterator[int]:
        while (nxt := self.pop()) is not None:
            yield nxt[1]


class _WaitingTree(RadixTree):
    """The waiting requests' cacheable prefix paths: per node the number of waiting requests
    through it and whether the instance's cache may hold it ("marked")."""

    __slots__ = ("count", "marked")

    def __init__(self) -> None:
        super().__init__()
        self.count: list[int] = []
        self.marked: list[bool] = []

    def _new_node(self, node: int) -> None:  # noqa: ARG002 - RadixTree's hook; payload appended in node order
        self.count.append(0)
        self.marked.append(False)


class _PathCounts(RadixTree):
    """Paths with a reference count per node (the prompts being prefilled here)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        super().__init__()
        self.count: list[int] = []

    def _new_node(self, node: int) -> None:  # noqa: ARG002 - RadixTree's hook
        self.count.append(0)

    def add_path(self, hashes: BlockHashes) -> None:
        parent = ROOT
        for h in hashes:
            node = self.child(parent, h)
            if node is None:
                node = self.add(parent, h)
            self.count[node] += 1
            parent = node

    def remove_path(self, hashes: BlockHashes) -> None:
        path = self.match(hashes)
        for node in path:
            self.count[node] -= 1
        if path:
            self.prune(path[-1], lambda n: self.count[n] > 0)


_Tree = TypeVar("_Tree", bound=RadixTree)


def _fresh_if_empty(tree: _Tree) -> _Tree:
    """The tree, or a new empty one of its class when no node is alive: node ids are never reused
    (`llmsched.sim.radix`), so a tree that only ever prunes keeps a few list slots per node it
    ever had; a tree with no live node holds no state worth keeping (ids only key, never order).
    Called after a removal."""
    return type(tree)() if tree.nodes_alive == 0 else tree


class PrefixQueues(ClientQueues):
    """`ClientQueues` plus the longest-prefix-match order, without matching every waiting request
    against the cache at every plan.

    The waiting requests' cacheable paths (`view.cacheable_hashes`) form a radix tree (the one in
    `llmsched.sim.radix`). A node is *marked* when the instance's cache may hold it: it was cached
    when the node entered the tree (one `view.cached_prefix_tokens` call per arrival), or a request
    that may still insert it was admitted here (the cache gains nodes only when a request admitted
    from this queue completes its prefill). Marks are closed under ancestors, and every cached node
    of the tree is marked. A waiting request is filed under its deepest marked node `a` and a kind:
    "clampable" if its whole path ends at `a` and covers its whole prefill target (the engine then
    computes the last block anyway, `Instance.cached_tokens_if_admitted`), else "plain". All
    requests filed under one (node, kind) have the same cached prefix now, so one
    `cached_prefix_tokens` call per (node, kind) per plan prices the group, and the LPM order is a
    merge of the groups' queue-ordered lists, split per client (`Merge`). Groups are keyed
    (node, kind, client).
    """

    def __init__(self) -> None:
        super().__init__()
        self._tree = _WaitingTree()
        self._nodes: dict[int, list[int]] = {}  # waiting rid -> its path's node ids
        self._clampable: dict[int, bool] = {}
        self._pending = _PathCounts()  # paths of requests admitted here, possibly still prefilling
        self._pending_rids: dict[int, BlockHashes] = {}

    # -- hooks -------------------------------------------------------------------------------
    def on_leave_queue(self, rid: int, view: InstanceView) -> None:
        hashes = view.cacheable_hashes(rid)
        super().on_leave_queue(rid, view)
        if len(hashes):
            self._pending.add_path(hashes)
            self._pending_rids[rid] = hashes
            self._mark_path(hashes)

    def forget_finished_prefills(self, view: InstanceView) -> None:
        """Drop the pending paths of requests no longer prefilling (their blocks are inserted)."""
        if not self._pending_rids:
            return
        live = set(view.prefilling)
        done = [r for r in self._pending_rids if r not in live]
        for rid in done:
            self._pending.remove_path(self._pending_rids.pop(rid))
        if done:
            self._pending = _fresh_if_empty(self._pending)

    # -- the order -----------------------------------------------------------------------------
    def lpm(self, view: InstanceView, skip: set[int] | None = None) -> Merge:
        """The waiting requests (less `skip`) in LPM order: cached prefix tokens descending, ties
        in queue order; one merge per call, consumed with `pop`/`drop` or iterated."""
        self.sync(view)
        self.forget_finished_prefills(view)
        price: dict[tuple[int, int], int] = {}
        per_client: dict[int, list[_Stream]] = {}
        for (node, kind, c), g in self.groups.items():
            neg = price.get((node, kind))
            if neg is None:
                rep = next(iter(g))[1]
                neg = price[(node, kind)] = -view.cached_prefix_tokens(rep)
            per_client.setdefault(c, []).append(_Stream(neg, iter(g)))
        return Merge(per_client, skip or set())

    # -- mechanics -----------------------------------------------------------------------------
    def _clear(self) -> None:
        super()._clear()
        self._tree = _WaitingTree()
        self._nodes.clear()
        self._clampable.clear()

    def _key(self, rid: int, view: InstanceView) -> Any:
        if rid not in self._nodes:
            self._insert(rid, view)
        return self._filing(rid)

    def _filing(self, rid: int) -> tuple[int, int, int]:
        """(deepest marked node on the path or ROOT, kind, client)."""
        nodes, marked = self._nodes[rid], self._tree.marked
        depth = 0
        while depth < len(nodes) and marked[nodes[depth]]:
            depth += 1
        at = nodes[depth - 1] if depth else ROOT
        return at, int(self._clampable[rid] and depth == len(nodes)), self.client_of[rid]

    def _removed(self, rid: int) -> None:
        nodes = self._nodes.pop(rid)
        del self._clampable[rid]
        t = self._tree
        for n in nodes:
            t.count[n] -= 1
        if nodes:
            t.prune(nodes[-1], lambda n: t.count[n] > 0)
            self._tree = _fresh_if_empty(t)

    def _insert(self, rid: int, view: InstanceView) -> None:
        hashes = view.cacheable_hashes(rid)
        t = self._tree
        parent, nodes = ROOT, []
        for h in hashes:
            node = t.child(parent, h)
            if node is None:
                node = t.add(parent, h)
            t.count[node] += 1
            nodes.append(node)
            parent = node
        self._nodes[rid] = nodes
        n = len(nodes)
        hb = view.hash_block_tokens
        self._clampable[rid] = clampable = n > 0 and n * hb >= view.remaining_prefill(rid)
        if n:
            cached = view.cached_prefix_tokens(rid) // hb
            if clampable and cached == n - 1:
                cached = n  # the engine may have dropped a cached last block: mark it anyway
            cached = max(cached, len(self._pending.match(hashes)))
            for node in nodes[:cached]:
                t.marked[node] = True

    def _mark_path(self, hashes: BlockHashes) -> None:
        """Mark the tree's nodes on `hashes` (a request that may insert them was admitted) and
        refile the waiting requests whose deepest marked node moved down."""
        t = self._tree
        parent, first_new = ROOT, None
        for h in hashes:
            node = t.child(parent, h)
            if node is None:
                break
            if not t.marked[node]:
                t.marked[node] = True
                if first_new is None:
                    first_new = node
            parent = node
        if first_new is None:
            return
        # the requests through first_new were filed at its parent (marks are ancestor-closed)
        above, d = t.parent(first_new), t.depth(first_new) - 1
        moved = [rid for key, g in list(self.groups.items()) if key[0] == above for _, rid in g
                 if len(self._nodes[rid]) > d and self._nodes[rid][d] == first_new]
        for rid in moved:
            self._file(rid, self._filing(rid))


class SortedQueue(ClientQueues):
    """The waiting queue in the order of a static key per request, then queue order: a heap with
    lazy deletion. `ordered(view)` yields the waiting requests in that order, popping only what the
    caller consumes; the consumed entries go back before the next call."""

    def __init__(self, key: Callable[[InstanceView, int], Any]) -> None:
        super().__init__()
        self._sort_key = key
        self._heap: list[tuple[Any, int, int]] = []
        self._taken: list[tuple[Any, int, int]] = []

    def _add(self, rid: int, view: InstanceView, seq: int | None = None) -> None:
        super()._add(rid, view, seq)
        heapq.heappush(self._heap, (self._sort_key(view, rid), self.seq[rid], rid))

    def _clear(self) -> None:
        super()._clear()
        self._heap = []
        self._taken = []

    def ordered(self, view: InstanceView) -> Iterator[int]:
        self.sync(view)
        h, seq = self._heap, self.seq
        for e in self._taken:
            if seq.get(e[2]) == e[1]:
                heapq.heappush(h, e)
        taken = self._taken = []
        while h:
            e = heapq.heappop(h)
            if seq.get(e[2]) != e[1]:
                continue  # left the queue
            taken.append(e)
            yield e[2]


class _SubtreeTree(RadixTree):
    """Per node: waiting requests at or below it (its weight), the queue numbers of those requests
    (a lazy min-heap) and its children keyed (−weight, −first queue number) (a lazy heap)."""

    __slots__ = ("kids", "seqs", "weight")

    def __init__(self) -> None:
        super().__init__()
        self.weight: list[int] = []
        self.seqs: list[list[int]] = []
        self.kids: list[list[tuple[int, int, int]]] = []

    def _new_node(self, node: int) -> None:  # noqa: ARG002 - RadixTree's hook
        self.weight.append(0)
        self.seqs.append([])
        self.kids.append([])


class SubtreeQueues(ClientQueues):
    """`ClientQueues` plus SGLang's DFS-weight order (`lpm.dfs_weight_order`: the tree of the
    waiting requests' prefix paths, children by descending weight, ties to the child whose first
    request in the queue came later, a node's own requests, in queue order, after its children)
    kept incrementally: an arrival or a departure updates the keys on its path, and a plan walks
    only as far as it admits. Groups are keyed by the node where a request's path ends."""

    def __init__(self) -> None:
        super().__init__()
        self._t = _SubtreeTree()
        self._root_kids: list[tuple[int, int, int]] = []
        self._nodes: dict[int, list[int]] = {}  # waiting rid -> its path's node ids
        self._rid_at: dict[int, int] = {}  # queue number -> waiting rid
        self._seq_of: dict[int, int] = {}
        self._taken: list[tuple[list[tuple[int, int, int]], tuple[int, int, int]]] = []

    def _clear(self) -> None:
        super()._clear()
        self._t = _SubtreeTree()
        self._root_kids = []
        self._nodes.clear()
        self._rid_at.clear()
        self._seq_of.clear()
        self._taken = []

    def _kid_heap(self, node: int) -> list[tuple[int, int, int]]:
        return self._root_kids if node == ROOT else self._t.kids[node]

    def _first_seq(self, node: int) -> int:
        h = self._t.seqs[node]
        while h[0] not in self._rid_at:
            heapq.heappop(h)
        return h[0]

    def _key(self, rid: int, view: InstanceView) -> Any:
        s = self.seq[rid]
        self._rid_at[s] = rid
        self._seq_of[rid] = s
        t = self._t
        parent, nodes = ROOT, []
        for h in view.prefix_hashes(rid):
            node = t.child(parent, h)
            if node is None:
                node = t.add(parent, h)
            t.weight[node] += 1
            heapq.heappush(t.seqs[node], s)
            nodes.append(node)
            parent = node
        self._nodes[rid] = nodes
        self._rekey(nodes)
        return parent

    def _removed(self, rid: int) -> None:
        del self._rid_at[self._seq_of.pop(rid)]
        nodes = self._nodes.pop(rid)
        t = self._t
        for node in nodes:
            t.weight[node] -= 1
        live = [n for n in nodes if t.weight[n] > 0]
        if nodes:
            t.prune(nodes[-1], lambda n: t.weight[n] > 0)
            if t.nodes_alive == 0:  # every heap entry is stale: start a new tree (`_fresh_if_empty`)
                self._t = _SubtreeTree()
                self._root_kids = []
                self._taken = []
        self._rekey(live)

    def _rekey(self, nodes: list[int]) -> None:
        """Push the current keys of `nodes` into their parents' child heaps."""
        t = self._t
        for node in nodes:
            parent = t.parent(node)
            h = self._kid_heap(parent)
            heapq.heappush(h, (-t.weight[node], -self._first_seq(node), node))
            if len(h) > 4 * (t.weight[parent] if parent != ROOT else len(self.seq)) + 64:
                h[:] = self._valid_kids(h)
                heapq.heapify(h)

    def _valid(self, e: tuple[int, int, int]) -> bool:
        t, node = self._t, e[2]
        return t.alive(node) and -e[0] == t.weight[node] and -e[1] == self._first_seq(node)

    def _valid_kids(self, h: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        return list({e[2]: e for e in h if self._valid(e)}.values())

    def _children(self, node: int) -> Iterator[int]:
        """Children in DFS-weight order, popping only what is consumed (put back next plan)."""
        h, seen, taken = self._kid_heap(node), set(), self._taken
        while h:
            e = heapq.heappop(h)
            if e[2] in seen or not self._valid(e):
                continue
            seen.add(e[2])
            taken.append((h, e))
            yield e[2]

    def dfs_weight(self, view: InstanceView) -> Iterator[int]:
        """The waiting requests in DFS-weight order (lazily)."""
        self.sync(view)
        for h, e in self._taken:
            heapq.heappush(h, e)
        self._taken = []
        stack: list[Any] = [("own", ROOT), ("kids", self._children(ROOT))]
        while stack:
            kind, item = stack[-1]
            if kind == "own":
                stack.pop()
                g = self.groups.get(item)
                if g is not None:
                    for _, rid in g:
                        yield rid
                continue
            child = next(item, None)
            if child is None:
                stack.pop()
                continue
            stack.append(("own", child))
            stack.append(("kids", self._children(child)))


class BucketQueues(PrefixQueues):
    """`PrefixQueues` plus the waiting requests bucketed by a function of (cached prefix tokens,
    prefill tokens), each bucket in queue order (Preble's hit-ratio groups, `preble_mpq`).

    All requests filed under one (node, kind) have the same cached prefix (`PrefixQueues`), so a
    plan prices each (node, kind) once and re-buckets only the requests that were filed anew or
    whose (node, kind) changed price since the last plan. A waiting request's prefill target
    (`view.remaining_prefill`) does not change while it waits. Buckets are heaps of (queue number,
    rid) with lazy deletion; a request that moves to another bucket and back has two equal entries
    in its heap, so `head` drops the second (equal entries pop one after the other)."""

    def __init__(self, bucket: Callable[[int, int], int], n_buckets: int) -> None:
        super().__init__()
        self._bucket_fn = bucket
        self._heaps: list[list[tuple[int, int]]] = [[] for _ in range(n_buckets)]
        self._sizes = [0] * n_buckets
        self._bucket: dict[int, int] = {}  # waiting rid -> its bucket
        self._price: dict[tuple[int, int], int] = {}  # (node, kind) -> cached tokens at the last plan
        self._dirty: set[int] = set()

    def refresh(self, view: InstanceView) -> None:
        """Bring the buckets up to date with the queue and the cache (once per plan)."""
        self.sync(view)
        self.forget_finished_prefills(view)
        price: dict[tuple[int, int], int] = {}
        members: dict[tuple[int, int], list[SeqList]] = {}
        for (node, kind, _client), g in self.groups.items():
            nk = (node, kind)
            if nk not in price:
                price[nk] = view.cached_prefix_tokens(next(iter(g))[1])
                members[nk] = []
            members[nk].append(g)
        dirty = self._dirty
        for nk, cached in price.items():
            if self._price.get(nk) != cached:
                for g in members[nk]:
                    dirty.update(rid for _, rid in g)
        self._price = price
        for rid in dirty:
            key = self.where[rid].key
            b = self._bucket_fn(price[(key[0], key[1])], view.remaining_prefill(rid))
            old = self._bucket.get(rid)
            if old == b:
                continue
            if old is not None:
                self._sizes[old] -= 1
            self._bucket[rid] = b
            self._sizes[b] += 1
            h = self._heaps[b]
            heapq.heappush(h, (self.seq[rid], rid))
            if len(h) > 2 * self._sizes[b] + 64:
                h[:] = list({e for e in h if self._live(b, e)})
                heapq.heapify(h)
        dirty.clear()

    def size(self, bucket: int) -> int:
        return self._sizes[bucket]

    def head(self, bucket: int, n: int) -> list[int]:
        """The first `n` waiting requests of `bucket` in queue order (after `refresh`)."""
        h = self._heaps[bucket]
        out: list[int] = []
        taken: list[tuple[int, int]] = []
        while h and len(out) < n:
            e = heapq.heappop(h)
            if self._live(bucket, e) and (not taken or taken[-1] != e):  # a request that left the
                taken.append(e)  # bucket and came back has a second, equal entry: popped next, dropped
                out.append(e[1])
        for e in taken:
            heapq.heappush(h, e)
        return out

    def _live(self, bucket: int, entry: tuple[int, int]) -> bool:
        rid = entry[1]
        return self._bucket.get(rid) == bucket and self.seq.get(rid) == entry[0]

    def _file(self, rid: int, key: Any) -> None:
        super()._file(rid, key)
        self._dirty.add(rid)

    def _removed(self, rid: int) -> None:
        super()._removed(rid)
        self._dirty.discard(rid)
        b = self._bucket.pop(rid, None)
        if b is not None:
            self._sizes[b] -= 1

    def _clear(self) -> None:
        super()._clear()
        self._heaps = [[] for _ in self._heaps]
        self._sizes = [0] * len(self._sizes)
        self._bucket = {}
        self._price = {}
        self._dirty = set()
