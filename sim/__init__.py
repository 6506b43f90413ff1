"""llmsched.sim: the world — workloads, hardware, cost models, instances, cluster, event loop, logs.

Owns the single source of truth for accounting (what each request and client was served).
Must not import from `experiments` (plotting and CLI live there).
"""
