"""Structured logs: each event a fixed message template plus ``extra=`` fields,
logged after the locks are released, with no handler added by the library."""

from __future__ import annotations

import logging

import pytest
from helpers import FakeClock, beat, make_registry, node_info, phase3, pool, unhealthy_beat

from pyscheduler import JobRequest, MigrationFlags
from pyscheduler.selection import fast
from pyscheduler.state import locks
from pyscheduler.state.locks import TimedLock
from pyscheduler.state.metrics import Metrics

LOGGERS = ("pyscheduler", "pyscheduler.registry", "pyscheduler.sessions", "pyscheduler.locks")


def events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def fields(record: logging.LogRecord, *names: str) -> dict:
    return {n: getattr(record, n) for n in names}


def test_the_library_adds_no_handlers():
    make_registry(["n1"])
    for name in LOGGERS:
        assert logging.getLogger(name).handlers == []


def test_a_node_life_logs_each_status_change_with_its_fields(caplog):
    clock = FakeClock(100.0)
    reg = make_registry(pools=[pool(1, ["en", "zh"])], clock=clock, heartbeat_timeout_s=45)
    with caplog.at_level(logging.INFO, logger="pyscheduler.registry"):
        reg.register_node_with_policy(node_info("n1"))
        reg.update_node_heartbeat("n1", beat())  # REGISTERING -> READY
        reg.update_node_heartbeat("n1", beat())  # no change: no line
        reg.mark_node_draining("n1")
        clock.advance(46)
        assert reg.sweep() == ["n1"]
        reg.register_node_with_policy(node_info("n1"), policy="replace")
        reg.disconnect_node("n1")
        reg.remove_node("n1")
    (registered, replaced) = events(caplog, "node.registered")
    assert fields(registered, "node_id", "policy", "replaced") == {
        "node_id": "n1", "policy": "reject_duplicate", "replaced": False,
    }  # fmt: skip
    assert replaced.replaced is True and replaced.policy == "replace"
    changes = [fields(r, "node_id", "from_state", "to_state", "cause") for r in events(caplog, "node.status")]
    assert changes == [
        {"node_id": "n1", "from_state": "registering", "to_state": "ready", "cause": "heartbeat"},
        {"node_id": "n1", "from_state": "ready", "to_state": "draining", "cause": "drain"},
        {"node_id": "n1", "from_state": "draining", "to_state": "offline", "cause": "sweep"},
        {"node_id": "n1", "from_state": "registering", "to_state": "offline", "cause": "disconnect"},
    ]
    assert [r.node_id for r in events(caplog, "node.removed")] == ["n1"]
    status = events(caplog, "node.status")[0]
    assert status.msg == "node %s: %s -> %s (%s)"  # the template a pipeline can match on
    assert status.getMessage() == "node n1: registering -> ready (heartbeat)"
    assert {r.name for r in caplog.records} == {"pyscheduler.registry"}


def test_a_burst_of_heartbeats_logs_each_change_once(caplog):
    reg = make_registry(["a", "b"], ready=False)
    with caplog.at_level(logging.INFO, logger="pyscheduler.registry"):
        reg.update_node_heartbeats([("a", beat()), ("b", unhealthy_beat()), ("a", beat())])
    changes = [fields(r, "node_id", "from_state", "to_state") for r in events(caplog, "node.status")]
    assert changes == [{"node_id": "a", "from_state": "registering", "to_state": "ready"}]


def test_sweep_logs_expired_reservations_and_config_changes(caplog):
    clock = FakeClock(100.0)
    reg = make_registry(["n1"], pools=[pool(1, ["en", "zh"])], clock=clock, reservation_ttl_s=30)
    assert reg.select_node(JobRequest("en", "zh")).ok
    with caplog.at_level(logging.INFO, logger="pyscheduler.registry"):
        clock.advance(31)
        reg.update_node_heartbeat("n1", beat())
        reg.sweep()
        reg.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])))
    (expired,) = events(caplog, "reservations.expired")
    assert expired.count == 1
    (config,) = events(caplog, "config.phase3")
    assert fields(config, "pools", "generated_pools") == {"pools": 2, "generated_pools": 0}


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(MigrationFlags(use_session_runtime=True), id="legacy"),
        pytest.param(MigrationFlags.all_on(), id="fast", marks=pytest.mark.hotpath),
    ],
)
def test_a_session_rebind_names_the_session_and_the_dropped_pool(flags, caplog):
    reg = make_registry(["n1"], pools=[pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"])], flags=flags)
    job = JobRequest("en", "zh", session_id="call-7")
    assert reg.select_node(job).preferred_pool == 1
    with caplog.at_level(logging.INFO, logger="pyscheduler.sessions"):
        reg.set_phase3_config(phase3(pool(2, ["en", "ja", "zh"])))
        reg.select_node(job)
    (rebound,) = events(caplog, "session.rebound")
    assert fields(rebound, "session_id", "pool_id", "src_lang", "tgt_lang") == {
        "session_id": "call-7", "pool_id": 1, "src_lang": "en", "tgt_lang": "zh",
    }  # fmt: skip


@pytest.mark.hotpath
def test_a_shadow_mismatch_names_both_decisions(monkeypatch, caplog):
    reg = make_registry(["n1"], pools=[pool(1, ["en", "zh"])], flags=MigrationFlags(shadow_compare=True))
    real = fast.select

    def wrong(snap, job, *args, **kwargs):  # the fast path "decides" differently: n1 excluded
        job = JobRequest(job.src_lang, job.tgt_lang, session_id=job.session_id, exclude_node_ids={"n1"})
        return real(snap, job, *args, **kwargs)

    monkeypatch.setattr(fast, "select", wrong)
    with caplog.at_level(logging.WARNING, logger="pyscheduler.registry"):
        reg.select_node(JobRequest("en", "zh", session_id="s1"))
    (mismatch,) = events(caplog, "shadow.mismatch")
    assert fields(mismatch, "src_lang", "tgt_lang", "session_id", "served", "fast_node_id", "legacy_node_id") == {
        "src_lang": "en", "tgt_lang": "zh", "session_id": "s1", "served": "legacy",
        "fast_node_id": None, "legacy_node_id": "n1",
    }  # fmt: skip
    assert reg.metrics()["counters"]["shadow_mismatch"] == 1


def test_a_failing_listener_is_logged_with_its_change(caplog):
    reg = make_registry()

    def broken(event):
        raise RuntimeError("listener bug")

    reg.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="pyscheduler.registry"):
        reg.register_node_with_policy(node_info("n1"))
    (failed,) = events(caplog, "listener.failed")
    assert failed.change == "registered" and "broken" in failed.listener
    assert failed.exc_info is not None


class _BusyLock:
    """Found held by the non-blocking try, then granted to the blocking acquire."""

    def __init__(self) -> None:
        import threading

        self.inner = threading.Lock()

    def acquire(self, blocking: bool = True) -> bool:
        return self.inner.acquire() if blocking else False

    def release(self) -> None:
        self.inner.release()

    def locked(self) -> bool:
        return self.inner.locked()


def test_a_slow_lock_wait_is_logged_after_the_release_with_wait_ms(monkeypatch, caplog):
    lock = TimedLock("registry", Metrics())
    lock._lock = _BusyLock()
    readings = iter([1.000, 1.030, 1.030, 1.031])
    monkeypatch.setattr(locks, "_now", lambda: next(readings))
    held_while_logging = []

    class Probe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held_while_logging.append(lock.locked())

    probe = Probe()
    logging.getLogger("pyscheduler.locks").addHandler(probe)
    try:
        with caplog.at_level(logging.WARNING, logger="pyscheduler.locks"):
            with lock.at("select_node"):
                assert events(caplog, "lock.slow_wait") == []  # not while the lock is held
    finally:
        logging.getLogger("pyscheduler.locks").removeHandler(probe)
    (slow,) = events(caplog, "lock.slow_wait")
    assert fields(slow, "lock", "site") == {"lock": "registry", "site": "select_node"}
    assert slow.wait_ms == pytest.approx(30.0)
    assert held_while_logging == [False]
