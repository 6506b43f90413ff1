"""Per-request simulation state as one struct of arrays (the engine's single source of truth).

Owns every mutable per-request number (progress, KV holdings, timestamps, metrics) and the
per-(instance, client) service counters. Instances and the engine mutate it; policies only read it
through views. Must not contain scheduling logic.
"""

from __future__ import annotations

import numpy as np

from llmsched.sim import kernels
from llmsched.sim.workload.core import Workload

# request life cycle
PENDING, WAITING, PREFILLING, DECODING, TRANSFERRING, DONE, REJECTED = range(7)
ACCURACY_SCALE = 10**9  # accuracy credits are integers: accuracy x ACCURACY_SCALE (exact sums)
NJ_PER_J = 10**9  # energy credits are integer nanojoules
PUSD_PER_USD = 10**12  # serverless cost credits are integer pico-dollars
NO_YIELD = np.iinfo(np.int64).max  # `yield_at` of a request that runs without a generation slice


class RequestTable:
    def __init__(self, workload: Workload, n_instances: int) -> None:
        n = workload.n
        self.n = n
        self.workload = workload
        self.arrival_s = workload.arrival_s.copy()  # children get their release time here
        self.prompt = workload.prompt_tokens
        self.output = workload.output_tokens
        self.client = workload.client
        self.priority = workload.priority
        self.ttft_slo_s = workload.ttft_slo_s
        i64 = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        self.state = np.full(n, PENDING, dtype=np.int64)
        self.instance = np.full(n, -1, dtype=np.int64)
        self.prefill_instance = np.full(n, -1, dtype=np.int64)
        # the columns the compiled kernels take (`llmsched.sim.kernels`): rows of one int64 and one
        # float64 array, so that a kernel gets them as two arguments; each column is a row view
        self.kernel_ints = np.zeros((kernels.INT_ROWS, n), dtype=np.int64)
        self.kernel_floats = np.zeros((kernels.FLOAT_ROWS, n))
        ints, floats = self.kernel_ints, self.kernel_floats
        self.prefill_target = i64()  # tokens the current prefill must put in KV (prompt + generated)
        self.computed = ints[kernels.COMPUTED]  # tokens whose KV is in memory
        self.generated = ints[kernels.GENERATED]
        self.shared_tokens = ints[kernels.SHARED_TOKENS]  # tokens covered by referenced prefix-tree nodes
        self.held_blocks = ints[kernels.HELD_BLOCKS]  # private KV blocks
        self.admit_seq = i64()
        self.kv_ready = np.zeros(n, dtype=bool)  # arrives with its KV (P/D transfer, migration)
        # its images were encoded by an encode pool and the embeddings reached prefill (EPD), at embedded_s
        self.embedded = np.zeros(n, dtype=bool)
        self.embedded_s = nan()
        self.charged = np.zeros(n, dtype=bool)
        self.dispatch_s = nan()
        self.first_token_s = nan()
        self.last_token_s = floats[kernels.LAST_TOKEN_S]
        self.last_token_s[:] = np.nan
        self.finish_s = nan()
        self.tbt_max_s = floats[kernels.TBT_MAX_S]
        self.tbt_slo_s = floats[kernels.TBT_SLO_S]  # the workload's, copied
        self.tbt_slo_s[:] = workload.tbt_slo_s
        self.tbt_misses = ints[kernels.TBT_MISSES]
        self.preemptions = i64()
        self.migrations = i64()
        # generation slices (Plan.slice_tokens): the request leaves its instance, KV dropped, once
        # `generated` reaches `yield_at`; `slices` counts the slices it ended that way
        self.yield_at = np.full(n, NO_YIELD, dtype=np.int64)
        # min(output, yield_at): the `generated` count at which a decode must stop (kept with yield_at)
        self.stop_at = ints[kernels.STOP_AT]
        self.stop_at[:] = self.output
        self.slices = i64()
        # the prefix cache's hits, counted here once: prompt tokens served from the cache and prompt
        # tokens to compute (prompt + generated), each summed over the request's admissions; the
        # run's hit rate is derived from these (the per-client cached service is a fairness charge,
        # made once, at the first admission)
        self.cached_tokens = i64()
        self.admitted_prompt_tokens = i64()
        # model variants (Plan.variant): sum of the accuracies credited to its tokens, times
        # ACCURACY_SCALE (integers, so a sum is the same in fast-forward and step mode), and how many
        self.accuracy_sum = i64()
        self.accuracy_tokens = i64()
        # energy of the iterations that computed its tokens, its share by tokens (integer nJ: exact sums)
        self.energy_nj = ints[kernels.ENERGY_NJ]
        # serverless cost (invocation fee share + GB-seconds by tokens), integer pico-dollars
        self.cost_pusd = i64()
        self.paths: dict[int, list[int]] = {}  # prefix-tree nodes referenced by a request
        n_clients = workload.n_clients
        self.n_clients = n_clients
        self.input_service = np.zeros((n_instances, n_clients), dtype=np.int64)
        self.cached_input_service = np.zeros((n_instances, n_clients), dtype=np.int64)
        self.output_service = np.zeros((n_instances, n_clients), dtype=np.int64)
        self.waiting_count = np.zeros((n_instances, n_clients), dtype=np.int64)
        self.running_count = np.zeros((n_instances, n_clients), dtype=np.int64)

    def hashes(self, rid: int) -> np.ndarray:
        w = self.workload
        return w.hash_values[w.hash_offsets[rid] : w.hash_offsets[rid + 1]]

    def full_prompt_blocks(self, rid: int) -> np.ndarray:
        """The hash blocks of the prompt that are full: only full blocks are cached or matched."""
        return full_prompt_blocks(self.hashes(rid), int(self.prompt[rid]), self.workload.hash_block_tokens)


def full_prompt_blocks(hashes: np.ndarray, prompt_tokens: int, hash_block_tokens: int) -> np.ndarray:
    """The leading `hashes` that cover whole blocks of the prompt (the one rule for cacheable blocks)."""
    full = prompt_tokens // hash_block_tokens if hash_block_tokens > 0 else 0
    return hashes[: min(full, len(hashes))]


class RequestFacts:
    """Read-only per-request accessors shared by the policy views (`_reqs` is the table)."""

    __slots__ = ()
    _reqs: RequestTable

    def prompt_tokens(self, rid: int) -> int:
        return int(self._reqs.prompt[rid])

    def output_tokens(self, rid: int) -> int:
        return int(self._reqs.output[rid])

    def generated_tokens(self, rid: int) -> int:
        return int(self._reqs.generated[rid])

    def client(self, rid: int) -> int:
        return int(self._reqs.client[rid])

    def arrival_s(self, rid: int) -> float:
        return float(self._reqs.arrival_s[rid])

    def priority(self, rid: int) -> int:
        return int(self._reqs.priority[rid])

    def tbt_slo_s(self, rid: int) -> float:
        return float(self._reqs.tbt_slo_s[rid])

    def ttft_slo_s(self, rid: int) -> float:
        return float(self._reqs.ttft_slo_s[rid])

    def finish_s(self, rid: int) -> float:
        """End of the iteration that produced its last token (nan if unfinished)."""
        return float(self._reqs.finish_s[rid])

    def energy_j(self, rid: int) -> float:
        """Joules credited to it so far (its share, by tokens, of each iteration it was in)."""
        return float(self._reqs.energy_nj[rid]) / NJ_PER_J

    def first_token_s(self, rid: int) -> float:
        return float(self._reqs.first_token_s[rid])

    def last_token_s(self, rid: int) -> float:
        """Time of the request's latest token (nan if none yet)."""
        return float(self._reqs.last_token_s[rid])

    def hashes(self, rid: int) -> np.ndarray:
        """The request's prefix block hashes, in prefix order (empty if the workload has none)."""
        return self._reqs.hashes(rid)

    prefix_hashes = hashes

    def cacheable_hashes(self, rid: int) -> np.ndarray:
        """The request's prefix blocks a prefix cache can hold or match: its full prompt blocks."""
        return self._reqs.full_prompt_blocks(rid)

    @property
    def hash_block_tokens(self) -> int:
        """Prompt tokens per prefix hash block of the workload."""
        return int(self._reqs.workload.hash_block_tokens)
