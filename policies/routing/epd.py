"""EPD's encode-stage router (Singh et al., ICML 2025, arXiv 2501.05460): intra-request parallelism.

IRP (paper Sec. 3.2.2) "partitions a single request's image patches across multiple encoding
workers in a data-parallel fashion"; each worker encodes its share and sends the embeddings to
prefill, which starts once all have arrived (the engine's part). Assignment of a request to
encoders follows the paper's App. D options ("Round-Robin or Least-Loaded First"): we take the
least-loaded encoders, load = tiles queued or in service, ties to the lowest index.

Our choices (the paper gives no split rule; docs/policies.md): the unit split is one image tile
(MiniCPM-V's slice, the paper's "patch"); a request is split over `degree` encoders (default:
all of the pool, capped by its tile count), as evenly as possible, the larger shares to the least
loaded. degree = 1 is EPD without IRP (the paper's "w/o IRP" ablation, Table 4).
"""

from __future__ import annotations

from llmsched.policies.registry import ROUTING, register
from llmsched.sim.encode import EncodeView
from llmsched.sim.params import declare, integer
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "epd-irp")
class IntraRequestParallel:
    """EPD encode router: split a request's image tiles over the `degree` least-loaded encoders (IRP; degree=1: whole request to one); as a request router, least outstanding tokens.

    degree: encoders one request is spread over (None = every encoder of the pool).
    """

    PARAMS = declare(degree=integer(1, optional=True, doc="encoders per request"))

    def __init__(self, degree: int | None = None) -> None:
        self.degree = None if degree is None else int(degree)

    def assign(self, rid: int, view: EncodeView) -> list[tuple[int, int]]:
        """(encoder index, tiles) pairs covering the request's tiles."""
        tiles = view.tiles(rid)
        k = min(view.n_instances if self.degree is None else self.degree, view.n_instances, tiles)
        order = sorted(range(view.n_instances), key=lambda j: (view.instance(j).backlog_tiles, j))[:k]
        base, extra = divmod(tiles, k)
        return [(j, base + (1 if i < extra else 0)) for i, j in enumerate(order)]

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; ignores the request
        """Used as a request router (prefill / decode pools): least loaded first, as App. D's option,
        load = outstanding tokens, ties to the lowest index."""
        loads = [view.instance(j).outstanding_tokens for j in range(view.n_instances)]
        return min(range(view.n_instances), key=lambda j: (loads[j], j))
