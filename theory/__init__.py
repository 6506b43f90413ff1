"""llmsched.theory: what is provable — stability regions, fluid and queueing models, fairness bounds,
placement MILP and max-flow. Pure functions over plain data; must not import `sim` engine internals.
"""
