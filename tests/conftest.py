"""Shared pytest set-up: a deterministic hypothesis profile, a headless matplotlib backend
(through MPLBACKEND, for this process and the subprocesses it starts; nothing calls matplotlib.use),
and the compiled kernels for runs of any size (`llmsched.sim.kernels.MIN_REQUESTS = 0`), so every
test exercises the compiled path where Numba is installed; `LLMSCHED_NO_JIT=1` tests the other."""

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

from llmsched.sim import kernels  # noqa: E402 - after the environment above

kernels.MIN_REQUESTS = 0
