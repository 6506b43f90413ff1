"""Dynamic re-parallelization on preemptible nodes, after SpotServe (Miao et al., ASPLOS'24, §4-5;
artifact Hsword/SpotServe@832b29f, folder elastic-switch/): the parallelization controller, the
device mapper, instance start-up cost, and the transition plans of SpotServe and its two baselines.

Owns
- the performance of a configuration (`llmsched.sim.parallelism.ParallelConfig`: replicas x tensor x
  pipeline degrees) from a catalogue cost model
  (`config_perf`: one batch of `batch` requests, prompt then every output token, FasterTransformer
  style; pipeline stages run one after another on one micro-batch, plus a per-iteration hop);
- the controller (`choose_config`): the artifact's rule (scheduler/parallel/solver.py
  `StrategyOptimizer.solve`): among the configurations whose throughput reaches the required rate,
  the one with the lowest latency; if none does, the one with the highest throughput;
- the GPU layout of a configuration (`layout`: replicas on consecutive GPUs, tensor-parallel groups
  inside a node first, as the artifact's `group_tp`) and weight shards (a layer range x a slice of
  each weight matrix);
- the device mapper (`map_devices`): a maximum-weight bipartite matching (Kuhn-Munkres, as SpotServe's
  KMmatcher) of surviving GPUs to new positions by the weight bytes each already holds; the rest is
  sent by peers over the node link (bytes into the busiest node / link bandwidth, the artifact's
  `Switch.estimate_last_switch_transfer_time`) or, when no surviving GPU holds a piece, read from
  storage;
- start-up from storage (`load_s`): each GPU reads its shard at `STORAGE_LOAD_BPS`;
- `plan_transitions`: for one availability trace and one system ("spotserve", "reparallelization",
  "rerouting"), when each change is planned, when the old instances stop, when the new ones serve,
  which replicas keep running and whether in-flight requests keep their KV.
The engine side (moving requests, holding instances until ready) is `ReparallelController`.

Relation to `llmsched.sim.parallelism` (the configuration type and KV room come from there): that
module runs a pipeline as vLLM's p virtual engines with derived activation hand-offs; SpotServe's
FasterTransformer runs one batch at a time through the stages, so here a replica is one engine
instance and the hop is the artifact's measured per-stage time (`PP_HOP_S`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmsched.sim import cost as costs
from llmsched.sim.cost.base import BatchShape
from llmsched.sim.hardware import derived as hw
from llmsched.sim.hardware import get_gpu, get_model
from llmsched.sim.parallelism import ParallelConfig
from llmsched.sim.policy_api import ActingClusterView

# Storage -> GPU bandwidth of one loading stream: the artifact's only measured weight load,
# elastic-switch/tools/s3_load.log (16 tensors of the 20B checkpoint from S3, fp32: 1,736,718,336
# bytes in 13.22 s = 131.4 MB/s, first-request latency included). Each GPU reads its own shard.
STORAGE_LOAD_BPS = 1_736_718_336 / 13.220192670822144
# Node-to-node link: g4dn.12xlarge 50 Gb/s (AWS instance spec); the artifact's migration estimate uses
# the same 50,000 Mbps (global_server/Switch.py estimate_last_switch_transfer_time, inter_node_bd).
NODE_LINK_BPS = 50e9 / 8
# Fixed cost of any switch: scheduler/scheduler.py estimate_transfer_cost returns transfer + 0.5 s, and
# the baselines' est_cost is 0.5 s (switch_strategy): the old instances stop 0.5 s after the decision.
SWITCH_OVERHEAD_S = 0.5
# Pipeline hop per iteration and stage boundary, per model: pp_incr_comm of the artifact's T4 profiles
# (profile/T4-4x/megatron_{6.7B,h6144,h7168}_profile.json line 7: 0.07, 0.1, 0.15 ms).
PP_HOP_S = {"spotserve-6.7b": 0.07e-3, "spotserve-20b": 0.1e-3, "spotserve-30b": 0.15e-3}
SYSTEMS = ("spotserve", "reparallelization", "rerouting")
# Layer counts a pipeline degree must divide: the artifact pads the models to 36 / 48 / 48 layers
# (profile/T4-4x/megatron_{6.7B,h6144,h7168}_profile.json line 4, padded_layer_num; solver.py requires
# padded_layer_num % pp == 0). Other models: their own layer count.
PADDED_LAYERS = {"spotserve-6.7b": 36, "spotserve-20b": 48, "spotserve-30b": 48}


def per_replica(cfg: ParallelConfig) -> int:
    """GPUs of one replica (tp x pp)."""
    return cfg.tp * cfg.pp


@dataclass(frozen=True)
class ConfigPerf:
    config: ParallelConfig
    latency_s: float  # one batch of `batch` requests, prompt to last token
    throughput_rps: float  # dp * batch / latency_s


def pp_hop_s(model: str) -> float:
    return PP_HOP_S.get(get_model(model).name, 0.0)


def cost_spec(model: str, pp: int) -> str:
    """The engine cost string of one replica: roofline at its TP over all layers (the stages of one
    micro-batch run one after another) plus the pipeline hops of each iteration."""
    extra = (pp - 1) * pp_hop_s(model)
    return "roofline" if extra == 0 else f"roofline+extra:{extra!r}"


def batch_latency_s(model: str, gpu: str, tp: int, pp: int, batch: int, prompt: int, output: int) -> float:
    """Seconds for one FasterTransformer batch: a prefill of `batch` prompts, then output - 1 decode
    iterations of `batch` requests at growing context."""
    cm = costs.build(cost_spec(model, pp), model, gpu, tp)
    n = output
    ctx = prompt + np.arange(n - 1, dtype=np.int64)
    z = np.zeros(n, dtype=np.int64)
    pre = np.r_[batch * prompt, z[1:]].astype(np.int64)
    pairs = np.r_[batch * (prompt * (prompt + 1) // 2), z[1:]].astype(np.int64)
    dec = np.r_[0, np.full(n - 1, batch)].astype(np.int64)
    dctx = np.r_[0, batch * ctx].astype(np.int64)
    shape = BatchShape(pre, pairs, pre.copy(), dec, dctx, np.full(n, batch, dtype=np.int64))
    return float(np.sum(cm.iteration_times(shape)))


def fits(model: str, gpu: str, tp: int, pp: int, batch: int, seq_tokens: int) -> bool:
    """Weights of one shard plus the KV of a full batch fit in one GPU's memory."""
    m, g = get_model(model), get_gpu(gpu)
    per_gpu = hw.weight_bytes(m) / (tp * pp) + batch * seq_tokens * hw.kv_bytes_per_token(m) / (tp * pp)
    return per_gpu <= g.memory_bytes


def candidates(model: str, gpu: str, n_gpus: int, min_gpus: int, max_tp: int, batch: int,
               seq_tokens: int) -> list[tuple[int, int]]:
    """(tp, pp) pairs the controller may pick on n_gpus: tp a power of two up to max_tp dividing the
    heads, pp from ceil(min_gpus / tp) while tp * pp <= n_gpus and pp divides the layers (the artifact
    requires pp | padded_layer_num), and the shard fits."""
    m = get_model(model)
    out = []
    tp = 1
    while tp <= max_tp and tp <= n_gpus:
        if m.heads % tp == 0:
            pp = max(1, -(-min_gpus // tp))
            while tp * pp <= n_gpus:
                if PADDED_LAYERS.get(m.name, m.layers) % pp == 0 and fits(model, gpu, tp, pp, batch, seq_tokens):
                    out.append((tp, pp))
                pp += 1
        tp *= 2
    return out


def config_perf(model: str, gpu: str, n_gpus: int, tp: int, pp: int, batch: int, prompt: int,
                output: int) -> ConfigPerf:
    lat = batch_latency_s(model, gpu, tp, pp, batch, prompt, output)
    cfg = ParallelConfig(n_gpus // (tp * pp), tp, pp)
    return ConfigPerf(cfg, lat, cfg.replicas * batch / lat)


def choose_config(model: str, gpu: str, n_gpus: int, *, min_gpus: int, required_rps: float, batch: int,
                  prompt: int, output: int, max_tp: int = 4) -> ParallelConfig | None:
    """SpotServe's controller (artifact solver.py `StrategyOptimizer.solve`, §4.1): the lowest-latency
    configuration whose throughput reaches `required_rps`, else the highest-throughput one; None if
    fewer than `min_gpus` GPUs (or no configuration fits)."""
    if n_gpus < min_gpus:
        return None
    perfs = [config_perf(model, gpu, n_gpus, tp, pp, batch, prompt, output)
             for tp, pp in candidates(model, gpu, n_gpus, min_gpus, max_tp, batch, prompt + output)]
    if not perfs:
        return None
    ok = [p for p in perfs if p.throughput_rps >= required_rps]
    best = min(ok, key=lambda p: (p.latency_s, -p.throughput_rps)) if ok else max(perfs, key=lambda p: p.throughput_rps)
    return best.config


# ---------------------------------------------------------------- layout, shards, device mapper
Position = tuple[int, int, int]  # (replica, tp rank, pp stage)


def layout(cfg: ParallelConfig, gpus: Sequence[int]) -> dict[int, Position]:
    """GPU id -> position: replica r on gpus[r*tp*pp : (r+1)*tp*pp], stage i // tp, rank i % tp
    (a tensor-parallel group on neighbouring GPUs, i.e. inside a node). Spare GPUs get no position."""
    out: dict[int, Position] = {}
    k = per_replica(cfg)
    for r in range(cfg.replicas):
        for i in range(k):
            out[gpus[r * k + i]] = (r, i % cfg.tp, i // cfg.tp)
    return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def shard_bytes(model: str, tp: int, pp: int) -> float:
    """Weight bytes one GPU holds: its stage's layers, 1/tp of each weight matrix (embeddings not counted)."""
    m = get_model(model)
    return m.layers / pp * hw.params_per_layer(m) * m.bytes_per_param / tp


def shared_bytes(model: str, old: tuple[int, int, int, int], new: tuple[int, int, int, int]) -> float:
    """Weight bytes a GPU holding shard old = (tp, pp, rank, stage) already has of shard new."""
    m = get_model(model)
    (tp0, pp0, r0, s0), (tp1, pp1, r1, s1) = old, new
    layers = _overlap(s0 * m.layers / pp0, (s0 + 1) * m.layers / pp0, s1 * m.layers / pp1, (s1 + 1) * m.layers / pp1)
    frac = _overlap(r0 / tp0, (r0 + 1) / tp0, r1 / tp1, (r1 + 1) / tp1)
    return layers * frac * hw.params_per_layer(m) * m.bytes_per_param


@dataclass(frozen=True)
class WeightPlan:
    """The device mapper's answer: where each new position runs and what must move."""

    assign: dict[int, Position]  # GPU id -> new position
    reused_bytes: float  # already on the right GPU
    from_peers_bytes: float  # sent by surviving GPUs
    from_storage_bytes: float  # read from storage (no surviving copy)
    time_s: float  # weight movement, busiest node link or slowest storage read
    kept_replicas: tuple[tuple[int, int], ...] = field(default=())  # (old replica, new replica) unchanged


def _covered(model: str, holders: list[tuple[int, int, int, int]]) -> bool:
    """Do the shards `holders` (tp, pp, rank, stage) together hold every layer's every slice?"""
    m = get_model(model)
    for layer in range(m.layers):
        ivs = sorted((r / tp, (r + 1) / tp) for tp, pp, r, s in holders
                     if s * m.layers / pp <= layer < (s + 1) * m.layers / pp)
        reach = 0.0
        for a, b in ivs:
            if a > reach + 1e-12:
                break
            reach = max(reach, b)
        if reach < 1.0 - 1e-12:
            return False
    return True


def map_devices(model: str, old_cfg: ParallelConfig | None, old_assign: dict[int, Position],
                new_cfg: ParallelConfig, gpus: Sequence[int], node_of: dict[int, int],
                sources: Sequence[int], link_Bps: float = NODE_LINK_BPS,
                load_Bps: float = STORAGE_LOAD_BPS, match: bool = True) -> WeightPlan:
    """SpotServe's device mapper: place `new_cfg` on `gpus` maximising the weight bytes reused in
    place (Kuhn-Munkres over GPUs x positions; match=False: the plain layout, an ablation), then move
    the rest from the `sources` GPUs (alive until the switch) over the node links, or from storage
    if no source holds a piece."""
    positions = [(r, i % new_cfg.tp, i // new_cfg.tp) for r in range(new_cfg.replicas)
                 for i in range(per_replica(new_cfg))]
    gpus = list(gpus)

    def old_shard(g: int) -> tuple[int, int, int, int] | None:
        if old_cfg is None or g not in old_assign:
            return None
        _, rank, stage = old_assign[g]
        return (old_cfg.tp, old_cfg.pp, rank, stage)

    def new_shard(p: Position) -> tuple[int, int, int, int]:
        return (new_cfg.tp, new_cfg.pp, p[1], p[2])

    reuse = np.zeros((len(gpus), len(positions)))
    for i, g in enumerate(gpus):
        o = old_shard(g)
        if o is not None:
            for j, p in enumerate(positions):
                reuse[i, j] = shared_bytes(model, o, new_shard(p))
    if match:
        # ties: an old replica whose GPUs all survive keeps its place (the k-th such replica becomes new
        # replica k, same ranks and stages), so that it can keep serving through the switch
        bonus = np.zeros_like(reuse)
        if old_cfg is not None and (old_cfg.tp, old_cfg.pp) == (new_cfg.tp, new_cfg.pp):
            alive = set(gpus)
            intact = [r for r in range(old_cfg.replicas)
                      if all(g in alive for g, (rr, _, _) in old_assign.items() if rr == r)]
            slot = {r: k for k, r in enumerate(intact) if k < new_cfg.replicas}
            col = {p: j for j, p in enumerate(positions)}
            for i, g in enumerate(gpus):
                if g in old_assign and old_assign[g][0] in slot:
                    r, rank, stage = old_assign[g]
                    bonus[i, col[(slot[r], rank, stage)]] = 1e-6 * shard_bytes(model, new_cfg.tp, new_cfg.pp)
        # imported here: scipy.optimize costs ~0.5 s to import, and most runs never reconfigure
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(reuse + bonus, maximize=True)
        assign = {gpus[i]: positions[j] for i, j in zip(rows, cols)}
    else:
        assign = layout(new_cfg, gpus)
    need = shard_bytes(model, new_cfg.tp, new_cfg.pp)
    holders = [s for g in sources if (s := old_shard(g)) is not None]
    from_peers = _covered(model, holders) if holders else False
    idx = {g: i for i, g in enumerate(gpus)}
    pos_idx = {p: j for j, p in enumerate(positions)}
    reused = moved = 0.0
    per_node: dict[int, float] = {}
    per_gpu_storage = 0.0
    for g, p in assign.items():
        got = reuse[idx[g], pos_idx[p]]
        reused += got
        rest = need - got
        if rest <= 1e-6 * need:
            continue
        moved += rest
        if from_peers:
            per_node[node_of[g]] = per_node.get(node_of[g], 0.0) + rest
        else:
            per_gpu_storage = max(per_gpu_storage, rest)
    t = max(per_node.values(), default=0.0) / link_Bps if from_peers else per_gpu_storage / load_Bps
    kept = _kept_replicas(old_cfg, old_assign, new_cfg, assign)
    return WeightPlan(assign, reused, moved if from_peers else 0.0,
                      0.0 if from_peers else moved, t, kept)


def _kept_replicas(old_cfg: ParallelConfig | None, old_assign: dict[int, Position], new_cfg: ParallelConfig,
                   assign: dict[int, Position]) -> tuple[tuple[int, int], ...]:
    """New replicas that are an old replica unchanged: same (tp, pp), every GPU in the same position."""
    if old_cfg is None or (old_cfg.tp, old_cfg.pp) != (new_cfg.tp, new_cfg.pp):
        return ()
    by_new: dict[int, list[int]] = {}
    for g, (r, _, _) in assign.items():
        by_new.setdefault(r, []).append(g)
    kept = []
    for r, gs in by_new.items():
        olds = {old_assign[g][0] for g in gs if g in old_assign}
        if len(olds) == 1 and all(g in old_assign and old_assign[g][1:] == assign[g][1:] for g in gs):
            o = olds.pop()
            if sum(1 for x in old_assign.values() if x[0] == o) == len(gs):
                kept.append((o, r))
    return tuple(sorted(kept))


def load_s(model: str, cfg: ParallelConfig, load_Bps: float = STORAGE_LOAD_BPS) -> float:
    """Start-up of a replica from storage: every GPU reads its shard in parallel."""
    return shard_bytes(model, cfg.tp, cfg.pp) / load_Bps


def kv_context_s(model: str, tokens: float, link_Bps: float = NODE_LINK_BPS) -> float:
    """Seconds to send the KV of `tokens` tokens (all layers) over one node link."""
    return tokens * hw.kv_bytes_per_token(get_model(model)) / link_Bps


# ---------------------------------------------------------------- transitions over a trace
@dataclass(frozen=True)
class Transition:
    """One change of the serving configuration.

    t_plan: the system learns of it (preemption notice, or the node's arrival); t_stop: the
    replicas in `close` stop and their requests move; t_ready: the replicas in `start` serve;
    keep_kv: in-flight requests keep their KV (SpotServe's stateful recovery) or recompute.
    `keep` maps replicas that run on untouched (old id -> new id).
    """

    t_plan: float
    t_stop: float
    t_ready: float
    config: ParallelConfig | None
    close: tuple[int, ...]
    start: tuple[int, ...]
    keep: tuple[tuple[int, int], ...]
    keep_kv: bool
    weights_s: float = 0.0
    kv_s: float = 0.0
    moved_bytes: float = 0.0
    from_storage: bool = False


@dataclass(frozen=True)
class Setup:
    """What the controller needs: the model, GPU type, GPUs per node, the artifact's minimum GPUs,
    batch and request shape, required throughput, the grace period, and the link/storage rates."""

    model: str
    gpu: str
    gpus_per_node: int
    min_gpus: int
    batch: int
    prompt: int
    output: int
    required_rps: float
    grace_s: float
    max_tp: int = 4
    link_Bps: float = NODE_LINK_BPS
    load_Bps: float = STORAGE_LOAD_BPS
    match: bool = True  # the device mapper's matching (False: plain layout; ablation)
    overlap: bool = True  # SpotServe moves weights while the old replicas still serve (ablation: False)
    stateful: bool = True  # SpotServe's in-flight requests keep their KV (ablation: False, recomputed)

    def choose(self, n_gpus: int) -> ParallelConfig | None:
        return choose_config(self.model, self.gpu, n_gpus, min_gpus=self.min_gpus, required_rps=self.required_rps,
                             batch=self.batch, prompt=self.prompt, output=self.output, max_tp=self.max_tp)


def _gpus_of(nodes: Iterable[int], per_node: int) -> list[int]:
    return [n * per_node + k for n in sorted(nodes) for k in range(per_node)]


def trace_events(adds: Sequence[tuple[float, int]], removes: Sequence[tuple[float, int]],
                 grace_s: float) -> list[tuple[float, float, str, tuple[int, ...]]]:
    """(t_plan, t_event, kind, nodes) per trace event: a removal at t is noticed at t - grace (the node
    serves until t: the artifact acts on each event grace_period early, scheduler.py run); an addition is
    usable at t (the artifact waits the grace period after the early notice for new nodes)."""
    ev: dict[tuple[float, str], list[int]] = {}
    for t, j in adds:
        ev.setdefault((t, "add"), []).append(j)
    for t, j in removes:
        ev.setdefault((t, "remove"), []).append(j)
    out = []
    for (t, kind), nodes in sorted(ev.items()):
        out.append((max(t - grace_s, 0.0) if kind == "remove" else t, t, kind, tuple(sorted(nodes))))
    return sorted(out)


@dataclass
class _Plan:
    """The planner's running state: configuration, GPU positions, engine replica id per replica index."""

    cfg: ParallelConfig
    assign: dict[int, Position]
    ids: list[int]
    next_id: int

    def fresh(self, n: int) -> list[int]:
        out = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        return out


@dataclass(frozen=True)
class _Event:
    t_plan: float
    t_ev: float
    kind: str  # "add" | "remove"
    gpus: list[int]  # GPUs available after the event
    node_of: dict[int, int]


def _rerouting_step(s: Setup, st: _Plan, e: _Event) -> Transition:
    """The artifact's "baseline-triton": pipelines with a preempted GPU close at the notice (+0.5 s) and
    their requests restart elsewhere; whole pipelines of free GPUs start from storage (adds: at the
    node's arrival)."""
    cfg = st.cfg
    broken = sorted({st.assign[g][0] for g in st.assign if g not in set(e.gpus)})
    alive = [r for r in range(cfg.replicas) if r not in broken]
    free = [g for g in e.gpus if g not in st.assign or st.assign[g][0] in broken]
    n_new = len(free) // per_replica(cfg)
    new_cfg = ParallelConfig(len(alive) + n_new, cfg.tp, cfg.pp)
    assign = {g: (k, rank, stage) for k, r in enumerate(alive) for g, (rr, rank, stage) in st.assign.items() if rr == r}
    started = layout(ParallelConfig(n_new, cfg.tp, cfg.pp), free[: n_new * per_replica(cfg)])
    assign |= {g: (len(alive) + r, rank, stage) for g, (r, rank, stage) in started.items()}
    t_stop = e.t_plan + SWITCH_OVERHEAD_S if broken else e.t_ev
    w = load_s(s.model, new_cfg, s.load_Bps) if n_new else 0.0
    t_start = e.t_ev if e.kind == "add" else t_stop
    new_ids = st.fresh(n_new)
    tr = Transition(e.t_plan, t_stop, t_start + w, new_cfg, tuple(st.ids[r] for r in broken), tuple(new_ids),
                    tuple((st.ids[r], st.ids[r]) for r in alive), False, w, 0.0,
                    shard_bytes(s.model, cfg.tp, cfg.pp) * len(started), bool(n_new))
    st.ids, st.cfg, st.assign = [st.ids[r] for r in alive] + new_ids, new_cfg, assign
    return tr


def _reparallelization_step(s: Setup, st: _Plan, e: _Event, chosen: ParallelConfig) -> Transition:
    """The artifact's "baseline": every change closes all replicas at the decision (+0.5 s) and restarts
    the new configuration from the checkpoint (restart_param_client); requests in flight recompute."""
    w = load_s(s.model, chosen, s.load_Bps)
    t_stop = e.t_plan + SWITCH_OVERHEAD_S
    new_ids = st.fresh(chosen.replicas)
    tr = Transition(e.t_plan, t_stop, t_stop + w, chosen, tuple(st.ids), tuple(new_ids), (), False, w, 0.0,
                    shard_bytes(s.model, chosen.tp, chosen.pp) * chosen.gpus, True)
    st.ids, st.cfg, st.assign = new_ids, chosen, layout(chosen, e.gpus)
    return tr


def _spotserve_step(s: Setup, st: _Plan, e: _Event, chosen: ParallelConfig) -> Transition:
    """SpotServe: the device mapper keeps what it can in place and moves the rest from peers; untouched
    replicas run on; the others stop as late as the grace period allows and hand over their requests
    with the KV (stateful recovery)."""
    plan = map_devices(s.model, st.cfg, st.assign, chosen, e.gpus, e.node_of, sources=sorted(st.assign),
                       link_Bps=s.link_Bps, load_Bps=s.load_Bps, match=s.match)
    keep_old = {o for o, _ in plan.kept_replicas}
    moving = [r for r in range(st.cfg.replicas) if r not in keep_old]
    # the KV to hand over: the artifact's estimate, a full batch of prompt + output tokens per replica
    kv_s = kv_context_s(s.model, s.batch * (s.prompt + s.output) * len(moving), s.link_Bps) if moving else 0.0
    w = plan.time_s
    lead = 0.0 if s.overlap else w
    if e.kind == "remove":
        # decode on through the grace period; stop just in time to send the KV before the kill
        t_stop = max(e.t_plan + w - lead, e.t_ev - kv_s - lead)
    else:
        t_stop = e.t_ev + w - lead
    t_ready = max(t_stop, e.t_plan + w) + kv_s + lead
    rep = {r: st.ids[o] for o, r in plan.kept_replicas}
    started = []
    for r in range(chosen.replicas):
        if r not in rep:
            rep[r] = st.fresh(1)[0]
            started.append(rep[r])
    tr = Transition(e.t_plan, t_stop, t_ready, chosen, tuple(st.ids[r] for r in moving), tuple(started),
                    tuple((st.ids[o], st.ids[o]) for o, _ in plan.kept_replicas), s.stateful, w, kv_s,
                    plan.from_peers_bytes + plan.from_storage_bytes, plan.from_storage_bytes > 0)
    st.ids, st.cfg, st.assign = [rep[r] for r in range(chosen.replicas)], chosen, plan.assign
    return tr


def plan_transitions(system: str, setup: Setup, initial: Sequence[int], adds: Sequence[tuple[float, int]],
                     removes: Sequence[tuple[float, int]]) -> tuple[ParallelConfig, list[Transition]]:
    """The initial configuration and every transition of `system` over an availability trace (node ids;
    node n holds GPUs n*gpus_per_node ...). See the module docstring and docs/setups/spotserve.md."""
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}")
    s, per = setup, setup.gpus_per_node
    nodes = set(initial)
    if system == "rerouting":
        # the artifact's Triton-style baseline fixes (tp, pp) from a solve over every host of the hostfile
        # (scheduler.py inspect_init_strategy; MAX_NNODES = 10 nodes) and only changes dp
        fixed = s.choose(min(len(nodes | {j for _, j in adds}), 10) * per)
        cfg0 = None if fixed is None else ParallelConfig(len(nodes) * per // per_replica(fixed), fixed.tp, fixed.pp)
    else:
        cfg0 = s.choose(len(nodes) * per)
    if cfg0 is None:
        raise ValueError("the trace starts with fewer GPUs than the model needs")
    st = _Plan(cfg0, layout(cfg0, _gpus_of(nodes, per)), list(range(cfg0.replicas)), cfg0.replicas)
    out: list[Transition] = []
    for t_plan, t_ev, kind, ev_nodes in trace_events(adds, removes, s.grace_s):
        before = set(nodes)
        nodes = nodes | set(ev_nodes) if kind == "add" else nodes - set(ev_nodes)
        e = _Event(t_plan, t_ev, kind, _gpus_of(nodes, per), {g: g // per for g in _gpus_of(before | nodes, per)})
        if system == "rerouting":
            out.append(_rerouting_step(s, st, e))
            continue
        chosen = s.choose(len(e.gpus))
        if chosen is None:
            raise ValueError(f"too few GPUs ({len(e.gpus)}) after the event at {t_ev} s")
        step = _reparallelization_step if system == "reparallelization" else _spotserve_step
        out.append(step(s, st, e, chosen))
    return cfg0, out


def replica_groups(init: ParallelConfig, transitions: Sequence[Transition]) -> list[tuple[int, int, int]]:
    """Engine instance slots, one per replica id ever used: (first id, tp, pp) runs in id order."""
    shapes = [(init.tp, init.pp)] * init.replicas
    for tr in transitions:
        assert tr.config is not None
        shapes += [(tr.config.tp, tr.config.pp)] * len(tr.start)
    return [(i, tp, pp) for i, (tp, pp) in enumerate(shapes)]


# ---------------------------------------------------------------- engine side
class ReparallelController:
    """Applies a plan to the engine at the router's ticks: instance j is replica id j. At t_stop the
    closed replicas go down and every request on them moves to a started (or surviving) replica:
    with keep_kv a decoding request keeps its KV and resumes when the destination is ready (a
    stop-and-copy move whose downtime lasts until then), otherwise it restarts there (KV recomputed);
    started replicas come up at t_stop and serve from t_ready (`set_ready_at`)."""

    def __init__(self, init: ParallelConfig, transitions: Sequence[Transition]) -> None:
        self.transitions = sorted(transitions, key=lambda t: t.t_stop)
        self.active: set[int] = set(range(init.replicas))
        self._next = 0
        self._started = False
        self.stats = {"switches": 0, "restarts": 0, "kv_moves": 0, "lost_kv_tokens": 0, "moved_kv_tokens": 0}

    def live(self, j: int) -> bool:
        return j in self.active

    def step(self, view: ActingClusterView) -> None:
        if not self._started:
            for j in range(view.n_instances):
                view.set_down(j, j not in self.active)
            self._started = True
        while self._next < len(self.transitions) and self.transitions[self._next].t_stop <= view.now:
            self._apply(view, self.transitions[self._next])
            self._next += 1

    def _apply(self, view: ActingClusterView, tr: Transition) -> None:
        now = view.now
        for j in tr.start:
            view.set_down(j, False)
            view.set_ready_at(j, tr.t_ready)
            self.active.add(j)
        for j in tr.close:
            self.active.discard(j)
        self.stats["switches"] += 1
        dests = list(tr.start) or sorted(self.active)
        load = {j: len(view.instance(j).waiting) + len(view.instance(j).running) for j in dests}
        for j in tr.close:
            s = view.instance(j)
            for rid in (*s.running, *s.ready, *s.waiting):
                dst = min(dests, key=lambda x: (load[x], x))
                moved = False
                if tr.keep_kv and rid in s.decoding:
                    moved = view.migrate(rid, dst, max(tr.t_ready - now, 0.0))
                    if moved:
                        self.stats["kv_moves"] += 1
                        self.stats["moved_kv_tokens"] += view.kv_tokens(rid)
                if not moved:
                    kv = view.kv_tokens(rid) if rid not in s.waiting else 0
                    if view.restart(rid, dst):
                        self.stats["restarts"] += 1
                        self.stats["lost_kv_tokens"] += kv
                load[dst] += 1
            view.set_down(j, True)

