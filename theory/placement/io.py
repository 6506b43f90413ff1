"""Readers: Helix cluster `.ini` + machine profiles, Helix layout solutions, and our own TOML.

Converts to SI once. Helix unit names (`simulator/event_simulator/utils.py` L15-L25) are *bytes*
based: `mbps` = 1e6 B/s, `gbps` = 1e9 B/s, `GB` = 1e9 B, `MilliSec` = 1e-3 s (see
shared/reference/README.md, "Units convention in Helix"). Bad input raises `InputError`.
"""

from __future__ import annotations

import ast
import configparser
import operator
import tomllib
from pathlib import Path

from llmsched.sim.errors import InputError
from llmsched.sim.paths import DATA_DIR as BUNDLED_DATA_DIR
from llmsched.theory.placement.spec import SINK, SOURCE, GpuNode, Link, PlacementCluster

DATA_DIR = BUNDLED_DATA_DIR / "helix"

# Helix `simulator/event_simulator/utils.py` L15-L25 (bytes-based despite the names).
HELIX_UNITS = {
    "kbps": 1e3, "mbps": 1e6, "gbps": 1e9, "Byte": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9,
    "Sec": 1.0, "MilliSec": 1e-3,
}

NAMED_CLUSTERS = {
    "single24": "single24.ini",
    "3cluster24": "3cluster24.ini",
    "cluster42": "cluster42.ini",
    "cluster10": "cluster10.ini",
    # the link sets Helix's MILP actually saw after its pruning (AE layout folders)
    "3cluster24-helixpruned": "../layouts/3cluster24/pruned_cluster.ini",
    "cluster42-helixpruned": "../layouts/cluster42/pruned_cluster.ini",
}

_OPS = {ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Add: operator.add,
        ast.Sub: operator.sub}


def eval_units(expr: str, source: str = "ini", field: str = "") -> float:
    """Evaluate a Helix value like `1000 * mbps` or `12.5*mbps` (numbers, unit names, + - * /)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in HELIX_UNITS:
            return HELIX_UNITS[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(ast.dump(node))

    try:
        return ev(ast.parse(expr.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        raise InputError(source, field, f"cannot read value {expr!r}",
                         "write a number or NUMBER * unit with unit in " + ", ".join(HELIX_UNITS)) from None


def _read_ini(path: Path) -> configparser.ConfigParser:
    if not path.is_file():
        raise InputError(str(path), "", "file not found", "pass an existing Helix .ini file")
    cp = configparser.ConfigParser()
    try:
        cp.read(path)
    except configparser.Error as exc:
        raise InputError(str(path), "", f"not a valid INI file ({exc})") from None
    return cp


def read_machine_profiles(path: Path) -> dict[str, dict[str, float]]:
    """Machine type -> {nic_in_Bps, nic_out_Bps, vram_bytes} from a Helix machine-profile ini."""
    cp = _read_ini(path)
    out = {}
    for sec in cp.sections():
        try:
            out[sec] = {
                "nic_in_Bps": eval_units(cp[sec]["inbound_nic_speed"], str(path), f"{sec}.inbound_nic_speed"),
                "nic_out_Bps": eval_units(cp[sec]["outbound_nic_speed"], str(path), f"{sec}.outbound_nic_speed"),
                "vram_bytes": eval_units(cp[sec]["vram_size"], str(path), f"{sec}.vram_size"),
            }
        except KeyError as exc:
            raise InputError(str(path), sec, f"missing key {exc}", "add inbound_nic_speed, "
                             "outbound_nic_speed and vram_size") from None
    return out


def read_helix_cluster(path: str | Path, machine_profiles: str | Path | None = None,
                       name: str | None = None) -> PlacementCluster:
    """A Helix cluster `.ini` (`[ComputeNode-i] type=...`, `[Link-a-b] bandwidth=..., latency=...`)."""
    path = Path(path)
    prof_path = Path(machine_profiles) if machine_profiles else DATA_DIR / "configs" / "machine_profiles.ini"
    profiles = read_machine_profiles(prof_path)
    cp = _read_ini(path)
    src = str(path)
    try:
        n = int(eval_units(cp["NodeNames"]["total_compute_nodes"], src, "NodeNames.total_compute_nodes"))
    except KeyError:
        raise InputError(src, "NodeNames.total_compute_nodes", "missing",
                         "a Helix cluster file starts with [NodeNames] total_compute_nodes=N") from None
    nodes = []
    for i in range(n):
        sec = f"ComputeNode-{i}"
        if sec not in cp:
            raise InputError(src, sec, "missing section", f"define [{sec}] with type=...")
        gtype = cp[sec].get("type", "").strip()
        if gtype not in profiles:
            raise InputError(src, f"{sec}.type", f"unknown machine type {gtype!r}",
                             f"use one of {sorted(k for k in profiles if not k.endswith('Node'))}")
        p = profiles[gtype]
        nodes.append(GpuNode(i, gtype, p["vram_bytes"], p["nic_in_Bps"], p["nic_out_Bps"]))
    links = []
    for sec in cp.sections():
        if not sec.startswith("Link-"):
            continue
        parts = sec.split("-")
        if len(parts) != 3:
            raise InputError(src, sec, "link name must be Link-<from>-<to>")
        a: int | str = parts[1] if parts[1] == SOURCE else int(parts[1])
        b: int | str = parts[2] if parts[2] == SINK else int(parts[2])
        for end in (a, b):
            if isinstance(end, int) and not 0 <= end < n:
                raise InputError(src, sec, f"node {end} out of range 0..{n - 1}")
        bw = eval_units(cp[sec]["bandwidth"], src, f"{sec}.bandwidth")
        lat = eval_units(cp[sec]["latency"], src, f"{sec}.latency")
        if bw <= 0 or lat < 0:
            raise InputError(src, sec, "bandwidth must be > 0 and latency >= 0")
        links.append(Link(a, b, bw, lat))
    return PlacementCluster(
        name or path.stem, tuple(nodes), tuple(links),
        source_nic_out_Bps=profiles.get("SourceNode", {}).get("nic_out_Bps", 10e9),
        sink_nic_in_Bps=profiles.get("SinkNode", {}).get("nic_in_Bps", 10e9),
        meta=(("source_file", str(path)),),
    )


def read_toml_cluster(path: str | Path) -> PlacementCluster:
    """Our own TOML cluster format (SI units; see docs/placement.md):

    name = "toy"
    [[nodes]]  gpu = "A100", count = 2, vram_bytes = 40e9, nic_in_Bps = 10e9, nic_out_Bps = 10e9
    [links]    bandwidth_Bps = 1e9, latency_s = 1e-3   # full mesh incl. coordinator (source/sink)
    [[links.override]] src = 0, dst = 1, bandwidth_Bps = 1e8, latency_s = 0.05
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError(src, "", "file not found", "pass an existing .toml file")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(src, "", f"not valid TOML ({exc})") from None
    raw_nodes = d.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise InputError(src, "nodes", "needs at least one [[nodes]] table")
    nodes = []
    for j, rn in enumerate(raw_nodes):
        for key in ("gpu", "vram_bytes"):
            if key not in rn:
                raise InputError(src, f"nodes[{j}].{key}", "missing")
        for _ in range(int(rn.get("count", 1))):
            nodes.append(GpuNode(len(nodes), str(rn["gpu"]), float(rn["vram_bytes"]),
                                 float(rn.get("nic_in_Bps", 10e9)), float(rn.get("nic_out_Bps", 10e9))))
    lk = d.get("links", {})
    bw = float(lk.get("bandwidth_Bps", 1e9))
    lat = float(lk.get("latency_s", 1e-3))
    if bw <= 0 or lat < 0:
        raise InputError(src, "links", "bandwidth_Bps must be > 0 and latency_s >= 0")
    over = {}
    for j, o in enumerate(lk.get("override", [])):
        try:
            key = (o["src"], o["dst"])
            over[key] = (float(o["bandwidth_Bps"]), float(o.get("latency_s", lat)))
        except KeyError as exc:
            raise InputError(src, f"links.override[{j}]", f"missing {exc}") from None
    n = len(nodes)
    links = []
    pairs: list[tuple[int | str, int | str]] = [(SOURCE, i) for i in range(n)]
    pairs += [(i, j) for i in range(n) for j in range(i + 1, n)]
    pairs += [(i, SINK) for i in range(n)]
    for a, b in pairs:
        b_, l_ = over.get((a, b), over.get((b, a), (bw, lat)))
        links.append(Link(a, b, b_, l_))
    return PlacementCluster(str(d.get("name", path.stem)), tuple(nodes), tuple(links),
                            float(d.get("source_nic_out_Bps", 10e9)), float(d.get("sink_nic_in_Bps", 10e9)),
                            meta=(("source_file", src),))


def load_cluster(name_or_path: str) -> PlacementCluster:
    """A named Helix cluster (single24, 3cluster24, cluster42, cluster10) or a .ini/.toml path."""
    if name_or_path in NAMED_CLUSTERS:
        return read_helix_cluster(DATA_DIR / "configs" / NAMED_CLUSTERS[name_or_path], name=name_or_path)
    p = Path(name_or_path)
    if p.suffix == ".toml":
        return read_toml_cluster(p)
    if p.suffix == ".ini":
        return read_helix_cluster(p)
    raise InputError("--cluster", name_or_path, "unknown cluster",
                     f"use one of {', '.join(NAMED_CLUSTERS)} or a .ini/.toml path")


def read_helix_layout(path: str | Path, num_nodes: int) -> dict[int, tuple[int, int]]:
    """A Helix layout (`[Settings] offset`, `[Solution] compute_node_k=[layers]`) as
    node index -> (start layer, number of layers); unused nodes are absent."""
    path = Path(path)
    cp = _read_ini(path)
    try:
        offset = int(cp["Settings"]["offset"])
        sol = cp["Solution"]
    except KeyError:
        raise InputError(str(path), "Settings/Solution", "missing section") from None
    out = {}
    for key, val in sol.items():
        k = int(key.rsplit("_", 1)[1]) - offset
        layers = ast.literal_eval(val)
        if not 0 <= k < num_nodes:
            raise InputError(str(path), key, f"node {k} out of range")
        if not layers:
            continue
        lo, hi = min(layers), max(layers)
        if sorted(layers) != list(range(lo, hi + 1)):
            raise InputError(str(path), key, "layers are not contiguous")
        out[k] = (lo, hi - lo + 1)
    return out


def write_helix_layout(path: str | Path, assignment: dict[int, tuple[int, int]]) -> None:
    """Write node -> (start, count) in Helix's layout ini format (offset 2)."""
    lines = ["[Settings]", "offset=2", "", "[Solution]"]
    for i in sorted(assignment):
        s, k = assignment[i]
        lines.append(f"compute_node_{i + 2}={list(range(s, s + k))}")
    Path(path).write_text("\n".join(lines) + "\n")
