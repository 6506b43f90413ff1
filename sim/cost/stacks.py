"""Per-stack iteration overhead: the CPU-side time a serving stack adds to every iteration (scheduling,
input preparation, sampling, output processing) on top of the GPU time, as named, calibrated terms.

    overhead = iteration_overhead_s + request_overhead_s * num_requests     (0 s for an empty iteration)

Selected in a cost spec as `roofline+stack:<name>` (or `profiled:vidur-...+stack:<name>`); the plain
`roofline` uses `vllm`. The values are written by `python -m llmsched.experiments.calibration` into
data/reference/fits.json ("stacks"), each from measured data named in `STACKS` (docs/cost-models.md
lists the fit and its residuals). Owns the stack names and their sources; fitting lives in
experiments/calibration.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsched.sim.cost import refdata
from llmsched.sim.errors import InputError


@dataclass(frozen=True)
class Stack:
    name: str
    iteration_overhead_s: float
    request_overhead_s: float
    calibrated_on: str


# name -> (what the stack is, the measured data its overhead is calibrated on)
STACKS = {
    "vllm": ("vLLM as profiled by Vidur (the default of `roofline`)",
             "Vidur's measured CPU overheads of Llama-2-7B on A100, batch 8-128: schedule + sampler + prepare inputs + "
             "process outputs medians (vidur/upstream_old/data/profiling/a100/cpu_overheads.csv); a line in batch size"),
    "vllm-llumnix": ("the vLLM fork of Llumnix's OSDI'24 artifact (branch osdi24ae)",
                     "Llumnix Fig 10 'decode' series: measured per-step decode latency on A10, LLaMA-7B (TP1) and "
                     "LLaMA-30B (TP4), one sequence of 256-8192 tokens (llumnix/derived/figure10_series.csv, "
                     "artifact/62_migration_efficiency/plot/plot.py L119-L120), minus the fitted A10 roofline's GPU time"),
    "sarathi": ("Sarathi-Serve (OSDI'24 branch)",
                "fitted jointly with the A100 factors on Sarathi-Serve's Fig 2 / Table 2 / Fig 9 batch times "
                "(Yi-34B TP2; sarathi_serve_osdi/upstream/osdi-experiments)"),
    "slai": ("SLAI's Sarathi-Serve fork",
             "fitted jointly with the RTX 6000 Ada factors on SLAI Fig 5(a) batch times (slai/upstream/scripts/plot1_results.csv)"),
    "slora": ("S-LoRA as run by the VTC artifact (LoRA compute off: adapters label clients only)",
              "fitted jointly with the A10G factors on the VTC artifact's cost profile (vtc/upstream/fair_bench/"
              "cost_profile.json, llama-7b on A10G, batch prefill and decode times per request)"),
    "sglang": ("SGLang as forked by Preble",
               "Preble's fitted SGLang forward time without attention, Mistral-7B on A100 (preble/derived/"
               "sglang_a100_linear_model.csv, model_equations.py L40-L48), minus the fitted A100-80GB roofline's GPU time; "
               "clipped at 0 (the roofline's GPU time already exceeds it)"),
}


def stack_names() -> list[str]:
    return sorted(STACKS)


def get_stack(name: str) -> Stack:
    name = name.strip().lower()
    if name not in STACKS:
        raise InputError("cost model", "cost", f"unknown stack {name!r}",
                         f"use +stack:<name> with one of: {', '.join(stack_names())}")
    entry = refdata.load_fits().get("stacks", {}).get(name)
    if entry is None:
        raise InputError("cost model", "cost", f"stack {name!r} has no calibrated values in data/reference/fits.json",
                         "run python -m llmsched.experiments.calibration")
    return Stack(name, float(entry["iteration_overhead_s"]), float(entry["request_overhead_s"]), STACKS[name][1])
