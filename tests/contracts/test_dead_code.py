"""No dead code: vulture (confidence >= 60) finds nothing unused in the package, the benchmarks
or the docs hook, with the tests counted as users.

Registry decorators (`@register`, `@reproduction`, `@checker`) mark their targets as used; what
vulture cannot see otherwise is listed, with its reason, in vulture_whitelist.py. The negative
control adds a module with an unused function and expects it to be named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

vulture = pytest.importorskip("vulture", reason="vulture is not installed (it is in the dev extra)")

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("sim", "policies", "theory", "proofs_check", "experiments", "llmsched", "benchmarks", "docs/api")
USERS = ("tests",)  # scanned so that what only tests use counts as used; their own findings are not reported
DECORATORS = ["@register", "@reproduction", "@checker"]
MIN_CONFIDENCE = 60


def _unused(extra: list[Path] = ()) -> list[str]:
    v = vulture.Vulture(ignore_decorators=DECORATORS)
    v.scavenge([str(REPO / p) for p in (*SCANNED, *USERS)] + [str(p) for p in extra])
    tests = REPO / "tests"
    return [item.get_report() for item in v.get_unused_code(min_confidence=MIN_CONFIDENCE)
            if not Path(item.filename).resolve().is_relative_to(tests)]


def test_no_dead_code():
    found = _unused()
    assert not found, "unused code (remove it, or list it with its reason in tests/contracts/vulture_whitelist.py):\n" + "\n".join(found)


def test_an_unused_function_is_reported(tmp_path):
    """Negative control: a module with one used and one unused function."""
    module = tmp_path / "extra_module.py"
    module.write_text("def used():\n    return 1\n\n\ndef never_called():\n    return used()\n")
    found = _unused([module])
    assert any("never_called" in line for line in found), found
    assert not any("'used'" in line for line in found), found
