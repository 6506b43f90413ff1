"""SCLS's offloader (Cheng et al., arXiv 2406.13511): send work to the instance expected to finish first.

Max-min offloading in its online form: a request (new, or back after a generation slice) goes to
the instance with the smallest expected completion time, the estimated time to serve what it holds
now: the slice shares of its waiting and running requests. Estimates come from SCLS's serving-time
model (`SliceTimeModel`, fitted to the instance's cost model, built from its spec) at each
request's current input length (prompt + generated), never from the true output length, which
SCLS does not know.

Our choices (the paper body was not retrievable; docs/policies.md): the offloaded unit is one
request's slice rather than a whole batch (the batch is formed at the instance, `scls` batching);
a request's share is the slice time of a batch of the size the KV bound allows at its input
length, divided by that size; a running request counts its whole slice.
"""

from __future__ import annotations

from typing import Any

from llmsched.policies.batching._fair_common import kv_capacity_blocks
from llmsched.policies.batching.scls import DEFAULT_SLICE_TOKENS, SliceTimeModel
from llmsched.policies.registry import ROUTING, register
from llmsched.sim.params import declare, integer
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "scls")
class SCLSOffloader:
    """SCLS max-min offloading: each request (and each returning slice) to the instance with the least estimated pending work.

    slice_tokens: the slice of the instances' `scls` batching (the unit of work estimated).
    """

    PARAMS = declare(slice_tokens=integer(1))

    def __init__(self, slice_tokens: int = DEFAULT_SLICE_TOKENS) -> None:
        self.slice_tokens = int(slice_tokens)
        self._shares: dict[Any, dict[int, float]] = {}
        self._models: dict[Any, tuple[SliceTimeModel | None, int | None, int, int]] = {}
        self.routed = 0

    def _model(self, spec: Any) -> tuple[SliceTimeModel | None, int | None, int, int]:
        """(estimator, KV blocks, block size, request cap) of an instance spec, fitted once per spec."""
        got = self._models.get(spec)
        if got is None:
            from llmsched.sim.cost import build

            try:
                est = SliceTimeModel.fit(build(spec.cost, spec.model, spec.gpu, spec.tp))
            except ValueError:  # InputError: a model the catalogue lacks: estimate in tokens instead (see share_s)
                est = None
            got = (est, kv_capacity_blocks(spec), int(spec.block_size), int(spec.max_batch_requests))
            self._models[spec] = got
        return got

    def share_s(self, spec: Any, input_tokens: int) -> float:
        """Estimated seconds of one request's next slice at `input_tokens` input tokens."""
        est, blocks, block_size, cap = self._model(spec)
        s = self.slice_tokens
        n = cap
        if blocks is not None:
            n = max(min(cap, blocks // -(-(input_tokens + s) // block_size)), 1)
        if est is None:
            return float(input_tokens + s)  # token count: the same ordering without a cost model
        return est.per_request_s(n, input_tokens, s)

    def pending_s(self, view: ClusterView, j: int) -> float:
        """Instance j's expected time to finish what it holds: the estimated slice shares of its
        waiting and running requests (a running request counts its whole slice: an upper bound)."""
        st = view.instance(j)
        spec = st.spec
        cache = self._shares.setdefault(spec, {})
        total = 0.0
        for queue in (st.waiting, st.prefilling, st.decoding):
            for r in queue:
                length = view.prompt_tokens(r) + view.generated_tokens(r)
                share = cache.get(length)
                if share is None:
                    share = cache[length] = self.share_s(spec, length)
                total += share
        return total

    def route(self, rid: int, view: ClusterView) -> int:  # noqa: ARG002 - Router.route; least pending work
        loads = [self.pending_s(view, j) for j in range(view.n_instances)]
        best = min(range(view.n_instances), key=lambda j: (loads[j], j))
        self.routed += 1
        return best

    def stats(self) -> dict[str, Any]:
        return {"routed": self.routed}
