"""Counters and latency histograms for ``NodeRegistry.metrics()``.

Updates go to per-thread shards without a lock, so the lock-free fast path
can count every call; :meth:`Metrics.snapshot` merges them into plain data.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from typing import Any

__all__ = ["Count", "Histogram", "Metrics", "LATENCY_BUCKETS_S"]

LATENCY_BUCKETS_S: tuple[float, ...] = tuple(
    float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2, 5)
)  # 1 µs … 5 s, exact decimals; anything above lands in the overflow bucket


class Histogram:
    """A fixed-bucket histogram of durations in seconds (Prometheus-style ``le`` buckets)."""

    __slots__ = ("bounds", "counts", "sum", "max")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.max = 0.0

    @property
    def count(self) -> int:
        """The number of samples (the sum of the buckets, so never out of step with them)."""
        return sum(self.counts)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def observe_zero(self) -> None:
        """``observe(0.0)``, cheaper: the sample lands in the first bucket."""
        self.counts[0] += 1

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples (same bounds) to this one."""
        counts = list(other.counts)
        for i, c in enumerate(counts):
            self.counts[i] += c
        self.sum += other.sum
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (0 when empty)."""
        count = self.count
        if not count:
            return 0.0
        rank = q * count
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


class Count:
    """A counter reported under one name, for a caller that serializes its own
    updates (``count.n += 1`` under its lock)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


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

    A caller that already serializes its updates (a lock recording its own
    waits) takes a :meth:`histogram` or :meth:`count` of its own instead and
    skips the shard lookup; the snapshot merges those under their names too.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._shards: list[_Shard] = []
        self._owned: list[tuple[str, Histogram]] = []
        self._owned_counts: list[tuple[str, Count]] = []
        self._lock = threading.Lock()  # guards the shard and owned lists only

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

    def histogram(self, name: str) -> Histogram:
        """A new histogram reported under ``name`` for a caller that serializes
        its own updates (a lock that records into it only while held): it
        skips the per-thread shard lookup of :meth:`observe`."""
        hist = Histogram()
        with self._lock:
            self._owned.append((name, hist))
        return hist

    def count(self, name: str) -> Count:
        """A new counter reported under ``name`` (added to :meth:`inc`'s counts)
        for a caller that serializes its own updates, like :meth:`histogram`."""
        count = Count()
        with self._lock:
            self._owned_counts.append((name, count))
        return count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            shards = list(self._shards)
            owned = list(self._owned)
            owned_counts = [(name, c.n) for name, c in self._owned_counts if c.n]
        counters: Counter[str] = Counter()
        for name, n in owned_counts:
            counters[name] += n
        merged: dict[str, Histogram] = {}
        for shard in shards:
            counters.update(dict(shard.counters))
            owned.extend(list(shard.histograms.items()))
        for name, hist in owned:
            merged.setdefault(name, Histogram(hist.bounds)).merge(hist)
        return {
            "counters": dict(sorted(counters.items())),
            "histograms": {k: h.to_dict() for k, h in sorted(merged.items())},
        }
