"""SCLS's offloader (Cheng et al., arXiv 2406.13511): send work to the instance expected to finish first.

Max-min offloading in its online form: every instance has an expected completion time (ECT), the
time it is expected to finish the work already sent to it; a request (new, or back after a
generation slice) goes to the instance with the smallest ECT, whose ECT then grows by the
request's estimated share of one slice. Estimates come from SCLS's serving-time model
(`SliceTimeModel`, fitted to the instance's cost model), never from the request's true output
length, which SCLS does not know. An instance found idle with an empty queue has its ECT reset to
now, the only feedback the offloader takes from the instances.

Our choices (the paper body was not retrievable; docs/policies.md): the offloaded unit is one
request's slice rather than a whole batch (the batch is formed at the instance, `scls` batching),
and a request's share is the slice time of a batch of the size the KV bound allows at its input
length, divided by that size.
"""

from __future__ import annotations

from typing import Any

from llmsched.policies.batching._fair_common import kv_capacity_blocks
from llmsched.policies.batching.scls import DEFAULT_SLICE_TOKENS, SliceTimeModel, positive_int
from llmsched.policies.registry import ROUTING, register
from llmsched.sim.policy_api import ClusterView


@register(ROUTING, "scls")
class SCLSOffloader:
    """SCLS max-min offloading: each request (and each returning slice) to the instance with the earliest expected completion time.

    slice_tokens: the slice of the instances' `scls` batching (the unit of work estimated).
    """

    def __init__(self, slice_tokens: int = DEFAULT_SLICE_TOKENS) -> None:
        self.slice_tokens = positive_int("slice_tokens", slice_tokens)
        self._ect: list[float] = []
        self._models: dict[Any, tuple[SliceTimeModel | None, int | None, int, int]] = {}
        self.routed = 0

    def _model(self, spec: Any) -> tuple[SliceTimeModel | None, int | None, int, int]:
        """(estimator, KV blocks, block size, request cap) of an instance spec, fitted once per spec."""
        got = self._models.get(spec)
        if got is None:
            from llmsched.sim.cost import build

            try:
                est = SliceTimeModel.fit(build(spec.cost, spec.model, spec.gpu, spec.tp))
            except Exception:  # a model the catalogue lacks: estimate in tokens instead (see share_s)
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

    def route(self, rid: int, view: ClusterView) -> int:
        now = view.now
        if len(self._ect) != view.n_instances:
            self._ect = [now] * view.n_instances
        best, best_t = 0, float("inf")
        for j in range(view.n_instances):
            st = view.instance(j)
            if st.waiting_count == 0 and st.running_count == 0:
                self._ect[j] = now  # idle: nothing it was sent is still expected
            t = max(self._ect[j], now)
            if t < best_t:
                best, best_t = j, t
        spec = view.instance(best).spec
        self._ect[best] = best_t + self.share_s(spec, view.prompt_tokens(rid) + view.generated_tokens(rid))
        self.routed += 1
        return best

    def stats(self) -> dict[str, Any]:
        return {"routed": self.routed}
