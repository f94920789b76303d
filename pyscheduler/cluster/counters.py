"""What cluster sync counts, and the convergence delays it measures."""

from __future__ import annotations

import collections
import threading

__all__ = ["Counters", "DELAYS_KEPT"]

DELAYS_KEPT = 200_000


class Counters:
    """Named event counts (``stats()["counts"]``), thread-safe, and the delays
    (seconds) from a change on its origin instance to its application here."""

    __slots__ = ("_counts", "_lock", "delays")

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.delays: collections.deque[float] = collections.deque(maxlen=DELAYS_KEPT)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)
