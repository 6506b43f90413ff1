"""llmsched.policies: the decisions — batching (per instance) and routing (per cluster).

Policies read engine state through read-only views and return plans; they never keep a second
copy of the accounting. Importing this package registers every bundled policy.
"""

from llmsched.policies.registry import BATCHING, ROUTING, get, names, register  # noqa: F401
