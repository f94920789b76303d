"""The ``.pyi`` stub says what the compiled module really has (``mypy.stubtest``).

A name, signature, constant or class in ``pyscheduler._hotpath`` that the stub
misses or gets wrong fails this test; so does a stub entry with no runtime twin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
pytestmark = pytest.mark.hotpath

ROOT = Path(__file__).resolve().parent.parent


def test_the_stub_matches_the_compiled_module():
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy.stubtest", "pyscheduler._hotpath",
            "--mypy-config-file", str(ROOT / "pyproject.toml"),
            "--allowlist", str(ROOT / "tests" / "stubtest_allowlist.txt"),
            "--ignore-disjoint-bases",  # PEP 800 markers: not needed by the stub's readers
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
