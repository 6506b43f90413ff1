"""Workloads: the columnar request table, arrival/length generators, prefix programs and readers.

`Workload` is the only type the engine reads. Generators and readers live in sibling modules and are
looked up by name through `llmsched.sim.workload.catalog`.
"""

from llmsched.sim.workload.core import Workload, merge  # noqa: F401
