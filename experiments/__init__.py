"""llmsched.experiments: reproductions, sweeps, plotting style, reports and the `llmsched` CLI.

Reads run tables and draws figures; the simulator never imports from here.
"""
