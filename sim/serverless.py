"""Serverless function platforms: prices, limits and start-up behaviour, with sources.

Owns the catalogue of platforms that MBS-style batching runs on (Ali et al., "Optimizing Inference
Serving on Serverless Platforms", PVLDB 15(10), 2022, prototyped on AWS Lambda) and the function's
latency profile per memory size (the CPU share, hence the service time, follows the memory on
Lambda), and turns them into `InstanceSpec`s: one instance per function instance, `count` = the
concurrency limit; a function of another memory size is another instance group (its own cost
spec and `memory_gb`), so a per-buffer memory is a per-buffer group (the `mbs` router's
`memory_mb`). Billing is per exact second of the batch: AWS bills per 1 ms (pricing page, since
December 2020), < 0.2% of the shortest measured service (0.6 s). The engine does the billing (`llmsched.sim.instance`): a batch admitted by
an idle instance is one invocation (fee shared by its requests), busy seconds cost memory x the
GB-second price (split by tokens), a start after more than `keep_alive_s` idle pays `cold_start_s`,
and `pad_batches` makes every prompt of a batch cost as much as its longest (static padded tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmsched.sim.config import InstanceSpec


@dataclass(frozen=True)
class ServerlessPlatform:
    name: str
    price_per_invocation_usd: float
    price_per_gb_s_usd: float
    max_concurrency: int
    cold_start_s: float
    keep_alive_s: float
    sources: tuple[tuple[str, str], ...] = ()


AWS_LAMBDA_X86 = ServerlessPlatform(
    "aws-lambda-x86", 0.20 / 1e6, 0.0000166667, 1000, cold_start_s=1.5, keep_alive_s=600.0,
    sources=(
        ("price_per_invocation_usd", "AWS Lambda pricing page (aws.amazon.com/lambda/pricing): $0.20 per 1M requests"),
        ("price_per_gb_s_usd", "AWS Lambda pricing page: x86, first 6 billion GB-seconds / month, $0.0000166667 "
                               "for every GB-second"),
        ("max_concurrency", "AWS Lambda quotas page: concurrent executions, default 1,000 per Region"),
        ("cold_start_s", "our assumption: AWS publishes no figure; 1.5 s stands for a container start plus "
                         "loading a BERT-size model (hundreds of MB) from the deployment package"),
        ("keep_alive_s", "our assumption: AWS publishes no idle lifetime for an execution environment; 10 min"),
    ),
)
PLATFORMS = {p.name: p for p in (AWS_LAMBDA_X86,)}

#: The function's latency profile, `linear:a,b,0,0` (a seconds + b seconds per prompt token of the
#: padded batch). Our assumption, not a measurement: BERT-base is ~110M parameters, ~0.22 GFLOP per
#: token; a Lambda with 3 GB has ~1.7 vCPUs (1 vCPU per 1,769 MB, AWS Lambda memory page) that
#: reach ~50 GFLOP/s each on dense fp32 GEMMs -> ~2.6 ms per token; 20 ms framework overhead.
BERT_CPU_COST = "linear:0.02,0.0026,0,0"
#: A measured profile: the MBS artifact's DeepSpeech function on AWS Lambda (github.com/Iam-ahsan/MBS,
#: `model/service_time_256.json`: batch service times in ms per memory size, for 32 request-size
#: classes of 11-143.5 KB (`model/MBS_solver.py` `getReqSize`) and batch sizes 1-25). A batch is
#: served at its largest class (`batchServiceTimeMulticlass(B, max(comp), M)`: padding). The 3072 MB
#: column fits t = 0.02457 s x L + 0.02301 s x n x L for n requests padded to L KB (least squares on
#: relative error over the 800 points, sizes rounded to whole KB, intercept dropped as ~0: median
#: error 2.5%, 90th percentile 6.9%, max 15.5%): a batch costs about L x (n + 1.07) units, so
#: batching up to halves the cost per request and padding raises it in proportion. One prompt token
#: stands for one KB of audio. (A linear a + b x n x L fit misses batch size 1 by 35%, median.)
DEEPSPEECH_LAMBDA_3GB_COST = "padded:0,0.02457,0.02301"
DEFAULT_MEMORY_GB = 3.0

#: The same fit for every memory size of the artifact's table (`model/service_time_256.json`, 24
#: columns of 1,024-6,912 MB in 256 MB steps, the range of its optimiser: `model/MBS_solver.py`
#: l. 42 `memMinIncrement = 256`, l. 1581 `BayesOpt(..., 1024, 6912, ...)`): memory MB -> (b', c)
#: of `padded:0,b',c` (seconds per KB of the padded length, and per KB of the batch). Each column
#: fitted like the 3,072 MB one (least squares on relative error, 800 points, sizes in whole KB):
#: median error 2.0-3.0%, 90th percentile 6.3-7.7%, max 14.6-19.9% per column. On Lambda the
#: CPU share grows with memory ("Lambda allocates CPU power in proportion to the amount of memory
#: configured ... At 1,769 MB, a function has the equivalent of one vCPU", AWS Lambda developer
#: guide, docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html); the measurements show
#: it: 1,024 MB runs 1.8x slower than 3,072 MB, and above ~2,048 MB the service time stops
#: improving (TensorFlow 1.8 uses ~2 vCPUs), so GB-seconds per KB grow with memory beyond there.
DEEPSPEECH_LAMBDA_FIT_BY_MEMORY_MB: dict[int, tuple[float, float]] = {
    1024: (0.04532, 0.04324), 1280: (0.03583, 0.03400), 1536: (0.03005, 0.02871), 1792: (0.02625, 0.02498),
    2048: (0.02509, 0.02378), 2304: (0.02493, 0.02350), 2560: (0.02505, 0.02346), 2816: (0.02510, 0.02348),
    3072: (0.02457, 0.02301), 3328: (0.02452, 0.02301), 3584: (0.02461, 0.02300), 3840: (0.02460, 0.02298),
    4096: (0.02467, 0.02298), 4352: (0.02456, 0.02299), 4608: (0.02441, 0.02300), 4864: (0.02469, 0.02300),
    5120: (0.02442, 0.02306), 5376: (0.02435, 0.02289), 5632: (0.02471, 0.02287), 5888: (0.02454, 0.02292),
    6144: (0.02445, 0.02290), 6400: (0.02457, 0.02285), 6656: (0.02431, 0.02286), 6912: (0.02448, 0.02288)}
#: The memory sizes (MB) a function may be given here: the measured ones.
LAMBDA_MEMORY_MB = tuple(sorted(DEEPSPEECH_LAMBDA_FIT_BY_MEMORY_MB))


def deepspeech_lambda_cost(memory_mb: int) -> str:
    """The DeepSpeech Lambda's `padded:0,b',c` cost spec at `memory_mb` (one of `LAMBDA_MEMORY_MB`,
    the sizes the artifact measured; no interpolation)."""
    fit = DEEPSPEECH_LAMBDA_FIT_BY_MEMORY_MB.get(memory_mb) if float(memory_mb).is_integer() else None
    if fit is None:
        raise ValueError(f"memory_mb must be one of the measured sizes {LAMBDA_MEMORY_MB[0]}-{LAMBDA_MEMORY_MB[-1]} "
                         f"MB in 256 MB steps, got {memory_mb!r}")
    return f"padded:0,{fit[0]},{fit[1]}"


def function_instances(platform: str = "aws-lambda-x86", memory_gb: float = DEFAULT_MEMORY_GB,
                       concurrency: int | None = None, cost: str = BERT_CPU_COST, batching: str = "mbs-batch",
                       batching_params: tuple = (), **kw) -> InstanceSpec:
    """The instance group of a serverless deployment (one instance per concurrent function). The
    model is not in the LLM catalogue: no KV limit (a batch holds its tensors in the function's
    memory), no token budget (a batch runs whole), energy is not modelled."""
    p = PLATFORMS[platform]
    if not (memory_gb > 0 and math.isfinite(memory_gb)):
        raise ValueError(f"memory_gb must be a finite number of GB > 0, got {memory_gb!r}")
    return InstanceSpec(
        model="bert-base", gpu="lambda-cpu", cost=cost, batching=batching, batching_params=batching_params,
        count=concurrency or p.max_concurrency, price_per_invocation_usd=p.price_per_invocation_usd,
        price_per_gb_s_usd=p.price_per_gb_s_usd, memory_gb=memory_gb, cold_start_s=p.cold_start_s,
        keep_alive_s=p.keep_alive_s, pad_batches=True, prefix_cache=False,
        **{"kv_capacity_tokens": 1 << 20, "token_budget": 1 << 20, "max_batch_requests": 1024, **kw})
