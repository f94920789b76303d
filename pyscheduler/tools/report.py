"""What every tool's report is made of: percentiles of samples and plain-text tables.

One definition each, so ``simulate``, ``bench`` and the cluster runs agree on
what "p99" means and print their tables alike.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

__all__ = ["percentile", "summary", "text_table"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100, linear interpolation between samples); NaN when empty."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """``samples``, ``p50``, ``p99`` and ``max`` of ``values``, each multiplied by ``scale``."""
    if len(values) == 0:
        return {"samples": 0, "p50": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "samples": len(values),
        "p50": percentile(values, 50) * scale,
        "p99": percentile(values, 99) * scale,
        "max": float(max(values)) * scale,
    }


def text_table(
    rows: Sequence[Sequence[str]], right: Collection[int] = (), indent: str = ""
) -> list[str]:
    """``rows`` (the first is usually the header) as aligned lines.

    Columns whose index is in ``right`` are right-aligned, the others left-aligned;
    each line starts with ``indent`` and has no trailing blanks.
    """
    if not rows:
        return []
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            cell.rjust(width) if c in right else cell.ljust(width)
            for c, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
