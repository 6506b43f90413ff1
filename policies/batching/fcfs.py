"""FCFS batching: admit waiting requests in arrival order, stop at the first that does not fit.

The VTC paper's baseline (artifact `--scheduler slora`, `req_queue.py`). No decision state.
"""

from __future__ import annotations

from llmsched.policies.batching._fair_common import ADMISSION_MODES, DEFAULT_ADMISSION, Admitter
from llmsched.policies.registry import BATCHING, register
from llmsched.sim.config import InstanceSpec
from llmsched.sim.params import declare, one_of
from llmsched.sim.policy_api import InstanceView, Plan


@register(BATCHING, "fcfs")
class FCFS:
    """FCFS: running decodes, ongoing prefill chunks, then admissions in arrival order (no skipping).

    admission: "reserve" (default; reserve prompt + output KV, as the VTC artifact does), "peak" or "engine".
    """

    PARAMS = declare(admission=one_of(*ADMISSION_MODES, doc="engine, reserve (prompt + output KV reserved) or peak"))

    def __init__(self, admission: str = DEFAULT_ADMISSION, instance_spec: InstanceSpec | None = None) -> None:
        self.admitter = Admitter(admission, instance_spec)

    def plan(self, view: InstanceView) -> Plan:
        b = self.admitter.start(view)
        if view.admission_open:
            for rid in view.waiting:
                if not self.admitter.admit(b, view, rid):
                    break  # memory only shrinks until the next change point: the plan is stable
        return b.plan()
