"""No memory growth on the fast path (docs/DESIGN.md §8: RSS growth over 10 M selections: none).

The loop runs in a fresh interpreter (tests/isolated/select_rss.py); here it
is 600,000 selections, enough for a per-call leak of even a few bytes (a lost
bytes object, an unfreed attempt buffer, a token never dropped) to show as
megabytes. ``python tests/isolated/select_rss.py 10000000`` is the full figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hotpath

SCRIPT = Path(__file__).parent / "isolated" / "select_rss.py"
SELECTIONS = 600_000
ALLOWED_GROWTH_KIB = 1024  # allocator noise; a 2-byte-per-call leak would be 1.1 MiB


def test_fast_path_selections_do_not_grow_rss():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(SELECTIONS)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    growth_kib = int(proc.stdout.strip().splitlines()[-1])
    assert growth_kib <= ALLOWED_GROWTH_KIB, f"RSS grew {growth_kib} KiB over {SELECTIONS} selections"
