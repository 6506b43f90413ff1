"""A small discrete-event simulation of requests flowing through a placement's pipelines.

Independent of the main engine (sim/); uses the Helix per-layer profiles and IWRR routing.
"""

# Closed loop (Helix's "offline" mode): the coordinator admits the request at the head of the line
# whenever IWRR finds a path whose nodes all have KV room (router "maxflow"); under the baselines'
# hop-by-hop routers (Swarm, random, shortest queue) a fixed number of requests stays in flight and
# each prompt picks its next node as it leaves a node. Each request makes one prompt pass and then
# `output` decode passes (1 token each) along the same path (KV locality). Per node and iteration,
# k * (P(prompt tokens) + D(decode tokens)) seconds with the per-layer profiles interpolated; what a
# node batches is the runtime discipline: "typical" = one token budget per iteration, the size of
# the batch behind T_i(k), decodes first and prompt chunks in the rest (Sarathi-Serve's stall-free
# batching); "typical-split" = separate caps at its prompt and its decode tokens (the rule before
# issue 19's diagnosis, kept for the ablation); "profile" = greedy, up to Helix's per-GPU maximum
# batch, whole prompts (Helix's simulator, simulator/scheduler/execution_policy.py). Links are FIFO:
# one message per request item (tokens x activation bytes; token-id bytes from the coordinator),
# arriving latency + bytes / bandwidth after it starts. Reports prompt, decode and total token
# throughput at the sink over the measurement window; our model, not Helix's simulator.

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsched.sim.events import PriorityQueue
from llmsched.theory.placement.flow import FlowProblem, Placement, enabled, solve_flow
from llmsched.theory.placement.profiles import (
    AVG_INPUT_LEN,
    AVG_OUTPUT_LEN,
    load_profiles,
    typical_batch_table,
)
from llmsched.theory.placement.routing import HOP_ROUTERS, ROUTERS, FlowRouter, HopRouter
from llmsched.theory.placement.spec import SINK, SOURCE

BATCH_LIMITS = ("profile", "typical", "typical-split")
# "pipelined": messages on a link are transmitted back to back and each arrives `latency` after its
# last byte leaves (latency overlaps the next transfer). "held": Helix's simulator, where a link
# carries one request at a time and stays allocated for latency + bytes / bandwidth
# (simulator/event_simulator/network_link.py, calculate_transmission_time and start_sending; both
# the max-flow and the Swarm scheduler put one request in each transmission and send on a link only
# when it is free: global_maxflow_scheduler.py and swarm_scheduler.py, schedule_transmission).
LINK_MODELS = ("pipelined", "held")
# Helix's Azure Conversation preprocessing drops requests with input > 2048 or output > 1024 tokens
# (simulator/trace_generator/length_sampler.py, Dataset.AzureConversation docstring).
MAX_PROMPT_TOKENS, MAX_OUTPUT_TOKENS = 2048, 1024
# Helix's offline feeder issues its initial queries 0.1 s apart
# (simulator/trace_generator/simulator_query_feeder.py, OfflineRequestFeeder.auto_simulate).
INITIAL_FEED_SPACING_S = 0.1


@dataclass
class SimResult:
    prompt_tok_s: float
    decode_tok_s: float
    total_tok_s: float
    max_flow_tok_s: float
    completed_requests: int
    sim_time_s: float
    node_busy_frac: dict = field(default_factory=dict)
    node_tok_s: dict = field(default_factory=dict)  # tokens each node started in the window, per second
    node_decode_batch: dict = field(default_factory=dict)  # mean decode tokens per iteration in the window
    admitted_mean_lengths: tuple[float, float] = (float("nan"), float("nan"))  # (prompt, output) tokens
    unservable_requests: int = 0  # dropped: they fit no path even on an empty cluster
    router: str = "maxflow"
    kv_peak_frac: float = float("nan")  # max over nodes of peak KV reserved / KV entries (hop routers)
    hop_shares: dict = field(default_factory=dict)  # node -> {next hop: share of prompts sent} (hop routers)

    @property
    def ratio(self) -> float:
        return self.total_tok_s / self.max_flow_tok_s if self.max_flow_tok_s else float("nan")


def simulate_plan(p: FlowProblem, plc: Placement, duration_s: float = 120.0, warmup_s: float = 30.0,
                  prompt_len: int = AVG_INPUT_LEN, output_len: int = AVG_OUTPUT_LEN,
                  kv_fraction: float = 1.0, length_cv: float = 0.0, seed: int = 0,
                  max_inflight: int = 100_000, batch_limit: str = "profile",
                  groups: dict[int, int] | None = None, progress: bool = False,
                  router: str = "maxflow", link_model: str = "pipelined") -> SimResult:
    """Saturation throughput of `plc` (tokens/s at the sink in [warmup, duration]).

    kv_fraction: admission high-water mark of each node's KV entries (1.0 = Helix's simulator,
    `EXPECTED_KV_HWM = 1`; 0.3 = the `KV_CACHE_HWM` behind T_i(k)). The result depends on it:
    T_i(k) is a throughput at a typical batch, not a hard service rate (docs/placement.md).

    batch_limit: "profile" caps a node's iteration at the per-GPU maximum batch of Helix's tables
    (`prompt_max_tokens`, `decode_max_tokens`), whole prompts, as Helix's own simulator does.
    "typical" gives every iteration one token budget, the size of the typical batch behind T_i(k)
    (`profiles.typical_batch`: its prompt plus its decode tokens): every queued decode first (up to
    the budget and the profile's decode maximum), then prompt chunks fill what is left (up to the
    profile's prompt maximum), as Sarathi-Serve's stall-free batching and vLLM's chunked-prefill
    scheduler fill a token budget. It runs every node at the iteration size the max flow assumes,
    so the run measures what routing, links and pipelining deliver of the plan. "typical-split"
    caps prompt and decode tokens separately at the typical batch's two parts; a node whose mix is
    for a while more decode-heavy than the typical batch then leaves prompt slots empty while
    decodes wait (docs/placement.md, "cluster42 at CV 0.5"), so it is kept for that ablation only.
    Helix's prototype batches as "profile" does; the token budget is our choice (Helix's T_i(k)
    fixes a typical batch size, not a runtime rule).
    groups: the separate-pipelines group map (`sp`, `sp+`), routed within groups as the flow is.
    progress: show a bar over simulated seconds on stderr.
    router: "maxflow" (Helix: IWRR over the max flow, a whole path chosen at admission, admission
    while some path has KV room) or a baseline scheduler of `routing.HOP_ROUTERS` ("swarm",
    "random", "shortest_queue"): the next node is chosen each time a prompt leaves a node, and
    admission is a closed loop of exactly `max_inflight` requests (Helix's offline feeder for these
    schedulers, which cannot reject a request: `initial_query_count` issued 0.1 s apart, one new
    request per finished one). KV is then not checked at admission; `kv_peak_frac` reports the peak
    reservation (Helix's simulator asserts on overflow, and its AE picks the count by hand).
    link_model: `LINK_MODELS` ("held" = Helix's simulator: one message per link at a time, the link
    held for latency + transfer).
    length_cv: lognormal prompt and output lengths with this coefficient of variation (0 = every
    request has the mean lengths, the assumption behind T_i(k)); lengths above Helix's dataset caps
    are redrawn. The request at the head of the line keeps its lengths until it fits, so admission
    does not favour short requests."""
    if batch_limit not in BATCH_LIMITS:
        raise ValueError(f"batch_limit must be one of {BATCH_LIMITS}, got {batch_limit!r}")
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {ROUTERS}, got {router!r}")
    if link_model not in LINK_MODELS:
        raise ValueError(f"link_model must be one of {LINK_MODELS}, got {link_model!r}")
    run = _PlanRun(p, plc, duration_s, warmup_s, prompt_len, output_len, kv_fraction, length_cv, seed,
                   max_inflight, batch_limit, groups, router, link_model == "held")
    return run.run(progress)


class _PlanRun:
    """The state of one `simulate_plan` run: nodes (queues, KV in use, busy flags), links (when
    each is free next), requests in flight (path, decodes left, KV per layer) and the event heap."""

    def __init__(self, p: FlowProblem, plc: Placement, duration_s: float, warmup_s: float,
                 prompt_len: int, output_len: int, kv_fraction: float, length_cv: float, seed: int,
                 max_inflight: int, batch_limit: str, groups: dict[int, int] | None,
                 router: str = "maxflow", link_held: bool = False) -> None:
        self.duration_s, self.warmup_s = duration_s, warmup_s
        self.prompt_len, self.output_len, self.length_cv = prompt_len, output_len, length_cv
        self.max_inflight = max_inflight
        self.rng = np.random.default_rng(seed)
        prof = load_profiles(p.model.profile_key)
        self.flow = solve_flow(p, plc, groups)
        self.router = FlowRouter(self.flow.edge_flow)
        nodes = self.nodes = sorted(plc)
        self.router_name = router
        self.link_held = link_held
        self.hop: HopRouter | None = None
        self.released = max_inflight  # admissions allowed so far (hop routers: the staggered initial feed)
        if router in HOP_ROUTERS:
            out_hops = {u: [v for v in [*nodes, SINK] if enabled(p, plc, u, v, groups)] for u in [SOURCE, *nodes]}
            self.hop = HopRouter(router, out_hops, self.rng, lambda j: len(self.queue[j]))
            self.released = 0
        self.link_start: dict[tuple[int, Any], float] = {}  # (request, node) -> when its link transfer began
        self.hop_counts: dict = {}  # (u, v) -> prompts sent
        self.kv_peak = dict.fromkeys(nodes, 0.0)
        k = self.k = {i: plc[i][1] for i in nodes}
        gp = self.gp = {i: prof[p.cluster.nodes[i].gpu_type] for i in nodes}
        self.kv_cap = {i: gp[i].kv_entries(k[i]) * kv_fraction for i in nodes}
        self.kv_used = dict.fromkeys(nodes, 0.0)
        self.pmax = {i: gp[i].prompt_max_tokens[k[i] - 1] for i in nodes}  # also the admission limit
        self.dmax = {i: gp[i].decode_max_tokens[k[i] - 1] for i in nodes}
        self.pcap = dict(self.pmax)
        # "typical": tokens per iteration (decodes and prompt chunks together); None = separate caps
        self.token_budget: dict[int, int] | None = None
        if batch_limit in ("typical", "typical-split"):
            table = typical_batch_table(p.model, p.cluster.type_counts(), p.capacity_model)
            typ = {i: table[p.cluster.nodes[i].gpu_type][k[i] - 1] for i in nodes}
            typ_prompt = {i: min(self.pmax[i], max(1, typ[i].prompt_tokens)) for i in nodes}
            typ_decode = {i: min(self.dmax[i], max(1, typ[i].decode_tokens)) for i in nodes}
            if batch_limit == "typical":
                self.token_budget = {i: typ_prompt[i] + typ_decode[i] for i in nodes}
            else:
                self.pcap, self.dmax = typ_prompt, typ_decode
        self.link = {(u, v): (c, lat) for u, v, c, lat in p.edges}  # c in tokens/s of this link's unit

        self.queue: dict[int, list] = {i: [] for i in nodes}
        self.busy = dict.fromkeys(nodes, False)
        self.busy_time = dict.fromkeys(nodes, 0.0)
        self.node_tokens = dict.fromkeys(nodes, 0)
        self.node_decodes = dict.fromkeys(nodes, 0)
        self.node_iters = dict.fromkeys(nodes, 0)
        self.link_free: dict[tuple, float] = {}
        self.events: PriorityQueue[tuple[str, Any]] = PriorityQueue()
        self.req_path: dict[int, list] = {}
        self.req_left: dict[int, int] = {}
        self.req_need: dict[int, float] = {}
        self.admitted = [0, 0, 0]  # requests, prompt tokens, output tokens
        self.chunked = batch_limit != "profile"
        self.prompt_progress: dict[tuple[int, int], int] = {}  # (node, request) -> prompt tokens done there
        self.stats = {"prompt": 0.0, "decode": 0.0, "done": 0, "unservable": 0}
        self.next_rid = 0
        self.head: list = []  # the next request in line: it keeps its lengths until it is admitted (FIFO)

    def push(self, t: float, kind: str, data: Any) -> None:
        self.events.push((t,), (kind, data))

    # ------------------------------------------------------------------ requests
    def draw(self, mean: int, cap: int) -> int:
        if self.length_cv <= 0:
            return mean
        sigma = np.sqrt(np.log1p(self.length_cv**2))
        while True:  # lengths beyond the cap are removed from the dataset, as Helix's sampler does
            x = max(1, int(self.rng.lognormal(np.log(mean) - sigma**2 / 2, sigma)))
            if x <= cap:
                return x

    def draw_request(self) -> tuple[int, int]:
        return self.draw(self.prompt_len, MAX_PROMPT_TOKENS), self.draw(self.output_len, MAX_OUTPUT_TOKENS)

    def send(self, now: float, u, v, items: list) -> None:
        cap, lat = self.link[(u, v)]  # tokens/s already divides bytes by the right unit
        free = self.link_free.get((u, v), 0.0)
        for it in items:  # one message per request, transmitted back to back (FIFO)
            start = max(now, free)
            if self.hop is not None:
                self.link_start[(it[0], v)] = start
            if self.link_held:  # the link is busy until the message arrives
                free = start + lat + it[1] / cap
                self.push(free, "arrive", (v, [it]))
                continue
            free = start + it[1] / cap
            self.push(free + lat, "arrive", (v, [it]))
        self.link_free[(u, v)] = free

    def try_admit(self, now: float) -> None:
        """Admit requests from the head of the line while IWRR finds a path with KV room."""
        if self.hop is not None:
            self.admit_hop(now)
            return
        kv_used, kv_cap, pmax, k = self.kv_used, self.kv_cap, self.pmax, self.k
        while len(self.req_path) < self.max_inflight:
            if not self.head:
                self.head.append(self.draw_request())
            pl, ol = self.head[0]
            need = {i: (pl + ol) * k[i] for i in self.nodes}

            def ok(j, pl=pl, need=need):
                return j == SINK or (pl <= pmax[j] and kv_used[j] + need[j] <= kv_cap[j])

            path = self.router.route(pl, ok)
            if not path:
                if not self.req_path:  # it does not fit even an empty cluster: drop it, or nothing ever runs
                    self.head.clear()
                    self.stats["unservable"] += 1
                    continue
                return
            self.head.clear()
            rid = self.next_rid
            self.next_rid += 1
            for j in path:
                kv_used[j] += need[j]
            self.req_path[rid], self.req_left[rid], self.req_need[rid] = path, ol, (pl + ol)
            self.admitted[0] += 1
            self.admitted[1] += pl
            self.admitted[2] += ol
            self.send(now, SOURCE, path[0], [(rid, pl, True)])

    def admit_hop(self, now: float) -> None:
        """Hop routers: keep min(max_inflight, released) requests in flight; the first hop is chosen
        as the prompt leaves the source."""
        while len(self.req_path) < min(self.max_inflight, self.released):
            pl, ol = self.draw_request()
            rid = self.next_rid
            self.next_rid += 1
            self.req_path[rid], self.req_left[rid], self.req_need[rid] = [], ol, (pl + ol)
            self.admitted[0] += 1
            self.admitted[1] += pl
            self.admitted[2] += ol
            first = self.choose_hop(SOURCE, rid)
            if first is None:
                raise ValueError("the placement has no first-layer node: nothing can be routed")
            self.send(now, SOURCE, first, [(rid, pl, True)])

    def choose_hop(self, u, rid: int):
        """Extend request rid's path by u's next hop (reserving its KV there) and return the hop."""
        assert self.hop is not None
        v = self.hop.next_hop(u)
        if v is None:
            return None
        self.hop_counts[(u, v)] = self.hop_counts.get((u, v), 0) + 1
        if v != SINK:
            self.req_path[rid].append(v)
            self.kv_used[v] += self.req_need[rid] * self.k[v]
            self.kv_peak[v] = max(self.kv_peak[v], self.kv_used[v])
        return v

    # ------------------------------------------------------------------ nodes
    def take_batch(self, i: int) -> tuple[list, int, int]:
        """Node i's next iteration from its queue, in order: (batch, prompt tokens, decode tokens);
        what does not fit (or a prompt's unfinished chunk) stays queued."""
        if self.token_budget is not None:
            return self._take_budget(i, self.token_budget[i])
        batch, ptok, dtok, rest = [], 0, 0, []
        pcap, dmax = self.pcap[i], self.dmax[i]
        for it in self.queue[i]:
            if it[2] and self.chunked:  # chunked prefill: up to pcap prompt tokens per iteration
                done_tok = self.prompt_progress.get((i, it[0]), 0)
                take = min(it[1] - done_tok, pcap - ptok)
                if take <= 0:
                    rest.append(it)
                    continue
                ptok += take
                if done_tok + take == it[1]:
                    self.prompt_progress.pop((i, it[0]), None)
                    batch.append(it)
                else:
                    self.prompt_progress[(i, it[0])] = done_tok + take
                    rest.append(it)  # keeps its place at the head of the queue
            elif it[2]:
                if ptok == 0 or ptok + it[1] <= pcap:
                    batch.append(it)
                    ptok += it[1]
                else:
                    rest.append(it)
            elif dtok + 1 <= dmax:
                batch.append(it)
                dtok += 1
            else:
                rest.append(it)
        self.queue[i] = rest
        return batch, ptok, dtok

    def _take_budget(self, i: int, budget: int) -> tuple[list, int, int]:
        """One token budget: queued decodes first in queue order (at most the budget and the
        profile's decode maximum), then prompt chunks in queue order in what is left (at most the
        profile's prompt maximum); a prompt leaves the node once its last chunk ran."""
        queue = self.queue[i]
        decode_limit = min(budget, self.dmax[i])
        dtok = 0
        taken = [False] * len(queue)
        for n, it in enumerate(queue):
            if dtok == decode_limit:
                break
            if not it[2]:
                taken[n] = True
                dtok += 1
        prompt_room = min(budget - dtok, self.pcap[i])
        ptok = 0
        for n, it in enumerate(queue):
            if ptok == prompt_room:
                break
            if it[2]:
                done_tok = self.prompt_progress.get((i, it[0]), 0)
                take = min(it[1] - done_tok, prompt_room - ptok)
                ptok += take
                if done_tok + take == it[1]:
                    self.prompt_progress.pop((i, it[0]), None)
                    taken[n] = True
                else:
                    self.prompt_progress[(i, it[0])] = done_tok + take
        self.queue[i] = [it for n, it in enumerate(queue) if not taken[n]]
        return [it for n, it in enumerate(queue) if taken[n]], ptok, dtok

    def start_iter(self, now: float, i: int) -> None:
        if self.busy[i] or not self.queue[i]:
            return
        batch, ptok, dtok = self.take_batch(i)
        gp = self.gp[i]
        t = self.k[i] * ((gp.prompt_time(ptok) if ptok else 0.0) + (gp.decode_time(dtok) if dtok else 0.0))
        self.busy[i] = True
        if now >= self.warmup_s:
            self.busy_time[i] += min(t, max(0.0, self.duration_s - now))
            self.node_tokens[i] += ptok + dtok
            self.node_decodes[i] += dtok
            self.node_iters[i] += 1
        self.push(now + t, "done", (i, batch))

    # ------------------------------------------------------------------ events
    def at_sink(self, now: float, items: list) -> None:
        """Tokens reach the sink: count them, send the next decode pass or finish the request."""
        for rid, tok, is_prompt in items:
            self.link_start.pop((rid, SINK), None)
            if now >= self.warmup_s:
                self.stats["prompt" if is_prompt else "decode"] += tok
            if self.req_left[rid] > 0:
                self.req_left[rid] -= 1
                self.send(now, SOURCE, self.req_path[rid][0], [(rid, 1, False)])
            else:
                for j in self.req_path[rid]:
                    self.kv_used[j] -= self.req_need[rid] * self.k[j]
                del self.req_path[rid], self.req_left[rid], self.req_need[rid]
                if now >= self.warmup_s:
                    self.stats["done"] += 1
                self.try_admit(now)

    def iteration_done(self, now: float, i: int, batch: list) -> None:
        """Node i finished an iteration: forward each item to the next hop of its path."""
        self.busy[i] = False
        by_next: dict = {}
        for it in batch:
            path = self.req_path[it[0]]
            pos = path.index(i)
            if self.hop is not None:
                self.hop.observe(path[pos - 1] if pos else SOURCE, i, now - self.link_start.pop((it[0], i)))
                if it[2] and pos + 1 == len(path):  # a prompt leaves i: choose its next node now
                    nxt = self.choose_hop(i, it[0])
                    if nxt is None:
                        raise ValueError(f"node {i} has no next hop under this placement")
                    by_next.setdefault(nxt, []).append(it)
                    continue
            nxt = path[pos + 1] if pos + 1 < len(path) else SINK
            by_next.setdefault(nxt, []).append(it)
        for nxt, items in by_next.items():
            self.send(now, i, nxt, items)
        self.start_iter(now, i)

    def run(self, progress: bool) -> SimResult:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=round(self.duration_s), unit="sim s", desc="simulate plan", mininterval=0.5, leave=False)
        shown = 0
        if self.hop is not None:  # Helix's offline feeder: the initial queries 0.1 s apart
            for n in range(min(self.max_inflight, int(self.duration_s / INITIAL_FEED_SPACING_S) + 1)):
                self.push(n * INITIAL_FEED_SPACING_S, "release", None)
        else:
            self.try_admit(0.0)
        events = self.events
        while events:
            (now,), (kind, data) = events.pop()
            if now > self.duration_s:
                break
            if bar is not None and int(now) > shown:
                bar.update(int(now) - shown)
                shown = int(now)
            if kind == "release":
                self.released += 1
                self.try_admit(now)
            elif kind == "arrive":
                v, items = data
                if v == SINK:
                    self.at_sink(now, items)
                else:
                    self.queue[v].extend(items)
                    self.start_iter(now, v)
            else:  # an iteration finished
                self.iteration_done(now, *data)
        if bar is not None:
            bar.close()
        return self.result()

    def result(self) -> SimResult:
        nodes, admitted = self.nodes, self.admitted
        window = max(self.duration_s - self.warmup_s, 1e-9)
        pr, de = self.stats["prompt"] / window, self.stats["decode"] / window
        return SimResult(pr, de, pr + de, self.flow.value, self.stats["done"], self.duration_s,
                         {i: self.busy_time[i] / window for i in nodes}, {i: self.node_tokens[i] / window for i in nodes},
                         {i: self.node_decodes[i] / max(self.node_iters[i], 1) for i in nodes},
                         (admitted[1] / admitted[0], admitted[2] / admitted[0]) if admitted[0] else
                         (float("nan"), float("nan")), self.stats["unservable"], self.router_name,
                         *self.hop_stats())

    def hop_stats(self) -> tuple[float, dict]:
        """(peak KV reserved / KV entries over nodes, per-node next-hop shares of prompts) for hop routers."""
        if self.hop is None:
            return float("nan"), {}
        peak = max(self.kv_peak[i] / self.gp[i].kv_entries(self.k[i]) for i in self.nodes)
        sent: dict = {}
        for (u, v), n in self.hop_counts.items():
            sent.setdefault(u, {})[v] = n
        shares = {u: {v: n / sum(d.values()) for v, n in d.items()} for u, d in sent.items()}
        return peak, shares

