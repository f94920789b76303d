"""``TimedLock``: every acquisition is counted, contended waits are timed, slow
waits are counted per site and logged, and the histograms reach ``Metrics``."""

from __future__ import annotations

import logging
import threading

import pytest

from pyscheduler.state import locks
from pyscheduler.state.locks import SLOW_WAIT_S, TimedLock
from pyscheduler.state.metrics import Metrics


class ScriptedClock:
    """``perf_counter`` stand-in returning the given readings in order."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0)


class BusyLock:
    """A lock that is always found held, then granted to the blocking acquire."""

    def __init__(self) -> None:
        self.inner = threading.Lock()

    def acquire(self, blocking: bool = True) -> bool:
        return self.inner.acquire() if blocking else False

    def release(self) -> None:
        self.inner.release()

    def locked(self) -> bool:
        return self.inner.locked()


def histograms(metrics: Metrics) -> dict:
    return metrics.snapshot()["histograms"]


def test_uncontended_acquisitions_record_a_zero_wait_and_their_hold():
    metrics = Metrics()
    lock = TimedLock("registry", metrics)
    for site in ("heartbeat", "heartbeat", "register"):
        with lock.at(site):
            assert lock.locked()
    assert not lock.locked()
    h = histograms(metrics)
    assert h["registry_lock_wait_s"]["count"] == 3
    assert h["registry_lock_wait_s"]["buckets"]["1e-06"] == 3 and h["registry_lock_wait_s"]["max"] == 0.0
    assert h["registry_lock_hold_s"]["count"] == 3


def test_a_contended_wait_is_timed_and_a_slow_one_counted_and_logged(monkeypatch, caplog):
    metrics = Metrics()
    lock = TimedLock("management", metrics)
    lock._lock = BusyLock()  # before the first guard, which binds it
    # wait from 1.000 to 1.025 (25 ms, slow), held from 1.025 to 1.026
    monkeypatch.setattr(locks, "_now", ScriptedClock(1.000, 1.025, 1.025, 1.026))
    with caplog.at_level(logging.WARNING, logger="pyscheduler.locks"):
        with lock.at("rebuild"):
            pass
    snap = metrics.snapshot()
    wait, hold = snap["histograms"]["management_lock_wait_s"], snap["histograms"]["management_lock_hold_s"]
    assert wait["count"] == 1 and wait["max"] == pytest.approx(0.025) and wait["buckets"]["0.05"] == 1
    assert hold["count"] == 1 and hold["sum"] == pytest.approx(0.001)
    assert snap["counters"] == {"slow_lock_wait.management.rebuild": 1}
    assert ["management lock: waited 25.0 ms in rebuild"] == [r.getMessage() for r in caplog.records]


def test_a_contended_wait_under_the_threshold_is_not_reported_slow(monkeypatch, caplog):
    metrics = Metrics()
    lock = TimedLock("registry", metrics)
    lock._lock = BusyLock()
    waited = SLOW_WAIT_S / 2
    monkeypatch.setattr(locks, "_now", ScriptedClock(0.0, waited, waited, waited))
    with caplog.at_level(logging.WARNING, logger="pyscheduler.locks"):
        with lock.at("heartbeat"):
            pass
    assert metrics.snapshot()["counters"] == {}
    assert caplog.records == []
    assert histograms(metrics)["registry_lock_wait_s"]["max"] == pytest.approx(waited)


def test_the_lock_is_released_when_the_body_raises():
    metrics = Metrics()
    lock = TimedLock("registry", metrics)
    with pytest.raises(RuntimeError):
        with lock.at("set_flags"):
            raise RuntimeError("boom")
    assert not lock.locked()
    assert histograms(metrics)["registry_lock_hold_s"]["count"] == 1


def test_one_guard_per_site():
    lock = TimedLock("registry", Metrics())
    assert lock.at("heartbeat") is lock.at("heartbeat")
    assert lock.at("heartbeat") is not lock.at("register")


def test_threads_counting_through_one_lock_lose_no_sample():
    metrics = Metrics()
    lock = TimedLock("registry", metrics)
    shared = [0]
    per_thread = 2_000

    def worker() -> None:
        guard = lock.at("heartbeat")
        for _ in range(per_thread):
            with guard:
                shared[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h = histograms(metrics)
    assert shared[0] == 4 * per_thread
    assert h["registry_lock_wait_s"]["count"] == h["registry_lock_hold_s"]["count"] == 4 * per_thread
    assert sum(h["registry_lock_wait_s"]["buckets"].values()) == 4 * per_thread


def test_two_locks_of_one_name_are_merged_and_owned_counts_reported():
    metrics = Metrics()
    a, b = TimedLock("registry", metrics), TimedLock("registry", metrics)
    with a.at("x"):
        pass
    with b.at("y"):
        pass
    beats = metrics.count("heartbeats")
    beats.n += 5
    metrics.inc("heartbeats", 2)
    snap = metrics.snapshot()
    assert snap["histograms"]["registry_lock_wait_s"]["count"] == 2
    assert snap["counters"]["heartbeats"] == 7
