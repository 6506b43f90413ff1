"""EPD's encode-stage router (Singh et al., ICML 2025, arXiv 2501.05460): intra-request parallelism.

IRP (paper Sec. 3.2.2) "partitions a single request's image patches across multiple encoding
workers in a data-parallel fashion"; each worker encodes its share and sends the embeddings to
prefill, which starts once all have arrived (the engine's part). Assignment of a request to
encoders follows the paper's App. D options ("Round-Robin or Least-Loaded First"): we take the
least-loaded encoders, load = tiles queued or in service, ties to the lowest index.

Our choices (docs/policies.md): the unit of the split is `unit` = "tile" (default; MiniCPM-V's
slice, the paper's "patch", as Sec. 3.2.2 words it) or "image" (whole images, as the authors'
artifact shards a request: vbdi/epdserve `epdserve/engine_encoding.py` `shard_requests` makes one
sub-request per image); a request is split over `degree` encoders (default: all of the pool,
capped by its number of units), as evenly as possible, the larger shares to the least loaded.
With "image", the request's tiles are spread evenly over its images (the workload records only
the total; images of one request share a resolution in the EPD workloads). degree = 1 is EPD
without IRP (the paper's "w/o IRP" ablation, Table 4).
"""

from __future__ import annotations

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.encode import EncodeView
from llmsched.sim.params import declare, integer, one_of
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "epd-irp")
class IntraRequestParallel:
    """EPD encode router: split a request's image tiles (or whole images) over the `degree` least-loaded encoders (IRP; degree=1: whole request to one); as a request router, least outstanding tokens.

    degree: encoders one request is spread over (None = every encoder of the pool).
    unit: what is split: "tile" (the paper's patches) or "image" (the artifact's shards).
    """

    PARAMS = declare(degree=integer(1, optional=True, doc="encoders per request"),
                     unit=one_of("tile", "image", doc="split unit: tile (paper text) or image (artifact)"))

    def __init__(self, degree: int | None = None, unit: str = "tile") -> None:
        self.degree = None if degree is None else int(degree)
        self.unit = unit

    def assign(self, rid: int, view: EncodeView) -> list[tuple[int, int]]:
        """(encoder index, tiles) pairs covering the request's tiles."""
        tiles = view.tiles(rid)
        units = max(1, min(view.images(rid), tiles)) if self.unit == "image" else tiles
        k = min(view.n_instances if self.degree is None else self.degree, view.n_instances, units)
        order = sorted(range(view.n_instances), key=lambda j: (view.instance(j).backlog_tiles, j))[:k]
        base, extra = divmod(units, k)
        counts = [base + (1 if i < extra else 0) for i in range(k)]  # units per chosen encoder
        if self.unit == "tile":
            return list(zip(order, counts))
        # whole images: image u has tiles // units tiles, the first tiles % units one more
        per, more = divmod(tiles, units)
        parts: list[tuple[int, int]] = []
        start = 0
        for j, c in zip(order, counts):
            parts.append((j, c * per + max(0, min(start + c, more) - start)))
            start += c
        return parts

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        """Used as a request router (prefill / decode pools): least loaded first, as App. D's option,
        load = outstanding tokens, ties to the lowest index."""
        loads = [view.instance(j).outstanding_tokens for j in range(view.n_instances)]
        return min(range(view.n_instances), key=lambda j: (loads[j], j))
