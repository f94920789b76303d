"""``SnapshotPublisher``: which runtime snapshot generation is current, and which are still read.

A generation is built outside this object (from a management capture with no
lock held, or from the fleet under the registry lock) and handed to
:meth:`SnapshotPublisher.install`. Install never goes backwards: a build that
finishes after a newer one was installed is counted but not made current.
Every installed generation is reference-tracked through ``weakref.finalize``
so the slot allocator can tell when a removed node's slot is no longer read by
any live generation (:meth:`oldest_live_version`).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable

from ..runtime.snapshot import RuntimeSnapshot
from ..state.metrics import Metrics

__all__ = ["SnapshotPublisher"]


class SnapshotPublisher:
    """The current :class:`RuntimeSnapshot` and the versions of every generation still alive."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._current: RuntimeSnapshot | None = None
        self._live_versions: Counter[int] = Counter()  # generations still referenced
        self._versions_lock = threading.Lock()  # a leaf: finalizers run under any other lock
        self.build_lock = threading.Lock()  # one two-phase build at a time

    @property
    def current(self) -> RuntimeSnapshot | None:
        """The newest installed generation (``None`` before the first build)."""
        return self._current

    def current_if(self, version: int) -> RuntimeSnapshot | None:
        """The current generation when it is exactly ``version``, else ``None``."""
        snap = self._current
        return snap if snap is not None and snap.version == version else None

    def build(self, build: Callable[[], RuntimeSnapshot]) -> RuntimeSnapshot:
        """Run ``build()`` (timed) and install what it returns."""
        start = time.perf_counter()
        snap = build()
        return self.install(snap, time.perf_counter() - start)

    def install(self, snap: RuntimeSnapshot, build_s: float) -> RuntimeSnapshot:
        """Make ``snap`` current unless a newer generation already is; return ``snap``."""
        with self._versions_lock:
            self._live_versions[snap.version] += 1
        # through a weak reference: a finalizer holding the publisher would keep it,
        # and with it the current generation, alive for ever (finalizers are global)
        weakref.finalize(snap, _released, weakref.ref(self), snap.version)
        current = self._current
        if current is None or snap.version >= current.version:
            self._current = snap
        self._metrics.observe("snapshot_build_s", build_s)
        self._metrics.inc("snapshots_built")
        return snap

    def oldest_live_version(self) -> float:
        """The oldest generation some reader may still hold (``inf`` when none)."""
        with self._versions_lock:
            return min(self._live_versions, default=math.inf)

    def released(self, version: int) -> None:
        """One reference-tracked generation of ``version`` was freed."""
        with self._versions_lock:
            self._live_versions[version] -= 1
            if self._live_versions[version] <= 0:
                del self._live_versions[version]


def _released(publisher: weakref.ref[SnapshotPublisher], version: int) -> None:
    """Finalizer of a generation: tell its publisher, if the publisher still exists."""
    owner = publisher()
    if owner is not None:
        owner.released(version)
