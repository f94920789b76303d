"""Counters and latency histograms for ``NodeRegistry.metrics()``.

Updates go to per-thread shards without a lock, so the lock-free fast path
can count every call; :meth:`Metrics.snapshot` merges them into plain data.
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

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples (same bounds) to this one."""
        counts = list(other.counts)
        for i, c in enumerate(counts):
            self.counts[i] += c
        self.count += other.count
        self.sum += other.sum
        self.max = max(self.max, other.max)

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


class _Shard:
    """One thread's counters and histograms (only that thread writes them)."""

    __slots__ = ("counters", "histograms")

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.histograms: dict[str, Histogram] = {}


class Metrics:
    """Named counters plus named histograms.

    Each thread updates its own shard without any lock (an update is a few
    hundred nanoseconds cheaper than a locked one, and the dispatch path
    counts every call); :meth:`snapshot` merges the shards. A shard is read
    while its thread may be writing it: each copy is taken in one C call
    under the GIL, and a histogram read mid-update is off by one sample at
    most — never inconsistent in a way that matters for monitoring.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._shards: list[_Shard] = []
        self._lock = threading.Lock()  # guards the shard list only

    def _shard(self) -> _Shard:
        try:
            return self._local.shard
        except AttributeError:
            shard = self._local.shard = _Shard()
            with self._lock:
                self._shards.append(shard)
            return shard

    def inc(self, name: str, n: int = 1) -> None:
        self._shard().counters[name] += n

    def observe(self, name: str, seconds: float) -> None:
        histograms = self._shard().histograms
        hist = histograms.get(name)
        if hist is None:
            hist = histograms[name] = Histogram()
        hist.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            shards = list(self._shards)
        counters: Counter[str] = Counter()
        merged: dict[str, Histogram] = {}
        for shard in shards:
            counters.update(dict(shard.counters))
            for name, hist in list(shard.histograms.items()):
                merged.setdefault(name, Histogram(hist.bounds)).merge(hist)
        return {
            "counters": dict(sorted(counters.items())),
            "histograms": {k: h.to_dict() for k, h in sorted(merged.items())},
        }
