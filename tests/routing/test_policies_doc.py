"""docs/policies.md lists every registered routing and batching policy (and nothing unknown)."""

from __future__ import annotations

import re
from pathlib import Path

from llmsched.policies import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def _doc_names() -> set[str]:
    """Names in the first column of the Batching and Routing tables only."""
    text = DOC.read_text()
    tables = text.split("## Batching", 1)[1].split("## Router-side state", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9.+-]+)` \|", tables, flags=re.M))


def test_every_registered_policy_has_a_row():
    names = set(registry.names(registry.BATCHING)) | set(registry.names(registry.ROUTING))
    missing = names - _doc_names()
    assert not missing, f"docs/policies.md lacks rows for {sorted(missing)}"


def test_no_row_for_an_unknown_policy():
    names = set(registry.names(registry.BATCHING)) | set(registry.names(registry.ROUTING))
    assert _doc_names() - names == set()
