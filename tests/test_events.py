"""Change events reach subscribers after each local change, outside the lock."""

from __future__ import annotations

import pytest
from helpers import FakeClock, beat, make_registry, node_info, phase3, pool

from pyscheduler import CoreServicesConfig, DuplicateNodeError, NodeStatus
from pyscheduler.domain.events import ChangeKind


def _recording(reg):
    events = []
    unsubscribe = reg.subscribe(events.append)
    return events, unsubscribe


def test_each_local_change_is_one_event_in_order():
    clock = FakeClock(100.0)
    reg = make_registry([], pools=[pool(1, ["en", "zh"])], clock=clock)
    events, _ = _recording(reg)
    reg.register_node_with_policy(node_info("n1"))
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    reg.mark_node_draining("n1")
    reg.set_phase3_config(phase3(pool(2, ["en", "ja"])))
    reg.set_core_services_config(CoreServicesConfig(asr_service_id="asr"))
    reg.disconnect_node("n1")
    reg.remove_node("n1")
    kinds = [e.kind for e in events]
    assert kinds == [
        ChangeKind.REGISTERED,
        ChangeKind.HEARTBEAT,
        ChangeKind.DRAINING,
        ChangeKind.PHASE3_CONFIG,
        ChangeKind.CORE_SERVICES_CONFIG,
        ChangeKind.DISCONNECTED,
        ChangeKind.REMOVED,
    ]
    assert events[0].info.node_id == "n1"
    assert events[1].status is NodeStatus.READY and events[1].heartbeat == beat()
    assert events[3].phase3.pools[0].pool_id == 2


def test_sweep_reports_each_status_change():
    clock = FakeClock(100.0)
    reg = make_registry([node_info("a"), node_info("b")], pools=[pool(1, ["en", "zh"])], clock=clock)
    events, _ = _recording(reg)
    clock.advance(1000)
    assert reg.sweep() == ["a", "b"]
    assert [(e.kind, e.node_id, e.status) for e in events] == [
        (ChangeKind.STATUS, "a", NodeStatus.OFFLINE),
        (ChangeKind.STATUS, "b", NodeStatus.OFFLINE),
    ]


def test_listeners_run_outside_the_lock_and_failures_do_not_undo_changes(caplog):
    reg = make_registry([], pools=[pool(1, ["en", "zh"])], clock=FakeClock())
    seen = []

    def reads_the_registry(event):  # would deadlock if called under the registry lock
        seen.append((event.kind, reg.node_ids()))

    def broken(event):
        raise RuntimeError("listener bug")

    reg.subscribe(broken)
    reg.subscribe(reads_the_registry)
    reg.register_node_with_policy(node_info("n1"))
    assert seen == [(ChangeKind.REGISTERED, ["n1"])]
    assert reg.node_ids() == ["n1"]
    assert "listener bug" in caplog.text


def test_unsubscribe_stops_delivery_and_bad_input_emits_nothing():
    reg = make_registry([], pools=[pool(1, ["en", "zh"])], clock=FakeClock())
    events, unsubscribe = _recording(reg)
    reg.register_node_with_policy(node_info("n1"))
    with pytest.raises(DuplicateNodeError):
        reg.register_node_with_policy(node_info("n1"))
    assert len(events) == 1
    unsubscribe()
    reg.remove_node("n1")
    assert len(events) == 1
