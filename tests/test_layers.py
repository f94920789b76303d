"""The package's layers import only downward (the contract in pyproject.toml).

``lint-imports`` (import-linter) reads ``[tool.importlinter]``; a module that
imports upward (say ``state`` importing ``registry``) breaks the contract and
this test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_the_import_contract_holds():
    done = subprocess.run(
        ["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_every_layer_is_a_package_and_the_root_is_no_longer_flat():
    pkg = ROOT / "pyscheduler"
    for layer in ("domain", "state", "runtime", "selection", "registry", "cluster", "tools"):
        assert (pkg / layer / "__init__.py").is_file(), layer
    modules_at_root = sorted(p.name for p in pkg.glob("*.py"))
    assert modules_at_root == ["__init__.py", "__main__.py", "_compat.py"]


def test_the_library_never_imports_the_tools():
    """Importing the public API loads nothing from pyscheduler.tools (a fresh interpreter)."""
    code = "import sys, pyscheduler; print(sorted(m for m in sys.modules if m.startswith('pyscheduler.tools')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
