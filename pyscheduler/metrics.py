"""Counters and latency histograms for ``NodeRegistry.metrics()``.

:class:`Metrics` has its own small lock, a leaf of the lock order: it is
taken for a counter or histogram update and nothing else, so the lock-free
fast path can count too. :meth:`Metrics.snapshot` copies everything out as
plain data.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from typing import Any

__all__ = ["Histogram", "Metrics", "LATENCY_BUCKETS_S"]

LATENCY_BUCKETS_S: tuple[float, ...] = tuple(
    float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2, 5)
)  # 1 µs … 5 s, exact decimals; anything above lands in the overflow bucket


class Histogram:
    """A fixed-bucket histogram of durations in seconds (Prometheus-style ``le`` buckets)."""

    __slots__ = ("bounds", "counts", "count", "sum", "max")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (0 when empty)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else self.max
        return self.max

    def to_dict(self) -> dict[str, Any]:
        buckets = {f"{b:g}": c for b, c in zip(self.bounds, self.counts)}
        buckets["+Inf"] = self.counts[-1]
        return {
            "count": self.count,
            "sum": self.sum,
            "max": self.max,
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "buckets": buckets,
        }


class Metrics:
    """Named counters plus named histograms."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.histograms: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            hist = self.histograms.get(name)
            if hist is None:
                hist = self.histograms[name] = Histogram()
            hist.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(sorted(self.counters.items())),
                "histograms": {k: h.to_dict() for k, h in sorted(self.histograms.items())},
            }
