"""The `Verdict` record every checker returns (ok flag, witness, bound and numbers)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    summary: str
    witness: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)

    def __str__(self) -> str:
        head = f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.summary}"
        if self.witness:
            head += "\n  witness: " + json.dumps(self.witness, default=float)
        return head
