"""Names the dead-code finder (vulture) cannot see being used, each with the reason it is kept.

Read by tests/contracts/test_dead_code.py (never imported). Registered policies, reproductions
and checkers are not listed: their registry decorators mark them as used.
"""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# called by a framework, not by our code
_.on_config  # docs/api/_package_tree.py: the MkDocs hook
_.__getattr__  # llmsched/__init__.py: the module's lazy re-exports (PEP 562)
_.__dir__  # llmsched/__init__.py: lists the lazy re-exports
_.callSolver  # theory/placement/milp.py: PuLP's solver interface calls it
_.col_value  # theory/placement/milp.py: PuLP reads it after callSolver
_.value_valid  # theory/placement/milp.py: PuLP reads it after callSolver

# named by a string
_.simulate_point  # experiments/sweep.py: the default point "llmsched.experiments.sweep:simulate_point"
_.exit_first  # theory/constructions.py: tests/theory/test_counterexamples.py reads it with getattr
_.enter_first  # theory/constructions.py: likewise

# fields of result records, written to tables, JSON and reports (no reader in the code)
_.n_points  # proofs_check/stability.py: the stability estimate's sample size
_.calibrated_on  # sim/cost/stacks.py: provenance of a serving stack's overheads
_.binding_pool  # theory/fluid.py: which pool binds the disaggregated capacity
_.sim_time_s  # theory/placement/simulate.py: SimResult
_.unservable_requests  # theory/placement/simulate.py: SimResult
_.layer_param_bytes  # theory/placement/spec.py: a model's per-layer weight bytes
_.capacity_tokens_per_s  # theory/stability.py: the stability region's numbers
_.load_tokens_per_s  # theory/stability.py: likewise

# owned by the reproductions' author (a constant recording the paper's setup)
_.WORKLOAD_S  # experiments/reproductions/muxserve.py: MuxServe's workload duration, 240 s
