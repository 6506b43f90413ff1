"""The documentation site builds in strict mode (MkDocs Material + mkdocstrings): a broken link,
a missing page in the nav or an API reference that does not resolve fails the build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_docs_site_builds_strict(tmp_path):
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "simulate" / "index.html").read_text()
    assert "batching" in api and "RunResult" in api  # the reference was generated from docstrings
    assert (tmp_path / "site" / "reproductions" / "index.html").is_file()


def test_a_broken_reference_fails_the_strict_build(tmp_path):
    """Negative control: a copy of the site with one API reference that does not exist."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "api" / "broken.md").write_text("# broken\n\n::: llmsched.no_such_module.nothing\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text()
                      .replace("docs_dir: docs", f"docs_dir: {docs}")
                      .replace("  - docs/api/_package_tree.py", f"  - {ROOT / 'docs' / 'api' / '_package_tree.py'}")
                      .replace("paths: [build/docs-src]", f"paths: [{ROOT / 'build' / 'docs-src'}]"))
    proc = _build(config, tmp_path / "site")
    assert proc.returncode != 0
    assert "no_such_module" in proc.stderr
