"""Preble E2 global scheduling (Srivatsa et al., ICLR'25, arXiv 2407.00023; `WukLab/preble`
`preble/global_scheduler_with_time.py`, as summarised in notes/fairness_locality.md §3.2–3.3):
exploit the instances caching a prompt's prefix when the cached part is longer than the rest,
otherwise explore to the lowest-cost instance; windowed load costs; post-assignment rebalancing;
hot-prefix replication on TTFT doubling; optionally Preble's eviction-cost term E
(`GlobalSchedulerTimeWithEviction`, the policy of every published Preble e2e config) and the
global scheduler's measured decision latency. The local priority groups are
`batching = "preble-mpq"`.

Owns its global prefix tree (which instances a prefix is allocated to), the load window and the
per-node window statistics the eviction cost reads.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, flag, integer, number
from llmsched.sim.policy_api import ClusterView
from llmsched.sim.prefix_index import PrefixIndex, prompt_blocks
from llmsched.sim.router_latency import RouterLatency

WINDOW_S = 180.0  # history window H = 3 minutes [CODE]
HIGH_LOAD_THRESHOLD = 1.5  # rebalance when cost(max) >= 1.5 x cost(min) [CODE]
WARMUP_PER_INSTANCE = 50  # rebalancing only after 50 x num_gpus dispatches [CODE]
# Measured E2 decision time: `avg_scheduling_overhead` of GlobalSchedulerTimeWithEviction, 0.006991,
# 0.006526, 0.005804, 0.005637, 0.005634, 0.005570 s at 0.5-3 req/s (mean 6.03 ms; max 15-20 ms);
# round-robin 0.06 ms. WukLab/preble @ 8e7906a, nsdi_plots/exploration_e2e.ipynb, output of the
# programming-workload cell (lines 118-124 of the .ipynb file): 2,500 requests, 100 prefix patterns.
# Measured on one workload only, so its growth with tree size is unknown: a constant here.
PREBLE_MEASURED_DECISION_S = 0.00603


@register(ROUTING, "preble")
class Preble:
    """Preble E2: exploit (least-cost instance among those holding the deepest cached prefix)
    iff cached prefix tokens > the rest of the prompt, else explore (least windowed load +
    this request's uncached cost); rebalance heaviest→lightest at 1.5× after warm-up; replicate a
    lone hot prefix whose TTFT doubled within the window.

    Load of an instance = Σ over requests routed to it in the last `window_s` of
    prefill_s_per_token × uncached prompt tokens + decode_s_per_token × output tokens (the true
    output length: an oracle where Preble uses the median decode length of the prefix; Preble
    uses a fitted T_prefill and median decode length × TPOT; our linear stand-in, defaults ≈
    Llama-7B on one A100: 8k prefill tok/s, 30 ms per output token, are our choice).

    eviction_cost: add Preble's eviction cost E(j) to every least-cost choice (explore, and
    exploit among several holders), as `GlobalSchedulerWithTime.calculate_min_load_cost` with
    `enable_eviction=True` (`preble/global_scheduler_with_time.py` l. 291-301): assume instance j's
    memory is full, evict from j's share of the global tree, least recently used first, as many
    blocks as the prompt adds to the tree (`virtual_lru_eviction`, `global_lru_cache.py`
    l. 323-352), and charge each victim v that is a "large node" (its radix segment is longer than
    the context before it, l. 258-259) miss(v) · count(v) · T_prefill(tokens of v)
    (`get_eviction_prefill_cost`, l. 162-167): count = window requests through v, miss = their
    uncached share of prompt tokens. Off by default (existing results unchanged).
    capacity_eviction: after each assignment, LRU-evict the chosen instance's share of the global
    tree down to its KV capacity (`handle_eviction`, l. 273-278, with the instance's pool size for
    the artifact's fixed `max_tokens_gpu = 198516`; unlike it, in-flight prefixes are not spared),
    so exploit forgets prefixes that no longer fit.
    decision_*: the global scheduler's per-decision cost (`llmsched.sim.router_latency`); off by
    default; `PREBLE_MEASURED_DECISION_S` is the artifact's measurement.
    """

    PARAMS = declare(window_s=number(0, low_open=True, doc="load window, s"),
              high_load_threshold=number(1, doc="rebalance ratio"), warmup_per_instance=integer(0),
              prefill_s_per_token=number(0), decode_s_per_token=number(0), replicate=flag(),
              eviction_cost=flag(), capacity_eviction=flag(), decision_base_s=number(0),
              decision_per_instance_s=number(0), decision_per_tree_node_s=number(0))

    def __init__(self, window_s: float = WINDOW_S, high_load_threshold: float = HIGH_LOAD_THRESHOLD,
                 warmup_per_instance: int = WARMUP_PER_INSTANCE, prefill_s_per_token: float = 1.25e-4,
                 decode_s_per_token: float = 0.03, replicate: bool = True, eviction_cost: bool = False,
                 capacity_eviction: bool = False, decision_base_s: float = 0.0,
                 decision_per_instance_s: float = 0.0, decision_per_tree_node_s: float = 0.0) -> None:
        self.window_s = float(window_s)
        self.threshold = float(high_load_threshold)
        self.warmup = int(warmup_per_instance)
        self.c_pre = float(prefill_s_per_token)
        self.c_dec = float(decode_s_per_token)
        self.replicate = bool(replicate)
        self.tree = PrefixIndex()  # holders of a node = instances the prefix is allocated to
        self.window: deque[list] = deque()  # [t, instance, group (hash path) | None, cost, rid]
        self.load: dict[int, float] = {}
        self.dispatched = 0
        self.counts = {"exploit": 0, "explore": 0, "moved": 0, "replicated": 0}
        self.eviction_cost = bool(eviction_cost)
        self.capacity_eviction = bool(capacity_eviction)
        self.tree_evictions = 0
        self.decision_latency = RouterLatency(
            decision_base_s, decision_per_instance_s, decision_per_tree_node_s,
            source="Preble router params (PREBLE_MEASURED_DECISION_S: WukLab/preble nsdi_plots/exploration_e2e.ipynb)")
        # eviction-cost state: per-instance LRU order of tree nodes, per-node window statistics
        self._lru: dict[int, OrderedDict[int, None]] = {}
        self._large: dict[int, bool] = {}
        self._kids: dict[int, list[int]] = {}
        self._node_count: dict[int, int] = {}
        self._node_miss: dict[int, float] = {}
        self._node_prompt: dict[int, float] = {}
        self._wstats: deque[tuple[float, np.ndarray, float, float]] = deque()
        self.e_charged = 0.0  # sum of E over chosen instances (diagnostic)

    def decision_state_nodes(self) -> int:
        """Size of the global prefix tree (what a state-dependent decision cost grows with)."""
        return len(self.tree)

    # ------------------------------------------------------------------ window
    def _expire(self, now: float) -> None:
        w = self.window
        while w and w[0][0] < now - self.window_s:
            _, j, _, c, _ = w.popleft()
            self.load[j] -= c
        ws = self._wstats
        while ws and ws[0][0] < now - self.window_s:
            _, nodes, miss, prompt = ws.popleft()
            for v in nodes.tolist():
                self._node_count[v] -= 1
                self._node_miss[v] -= miss
                self._node_prompt[v] -= prompt
                if self._node_count[v] <= 0:
                    del self._node_count[v], self._node_miss[v], self._node_prompt[v]

    # ------------------------------------------------------------------ eviction cost E
    def _touch(self, j: int, nodes) -> None:
        """Instance j used `nodes` (a root-to-leaf path) now: most recent, the root last."""
        lru = self._lru.setdefault(j, OrderedDict())
        for v in reversed(nodes):
            lru[v] = None
            lru.move_to_end(v)

    def eviction_cost_s(self, j: int, new_blocks: int, on_path: set[int], hb: int) -> float:
        """Preble's E(j): the prefill time lost by evicting `new_blocks` blocks from instance j."""
        lru = self._lru.get(j)
        if not lru or new_blocks <= 0:
            return 0.0
        cost, evicted, stale = 0.0, 0, []
        for v in lru:
            if evicted >= new_blocks:
                break
            if j not in self.tree.holders(v):
                stale.append(v)
                continue
            if v in on_path:
                continue
            evicted += 1
            count = self._node_count.get(v, 0)
            if count and self._large.get(v, False):
                miss = self._node_miss[v] / self._node_prompt[v] if self._node_prompt[v] > 0 else 1.0
                cost += miss * count * self.c_pre * hb
        for v in stale:
            del lru[v]
        return cost

    def _record(self, now: float, blocks, prompt: int, known_blocks: int, hb: int) -> list[int]:
        """Window statistics of this request, and the radix segments ("large" or not) of its path
        after insertion. Segments end where the tree branches (the children this router has seen);
        when a node gets its second child, the old child's chain becomes a segment of its own."""
        path = self.tree.path(blocks)
        kids = self._kids
        for k, v in enumerate(path):
            sibs = kids.setdefault(path[k - 1] if k else -1, [])
            if v not in sibs:
                sibs.append(v)
                if len(sibs) == 2:  # a new branch point: the old child's segment split off
                    chain, x = [sibs[0]], sibs[0]
                    while len(kids.get(x, ())) == 1:
                        x = kids[x][0]
                        chain.append(x)
                    for u in chain:
                        self._large[u] = len(chain) > k
        start = 0
        for k, v in enumerate(path):
            if len(kids.get(v, ())) != 1 or k == len(path) - 1:
                for u in path[start:k + 1]:
                    self._large[u] = k - start + 1 > start
                start = k + 1
        miss = float(max(prompt - known_blocks * hb, 0))
        for v in path:
            self._node_count[v] = self._node_count.get(v, 0) + 1
            self._node_miss[v] = self._node_miss.get(v, 0.0) + miss
            self._node_prompt[v] = self._node_prompt.get(v, 0.0) + prompt
        self._wstats.append((now, np.asarray(path, dtype=np.int64), miss, float(prompt)))
        return path

    def loads(self, n: int) -> list[float]:
        return [max(self.load.get(j, 0.0), 0.0) for j in range(n)]

    # ------------------------------------------------------------------ routing
    def route(self, rid: int, view: ClusterView) -> int:
        now = view.now
        self._expire(now)
        n = view.n_instances
        hb = view.hash_block_tokens
        blocks = prompt_blocks(view, rid)
        prompt = view.prompt_tokens(rid)
        path = self.tree.path(blocks)
        deep = 0  # deepest node on the path that is allocated somewhere
        for k, node in enumerate(path, start=1):
            if self.tree.holders(node):
                deep = k
        cached = min(deep * hb, prompt)
        per = self.tree.match_per_tenant(blocks)
        loads = self.loads(n)

        def run_cost(j: int) -> float:
            return self.c_pre * (prompt - min(per.get(j, 0) * hb, prompt)) + self.c_dec * view.output_tokens(rid)

        evict = [0.0] * n
        if self.eviction_cost:
            on_path = set(path)
            new_blocks = len(blocks) - len(path)  # what the prompt adds to the global tree
            evict = [self.eviction_cost_s(g, new_blocks, on_path, hb) for g in range(n)]

        group: tuple[int, ...] | None  # the prefix the request is allocated by (None: no hashes)
        if cached > prompt - cached:  # EXPLOIT
            group = tuple(int(h) for h in blocks[:deep])
            allocated = sorted(self.tree.holders(path[deep - 1]))
            j = min(allocated, key=lambda g: (loads[g] + (evict[g] if len(allocated) > 1 else 0.0), g))
            self.counts["exploit"] += 1
        else:  # EXPLORE
            group = tuple(int(h) for h in blocks) or None
            j = min(range(n), key=lambda g: (loads[g] + run_cost(g) + evict[g], g))
            self.counts["explore"] += 1
        cost = run_cost(j)
        self.window.append([now, j, group, cost, rid])
        self.load[j] = self.load.get(j, 0.0) + cost
        self.tree.insert(blocks, j, now)
        if self.eviction_cost:
            self.e_charged += evict[j]
            self._touch(j, self._record(now, blocks, prompt, len(path), hb))
        if self.capacity_eviction:
            s = view.instance(j)
            cap = s.kv_blocks_total * s.block_size // max(hb, 1)
            if self.tree.tenant_blocks(j) > cap:
                self.tree_evictions += self.tree.evict_tenant(j, cap)
        self.dispatched += 1
        if self.dispatched >= self.warmup * n:
            self.rebalance(view)
        return j

    # ------------------------------------------------------------------ rebalancing
    def rebalance(self, view: ClusterView) -> None:
        """Move whole prefix groups from the heaviest to the lightest instance while
        cost_heavy − c ≥ cost_light + c, until cost_heavy < threshold × cost_light; if the heavy
        instance has a single shared prefix and it is hot, replicate it instead (one pair per call)."""
        n = view.n_instances
        if n < 2:
            return
        loads = self.loads(n)
        heavy = max(range(n), key=lambda g: (loads[g], -g))
        light = min(range(n), key=lambda g: (loads[g], g))
        if heavy == light or loads[heavy] < self.threshold * loads[light] or loads[heavy] <= 0:
            return
        groups: dict[tuple, list] = {}
        for rec in self.window:
            if rec[1] == heavy and rec[2] is not None:
                groups.setdefault(rec[2], []).append(rec)
        shared = sorted(((sum(r[3] for r in recs), g) for g, recs in groups.items() if len(recs) > 1))
        moved = False
        for c, g in shared:
            if loads[heavy] - c >= loads[light] + c:
                for rec in groups[g]:
                    rec[1] = light
                self.load[heavy] -= c
                self.load[light] = self.load.get(light, 0.0) + c
                loads[heavy] -= c
                loads[light] += c
                self.tree.move(g, heavy, light, view.now)
                if self.eviction_cost:
                    self._touch(light, self.tree.path(g))
                self.counts["moved"] += 1
                moved = True
                if loads[heavy] < self.threshold * loads[light]:
                    break
        if not moved and self.replicate and len(shared) == 1:
            c, g = shared[0]
            if self.hot(view, groups[g]):
                self.tree.insert(g, light, view.now)
                if self.eviction_cost:
                    self._touch(light, self.tree.path(g))
                for rec in groups[g][::2]:  # split the prefix's window cost in half
                    rec[1] = light
                    self.load[heavy] -= rec[3]
                    self.load[light] = self.load.get(light, 0.0) + rec[3]
                self.counts["replicated"] += 1

    def hot(self, view: ClusterView, recs: list) -> bool:
        """TTFT doubling within the window: the newer half-window's mean TTFT is ≥ 2× the older's
        (Preble `TTFTWindowedOverloadedDetector`)."""
        now = view.now
        mid = now - self.window_s / 2
        old: list[float] = []
        new: list[float] = []
        for t, _, _, _, rid in recs:
            ft = view.first_token_s(rid)
            if np.isfinite(ft):
                (new if t >= mid else old).append(ft - view.arrival_s(rid))
        return bool(old and new and np.mean(new) >= 2 * np.mean(old))

    def stats(self) -> dict:
        out: dict[str, float] = dict(self.counts)
        if self.eviction_cost:
            out["eviction_cost_s"] = self.e_charged
        if self.capacity_eviction:
            out["tree_evictions"] = self.tree_evictions
        return out
