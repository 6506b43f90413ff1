"""Preble E2 global scheduling (Srivatsa et al., ICLR'25, arXiv 2407.00023; `WukLab/preble`
`preble/global_scheduler_with_time.py`, as summarised in notes/fairness_locality.md §3.2–3.3):
exploit the instances caching a prompt's prefix when the cached part is longer than the rest,
otherwise explore to the lowest-cost instance; windowed load costs; post-assignment rebalancing;
hot-prefix replication on TTFT doubling. The local priority groups are `batching = "preble-mpq"`.

Owns its global prefix tree (which instances a prefix is allocated to) and the load window.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.prefix_index import PrefixIndex, prompt_blocks

WINDOW_S = 180.0  # history window H = 3 minutes [CODE]
HIGH_LOAD_THRESHOLD = 1.5  # rebalance when cost(max) >= 1.5 x cost(min) [CODE]
WARMUP_PER_INSTANCE = 50  # rebalancing only after 50 x num_gpus dispatches [CODE]


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
    Llama-7B on one A100: 8k prefill tok/s, 30 ms per output token, are our choice). The
    eviction term E is omitted (Preble's code with eviction costing disabled).
    """

    def __init__(self, window_s: float = WINDOW_S, high_load_threshold: float = HIGH_LOAD_THRESHOLD,
                 warmup_per_instance: int = WARMUP_PER_INSTANCE, prefill_s_per_token: float = 1.25e-4,
                 decode_s_per_token: float = 0.03, replicate: bool = True) -> None:
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

    # ------------------------------------------------------------------ window
    def _expire(self, now: float) -> None:
        w = self.window
        while w and w[0][0] < now - self.window_s:
            _, j, _, c, _ = w.popleft()
            self.load[j] -= c

    def loads(self, n: int) -> list[float]:
        return [max(self.load.get(j, 0.0), 0.0) for j in range(n)]

    # ------------------------------------------------------------------ routing
    def route(self, rid: int, view) -> int:
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

        if cached > prompt - cached:  # EXPLOIT
            group = tuple(int(h) for h in blocks[:deep])
            allocated = sorted(self.tree.holders(path[deep - 1]))
            j = min(allocated, key=lambda g: (loads[g], g))
            self.counts["exploit"] += 1
        else:  # EXPLORE
            group = tuple(int(h) for h in blocks) or None
            j = min(range(n), key=lambda g: (loads[g] + run_cost(g), g))
            self.counts["explore"] += 1
        cost = run_cost(j)
        self.window.append([now, j, group, cost, rid])
        self.load[j] = self.load.get(j, 0.0) + cost
        self.tree.insert(blocks, j, now)
        self.dispatched += 1
        if self.dispatched >= self.warmup * n:
            self.rebalance(view)
        return j

    # ------------------------------------------------------------------ rebalancing
    def rebalance(self, view) -> None:
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
                self.counts["moved"] += 1
                moved = True
                if loads[heavy] < self.threshold * loads[light]:
                    break
        if not moved and self.replicate and len(shared) == 1:
            c, g = shared[0]
            if self.hot(view, groups[g]):
                self.tree.insert(g, light, view.now)
                for rec in groups[g][::2]:  # split the prefix's window cost in half
                    rec[1] = light
                    self.load[heavy] -= rec[3]
                    self.load[light] = self.load.get(light, 0.0) + rec[3]
                self.counts["replicated"] += 1

    def hot(self, view, recs: list) -> bool:
        """TTFT doubling within the window: the newer half-window's mean TTFT is ≥ 2× the older's
        (Preble `TTFTWindowedOverloadedDetector`)."""
        now = view.now
        mid = now - self.window_s / 2
        old, new = [], []
        for t, _, _, _, rid in recs:
            ft = view.first_token_s(rid)
            if np.isfinite(ft):
                (new if t >= mid else old).append(ft - view.arrival_s(rid))
        return bool(old and new and np.mean(new) >= 2 * np.mean(old))

    def stats(self) -> dict:
        return dict(self.counts)
