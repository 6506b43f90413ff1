"""Heterogeneous layer placement (Helix MILP, heuristics, max-flow certificates) and MuxServe.

See docs/placement.md. Independent of the simulator engine.
"""
