"""Hypothesis strategies for small but nasty simulator scenarios: ties in time, preemption,
prefix sharing, admission cadence, request caps, disaggregation. They are public API now and live
in `llmsched.testing`; this module re-exports them for the existing tests."""

from llmsched.testing import clusters, cost_models, scenarios, workloads

__all__ = ["clusters", "cost_models", "scenarios", "workloads"]
