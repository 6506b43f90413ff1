"""Serverless function platforms: prices, limits and start-up behaviour, with sources.

Owns the catalogue of platforms that MBS-style batching runs on (Ali et al., "Optimizing Inference
Serving on Serverless Platforms", PVLDB 15(10), 2022, prototyped on AWS Lambda) and the function's
latency profile, and turns them into `InstanceSpec`s: one instance per function instance, `count`
= the concurrency limit. The engine does the billing (`llmsched.sim.instance`): a batch admitted by
an idle instance is one invocation (fee shared by its requests), busy seconds cost memory x the
GB-second price (split by tokens), a start after more than `keep_alive_s` idle pays `cold_start_s`,
and `pad_batches` makes every prompt of a batch cost as much as its longest (static padded tensors).
"""

from __future__ import annotations

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


def function_instances(platform: str = "aws-lambda-x86", memory_gb: float = DEFAULT_MEMORY_GB,
                       concurrency: int | None = None, cost: str = BERT_CPU_COST, batching: str = "mbs-batch",
                       batching_params: tuple = (), **kw) -> InstanceSpec:
    """The instance group of a serverless deployment (one instance per concurrent function). The
    model is not in the LLM catalogue: no KV limit (a batch holds its tensors in the function's
    memory), no token budget (a batch runs whole), energy is not modelled."""
    p = PLATFORMS[platform]
    return InstanceSpec(
        model="bert-base", gpu="lambda-cpu", cost=cost, batching=batching, batching_params=batching_params,
        count=concurrency or p.max_concurrency, price_per_invocation_usd=p.price_per_invocation_usd,
        price_per_gb_s_usd=p.price_per_gb_s_usd, memory_gb=memory_gb, cold_start_s=p.cold_start_s,
        keep_alive_s=p.keep_alive_s, pad_batches=True, prefix_cache=False,
        **{"kv_capacity_tokens": 1 << 20, "token_budget": 1 << 20, "max_batch_requests": 1024, **kw})
