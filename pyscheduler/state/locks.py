"""Instrumented locks: every acquisition records its wait and its hold time.

``TimedLock("management", metrics).at("heartbeat")`` is a context manager
(one reusable guard per call site) that holds the lock; the wait goes to the
histogram ``<name>_lock_wait_s`` and the hold time to
``<name>_lock_hold_s``. A wait over ``SLOW_WAIT_S`` is counted per site and
logged (after the release) as a warning naming the site — the symptom the system this replaces
suffered from (dispatch waits of 1–3 s behind one lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from . import logs
from .metrics import Metrics

__all__ = ["TimedLock", "SLOW_WAIT_S"]

SLOW_WAIT_S = 0.010
_now = time.perf_counter


class TimedLock:
    """A ``threading.Lock`` whose every use is measured, by call site.

    The two histograms belong to the lock and are written only by the thread
    that holds it, so recording costs no shard lookup and no second lock. An
    acquisition that finds the lock free records a wait of 0 without reading
    the clock; only a contended one is timed.
    """

    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._metrics = metrics
        self._guards: dict[str, _Guard] = {}
        self._wait = metrics.histogram(f"{name}_lock_wait_s")
        self._hold = metrics.histogram(f"{name}_lock_hold_s")

    def at(self, site: str) -> _Guard:
        """The guard for ``site`` (``with lock.at("heartbeat"): ...``)."""
        guard = self._guards.get(site)
        if guard is None:
            guard = self._guards.setdefault(site, _Guard(self, site))
        return guard

    def locked(self) -> bool:
        return self._lock.locked()

    @property
    def probe(self) -> Callable[[], bool]:
        """The underlying lock's own ``locked`` method: a builtin that answers
        without running Python code (what the compiled heartbeat checks)."""
        return self._lock.locked

    def _slow_wait(self, site: str, waited: float) -> None:
        """Count a slow wait and log it (called after the lock is released)."""
        self._metrics.inc(f"slow_lock_wait.{self.name}.{site}")
        logs.slow_lock_wait(self.name, site, waited)


class _Guard:
    __slots__ = ("_owner", "_site", "_lock", "_wait", "_hold", "_held_since", "_slow_wait_s")

    def __init__(self, owner: TimedLock, site: str) -> None:
        self._owner = owner
        self._site = site
        self._lock = owner._lock
        self._wait = owner._wait
        self._hold = owner._hold
        self._held_since = 0.0  # written and read only by the holder
        self._slow_wait_s = 0.0  # a slow wait to report once the lock is released (holder only)

    def __enter__(self) -> None:
        lock = self._lock
        if lock.acquire(False):
            self._wait.observe_zero()
        else:
            start = _now()
            lock.acquire()
            waited = _now() - start
            self._wait.observe(waited)
            if waited > SLOW_WAIT_S:
                self._slow_wait_s = waited
        self._held_since = _now()

    def __exit__(self, *exc: object) -> None:
        self._hold.observe(_now() - self._held_since)
        slow = self._slow_wait_s
        if slow:
            self._slow_wait_s = 0.0
        self._lock.release()
        if slow:  # logged outside the lock: a slow handler must not lengthen the hold
            self._owner._slow_wait(self._site, slow)
