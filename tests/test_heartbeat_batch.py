"""``update_node_heartbeats``: many beats under one lock hold, all or nothing.

A burst must leave the registry exactly as the same beats applied one call
each would (statuses, load figures, membership, events, the heartbeat
counter), on every path; a bad pair anywhere in it must raise and change
nothing.
"""

from __future__ import annotations

import threading

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    heartbeats,
    make_registry,
    node_info,
    pool,
    registry_state,
    unhealthy_beat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pyscheduler import (
    Heartbeat,
    InvalidHeartbeatError,
    JobRequest,
    MigrationFlags,
    NodeStatus,
    UnknownNodeError,
)
from pyscheduler.domain.events import ChangeKind

POOLS = [pool(1, ["en", "zh"]), pool(2, ["en", "ja"])]
IDS = ("n1", "n2", "n3")


def fleet(flags: MigrationFlags | None = None, clock: FakeClock | None = None):
    nodes = [node_info("n1"), node_info("n2", ["en", "ja"]), node_info("n3", ["en", "zh", "ja"])]
    return make_registry(nodes, pools=POOLS, flags=flags, clock=clock, ready=False)


def heartbeat_count(reg) -> int:
    return reg.metrics()["counters"].get("heartbeats", 0)


@st.composite
def bursts(draw) -> list[tuple[str, Heartbeat]]:
    """Up to 12 beats over the three nodes: load-only, unhealthy, new capabilities."""
    return [
        (draw(st.sampled_from(IDS)), draw(heartbeats()))
        for _ in range(draw(st.integers(0, 12)))
    ]


@settings(max_examples=60, deadline=None)
@given(burst=bursts(), flags=st.sampled_from([MigrationFlags(), MigrationFlags.all_on()]))
def test_a_burst_equals_the_same_beats_one_call_each(burst, flags):
    one, many = fleet(flags), fleet(flags)
    seen_one, seen_many = [], []
    one.subscribe(seen_one.append)
    many.subscribe(seen_many.append)
    statuses = [one.update_node_heartbeat(node_id, hb) for node_id, hb in burst]
    assert many.update_node_heartbeats(burst) == statuses
    assert registry_state(many) == registry_state(one)
    assert seen_many == seen_one
    assert heartbeat_count(many) == heartbeat_count(one) == len(burst)
    assert many.verify_consistency() == []


def test_a_burst_returns_each_status_in_order_and_applies_the_loads():
    clock = FakeClock(50.0)
    reg = fleet(clock=clock)
    burst = [
        ("n1", beat(cpu=5, jobs=2)),
        ("n2", unhealthy_beat()),
        ("n1", beat(cpu=7, jobs=1)),
        ("n3", beat(gpu=None)),
    ]
    statuses = reg.update_node_heartbeats(iter(burst))  # any iterable
    assert statuses == [NodeStatus.READY, NodeStatus.REGISTERING, NodeStatus.READY, NodeStatus.READY]
    n1 = reg.get_node("n1")
    assert (n1.cpu_usage, n1.running_jobs, n1.last_heartbeat) == (7.0, 1, 50.0)
    assert reg.get_node("n3").gpu_usage is None
    assert reg.update_node_heartbeats([]) == []


def test_a_capability_change_inside_a_burst_moves_the_node_to_its_new_pools():
    reg = fleet(MigrationFlags.all_on())
    reg.update_node_heartbeats([(n, beat()) for n in IDS])
    assert reg.get_node("n1").pool_ids == (1,)
    en_ja = node_info("x", ["en", "ja"]).language_capabilities
    reg.update_node_heartbeats([("n2", beat()), ("n1", beat(language_capabilities=en_ja))])
    assert reg.get_node("n1").pool_ids == (2,)
    assert "n1" in reg.pool_members(2) and "n1" not in reg.pool_members(1)
    assert reg.verify_consistency() == []


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ([("n1", beat()), ("ghost", beat())], UnknownNodeError, "ghost"),
        ([("n1", beat()), (None, beat())], UnknownNodeError, "None"),
        ([("n1", beat()), ("n2", {"cpu_usage": 1})], InvalidHeartbeatError, "n2"),
        ([("n1", beat()), ("n2",)], InvalidHeartbeatError, "pairs"),
        ([("n1", beat()), "n2"], InvalidHeartbeatError, "pairs"),
        ([("n1", beat()), ("n2", beat(), 1)], InvalidHeartbeatError, "pairs"),
        (None, InvalidHeartbeatError, "pairs"),
        (7, InvalidHeartbeatError, "pairs"),
    ],
)
def test_a_bad_pair_anywhere_raises_and_changes_nothing(bad, error, match):
    reg = fleet(MigrationFlags.all_on())
    reg.update_node_heartbeats([(n, beat()) for n in IDS])
    events = []
    reg.subscribe(events.append)
    before, beats_before = registry_state(reg), heartbeat_count(reg)
    with pytest.raises(error, match=match):
        reg.update_node_heartbeats(bad)
    assert registry_state(reg) == before
    assert heartbeat_count(reg) == beats_before
    assert events == []


def test_a_beat_for_a_disconnected_node_fails_the_whole_burst():
    reg = fleet()
    reg.update_node_heartbeats([(n, beat()) for n in IDS])
    reg.disconnect_node("n2")
    before = registry_state(reg)
    with pytest.raises(UnknownNodeError, match="register again"):
        reg.update_node_heartbeats([("n1", beat(cpu=80)), ("n2", beat())])
    assert registry_state(reg) == before
    assert reg.get_node("n1").cpu_usage == 10.0


def test_bursts_degrade_a_node_after_three_unhealthy_beats_like_single_calls():
    reg = fleet()
    reg.update_node_heartbeats([(n, beat()) for n in IDS])
    sick = unhealthy_beat(CORE_SERVICES)
    statuses = reg.update_node_heartbeats([("n1", sick)] * 3)
    assert statuses == [NodeStatus.READY, NodeStatus.READY, NodeStatus.DEGRADED]
    events = []
    reg.subscribe(events.append)
    assert reg.update_node_heartbeats([("n1", beat(installed_services=CORE_SERVICES))]) == [NodeStatus.READY]
    assert [(e.kind, e.node_id, e.status) for e in events] == [(ChangeKind.HEARTBEAT, "n1", NodeStatus.READY)]


def test_bursts_from_threads_while_dispatching_keep_the_registry_consistent():
    reg = fleet(MigrationFlags.all_on())
    reg.update_node_heartbeats([(n, beat()) for n in IDS])
    rounds, errors = 300, []

    def receiver(k: int) -> None:
        try:
            for i in range(rounds):
                reg.update_node_heartbeats([(n, beat(cpu=(i + k) % 100, jobs=i % 3)) for n in IDS])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=receiver, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for _ in range(rounds):
        sel = reg.select_node(JobRequest("en", "zh"))
        if sel.node_id is not None:
            reg.release(sel)
    for t in threads:
        t.join()
    assert errors == []
    assert heartbeat_count(reg) == 3 + 3 * rounds * len(IDS)
    assert reg.verify_consistency() == []
    assert all(reg.get_node(n).status is NodeStatus.READY for n in IDS)
