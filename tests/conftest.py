"""Shared pytest set-up: a deterministic hypothesis profile and a headless matplotlib backend
(through MPLBACKEND, for this process and the subprocesses it starts; nothing calls matplotlib.use)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
