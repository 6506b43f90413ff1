"""The layering contract of DESIGN.md: experiments -> proofs_check / policies / theory -> sim.

Every `import` in the five layer folders, including imports inside functions, is read with `ast`
and mapped to the layer it names. A layer may import itself and the layers below it; proofs_check
and policies are siblings and do not import each other; nothing in a layer imports the top package
(`llmsched`, `llmsched._api`, ...), which sits above all of them. The negative controls build a
small tree with one upward import per rule and check that each is reported with its file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "sim": frozenset(),
    "theory": frozenset({"sim"}),
    "policies": frozenset({"theory", "sim"}),
    "proofs_check": frozenset({"theory", "sim"}),
    "experiments": frozenset({"proofs_check", "policies", "theory", "sim"}),
}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def _imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the tree; relative imports resolved."""
    out: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return out


def _layer_of(name: str) -> str | None:
    """The layer an absolute module name belongs to; "top" for the llmsched package itself."""
    parts = name.split(".")
    if parts[0] != "llmsched":
        return None
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "top"


def layer_violations(root: Path) -> list[Violation]:
    """Every import under root/<layer>/ that the contract forbids."""
    found: list[Violation] = []
    for layer in ALLOWED:
        for path in sorted((root / layer).rglob("*.py")):
            rel = path.relative_to(root)
            module = "llmsched." + ".".join(rel.with_suffix("").parts)
            for line, name in _imported_modules(ast.parse(path.read_text(), str(path)), module):
                target = _layer_of(name)
                if target is None or target == layer:
                    continue
                if target == "top" or target not in ALLOWED[layer]:
                    found.append(Violation(rel.as_posix(), line, layer, name))
    return found


def test_the_layers_point_down():
    violations = layer_violations(REPO)
    assert not violations, "upward or sideways imports:\n" + "\n".join(map(str, violations))


def test_the_contract_covers_every_layer_folder():
    for layer in ALLOWED:
        assert any((REPO / layer).rglob("*.py")), f"{layer}/ has no modules: the contract checks nothing"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for layer in ALLOWED:
        (tmp_path / layer).mkdir(exist_ok=True)
        (tmp_path / layer / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize("rel, text, imported", [
    ("sim/instance.py", "from llmsched.policies.api import Plan\n", "llmsched.policies.api"),
    ("sim/run.py", "def f():\n    from llmsched.policies import registry\n", "llmsched.policies"),
    ("theory/plan.py", "def fig():\n    from llmsched.experiments.style import figure\n", "llmsched.experiments.style"),
    ("theory/mux.py", "from llmsched.policies.batching import q\n", "llmsched.policies.batching"),
    ("policies/routing/spot.py", "import llmsched.experiments.cli\n", "llmsched.experiments.cli"),
    ("policies/batching/x.py", "from llmsched.proofs_check import verdict\n", "llmsched.proofs_check"),
    ("proofs_check/x.py", "from llmsched.policies import registry\n", "llmsched.policies"),
    ("sim/cost/x.py", "from ...theory import capacity\n", "llmsched.theory"),
    ("experiments/x.py", "import llmsched\n", "llmsched"),
])
def test_negative_control_each_rule_catches_its_upward_import(tmp_path, rel, text, imported):
    root = _tree(tmp_path, {rel: text})
    violations = layer_violations(root)
    assert [(v.file, v.imported) for v in violations] == [(rel, imported)]
    assert violations[0].line >= 1


def test_downward_and_same_layer_imports_pass(tmp_path):
    root = _tree(tmp_path, {
        "experiments/a.py": "from llmsched.policies import x\nfrom llmsched.proofs_check import y\n",
        "policies/a.py": "from llmsched.theory import f\nfrom llmsched.sim.policy_api import Plan\n",
        "theory/a.py": "from llmsched.sim import hardware\nfrom . import b\n",
        "sim/a.py": "import numpy\nfrom llmsched.sim.engine import Engine\n",
    })
    assert layer_violations(root) == []
