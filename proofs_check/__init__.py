"""llmsched.proofs_check: checkers — pure functions over saved run logs returning a `Verdict`.

Each checker returns `Verdict(ok, name, witness, details)`; a failing verdict carries a witness
that a human can read back against the log. Must not run simulations itself.
"""
