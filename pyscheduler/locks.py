"""Instrumented locks: every acquisition records its wait and its hold time.

``TimedLock("management", metrics).at("heartbeat")`` is a context manager
(one reusable guard per call site) that holds the lock; the wait goes to the
histogram ``<name>_lock_wait_s`` and the hold time to
``<name>_lock_hold_s``. A wait over ``SLOW_WAIT_S`` is counted per site and
logged as a warning naming the site — the symptom the system this replaces
suffered from (dispatch waits of 1–3 s behind one lock).
"""

from __future__ import annotations

import logging
import threading
import time

from .metrics import Metrics

__all__ = ["TimedLock", "SLOW_WAIT_S"]

SLOW_WAIT_S = 0.010
log = logging.getLogger("pyscheduler.locks")


class TimedLock:
    """A ``threading.Lock`` whose every use is measured, by call site."""

    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._metrics = metrics
        self._guards: dict[str, _Guard] = {}

    def at(self, site: str) -> _Guard:
        """The guard for ``site`` (``with lock.at("heartbeat"): ...``)."""
        guard = self._guards.get(site)
        if guard is None:
            guard = self._guards.setdefault(site, _Guard(self, site))
        return guard

    def locked(self) -> bool:
        return self._lock.locked()


class _Guard:
    __slots__ = ("_owner", "_site", "_held_since", "_wait_name", "_hold_name")

    def __init__(self, owner: TimedLock, site: str) -> None:
        self._owner = owner
        self._site = site
        self._held_since = 0.0
        self._wait_name = f"{owner.name}_lock_wait_s"
        self._hold_name = f"{owner.name}_lock_hold_s"

    def __enter__(self) -> None:
        owner = self._owner
        start = time.perf_counter()
        owner._lock.acquire()
        now = time.perf_counter()
        self._held_since = now  # written and read only by the holder
        waited = now - start
        owner._metrics.observe(self._wait_name, waited)
        if waited > SLOW_WAIT_S:
            owner._metrics.inc(f"slow_lock_wait.{owner.name}.{self._site}")
            log.warning("%s lock: waited %.1f ms in %s", owner.name, waited * 1e3, self._site)

    def __exit__(self, *exc: object) -> None:
        held = time.perf_counter() - self._held_since
        self._owner._lock.release()
        self._owner._metrics.observe(self._hold_name, held)
