"""Placement specs: the heterogeneous cluster (GPU nodes, NICs, links, coordinator) and the model.

Plain frozen dataclasses in SI units (bytes, bytes/s, seconds); readers in `llmsched.theory.placement.io`
convert Helix `.ini` files and our own TOML into these once. Nothing here solves anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE = "source"
SINK = "sink"


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only model split by layers.

    token_bytes: bytes of one token id sent from/to the coordinator (Helix: 2 B, `llama2_70b.py` L133)
    activation_bytes: bytes of one token's hidden state between pipeline stages (hidden x 2 B, L134)
    layer_param_bytes: weight bytes of one transformer layer (LLaMA-2-70B 1.53 GB, L135)
    profile_key: name of the per-layer profiles in `data/helix/tables/bs2time_all.csv`
    """

    name: str
    num_layers: int
    token_bytes: float
    activation_bytes: float
    layer_param_bytes: float
    profile_key: str


# Helix's per-model constants (`simulator/model_manager/{llama2_70b,llama1_30b}/*.py` L133-L135; see
# data/helix/README.md): 2-byte token ids, fp16 activations, and its per-layer weight size (Helix's
# own rounding, kept so our objectives stay comparable with Helix's). Layers and hidden size come
# from the one model catalogue (`llmsched.sim.hardware`).
HELIX_TOKEN_BYTES = 2.0
HELIX_LAYER_PARAM_BYTES = {"llama-2-70b": 1.53e9, "llama-1-30b": 1.0e9}
HELIX_PROFILE_KEYS = {"llama-2-70b": "LLaMA-2-70B", "llama-1-30b": "LLaMA-1-30B"}


def placement_model(name: str) -> ModelSpec:
    """The placement view of a catalogue model that Helix profiled."""
    from llmsched.sim.hardware import get_model

    m = get_model(name)
    return ModelSpec(m.name, m.layers, HELIX_TOKEN_BYTES, float(m.hidden * m.bytes_per_param),
                     HELIX_LAYER_PARAM_BYTES[m.name], HELIX_PROFILE_KEYS[m.name])


MODELS: dict[str, ModelSpec] = {name: placement_model(name) for name in HELIX_PROFILE_KEYS}


@dataclass(frozen=True)
class GpuNode:
    """One compute node (a machine with one or more GPUs acting as one pipeline stage)."""

    index: int
    gpu_type: str  # "A100", "L4", "T4x2", ...
    vram_bytes: float
    nic_in_Bps: float
    nic_out_Bps: float


@dataclass(frozen=True)
class Link:
    """A network link; `src`/`dst` are node indices or SOURCE/SINK. Compute-compute links are
    usable in both directions with the full bandwidth each way (Helix `ilp_layout.py`: "links here
    are bidirectional")."""

    src: int | str
    dst: int | str
    bandwidth_Bps: float
    latency_s: float


@dataclass(frozen=True)
class PlacementCluster:
    name: str
    nodes: tuple[GpuNode, ...]
    links: tuple[Link, ...]
    source_nic_out_Bps: float = 10e9
    sink_nic_in_Bps: float = 10e9
    meta: tuple[tuple[str, str], ...] = field(default=())

    @property
    def n(self) -> int:
        return len(self.nodes)

    def type_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for nd in self.nodes:
            out[nd.gpu_type] = out.get(nd.gpu_type, 0) + 1
        return out

    def directed_edges(self, model: ModelSpec) -> list[tuple[int | str, int | str, float, float]]:
        """All usable directed edges as (u, v, capacity tokens/s, latency s).

        Capacity = bandwidth / token_bytes on coordinator links and bandwidth / activation_bytes
        between GPUs (Helix `ilp_layout.py` L262-L269)."""
        out = []
        for ln in self.links:
            if ln.src == SOURCE or ln.dst == SINK:
                out.append((ln.src, ln.dst, ln.bandwidth_Bps / model.token_bytes, ln.latency_s))
            else:
                cap = ln.bandwidth_Bps / model.activation_bytes
                out.append((ln.src, ln.dst, cap, ln.latency_s))
                out.append((ln.dst, ln.src, cap, ln.latency_s))
        return out

    def subset(self, keep: list[int], name: str | None = None) -> PlacementCluster:
        """The sub-cluster on the nodes `keep` (renumbered 0..), keeping the links among them."""
        remap = {old: new for new, old in enumerate(keep)}
        nodes = tuple(
            GpuNode(remap[nd.index], nd.gpu_type, nd.vram_bytes, nd.nic_in_Bps, nd.nic_out_Bps)
            for nd in self.nodes if nd.index in remap
        )
        nodes = tuple(sorted(nodes, key=lambda x: x.index))
        links = []
        for ln in self.links:
            a = ln.src if ln.src == SOURCE else remap.get(ln.src)  # type: ignore[arg-type]
            b = ln.dst if ln.dst == SINK else remap.get(ln.dst)  # type: ignore[arg-type]
            if a is None or b is None:
                continue
            links.append(Link(a, b, ln.bandwidth_Bps, ln.latency_s))
        return PlacementCluster(name or f"{self.name}-sub", nodes, tuple(links),
                                self.source_nic_out_Bps, self.sink_nic_in_Bps, self.meta)
