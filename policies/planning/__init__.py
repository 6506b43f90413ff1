"""Planners: searches over a deployment's parallelism configurations (replicas × TP × PP),
registered in the `planning` family (`llmsched policies` lists them). A planner's `search(space,
evaluate)` sees only the feasible configurations and a measurement function; the measurement (a
simulation of the workload on that configuration) is the caller's (`llmsched.sim.parallelism`)."""
