"""The session domain: binding, stickiness, rebinding, expiry and bounds (docs/DESIGN.md §5)."""

from __future__ import annotations

import logging

import pytest
from helpers import FakeClock, make_registry, node_info, phase3, pool

from pyscheduler import JobRequest, MigrationFlags
from pyscheduler.domain.hashing import pool_hash
from pyscheduler.state.sessions import SessionRuntimeManager, binding_pool

SESSIONS = MigrationFlags(use_session_runtime=True)


@pytest.fixture(params=["legacy", "fast"])
def flags(request):
    return MigrationFlags.all_on() if request.param == "fast" else SESSIONS


def _registry(flags, pools, clock, **cfg):
    nodes = [node_info(f"n{i}", ["en", "zh", "ja"]) for i in range(3)]
    return make_registry(nodes, pools=pools, clock=clock, flags=flags, **cfg)


def test_binding_rule_is_the_affinity_hash_or_the_first_pool():
    cfg = phase3(pool(1, ["en", "zh"]), enable_session_affinity=True, hash_seed=7)
    job = JobRequest("en", "zh", session_id="call-1")
    assert binding_pool([5, 6, 7], job, cfg) == [5, 6, 7][pool_hash("call-1", 7) % 3]
    assert binding_pool([5, 6, 7], job, phase3(pool(1, ["en", "zh"]))) == 5
    assert binding_pool([], job, cfg) is None


def test_a_session_stays_on_its_pool_when_a_new_pool_becomes_eligible(flags):
    clock = FakeClock(100.0)
    wide = pool(2, ["en", "ja", "zh"])
    reg = _registry(flags, [wide], clock)
    job = JobRequest("en", "zh", session_id="s1")
    first = reg.select_node(job)
    assert first.preferred_pool == 2 and reg.sessions.get("s1").bound_pool == 2
    # a narrower pool appears: it sorts first among the eligible pools, but the
    # session keeps the pool it was bound to while that stays eligible
    reg.set_phase3_config(phase3(wide, pool(1, ["en", "zh"])))
    assert reg.select_node(job).preferred_pool == 2
    fresh = reg.select_node(JobRequest("en", "zh", session_id="s2"))
    assert fresh.preferred_pool == 1  # a new session binds by the rule


def test_a_pool_that_is_no_longer_eligible_is_dropped_with_a_log_line(flags, caplog):
    clock = FakeClock(100.0)
    reg = _registry(flags, [pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"])], clock)
    job = JobRequest("en", "zh", session_id="s1")
    assert reg.select_node(job).preferred_pool == 1
    with caplog.at_level(logging.INFO, logger="pyscheduler.sessions"):
        reg.set_phase3_config(phase3(pool(2, ["en", "ja", "zh"])))
        assert reg.select_node(job).preferred_pool == 2
    assert "no longer eligible" in caplog.text
    assert reg.sessions.get("s1").bound_pool == 2


def test_a_pair_change_rebinds(flags):
    clock = FakeClock(100.0)
    reg = _registry(flags, [pool(1, ["en", "zh"]), pool(2, ["en", "ja"])], clock)
    assert reg.select_node(JobRequest("en", "zh", session_id="s1")).preferred_pool == 1
    assert reg.select_node(JobRequest("en", "ja", session_id="s1")).preferred_pool == 2
    entry = reg.sessions.get("s1")
    assert entry.pair[:2] == ("en", "ja") and entry.bound_pool == 2
    assert entry.last_node is not None


def test_a_tenant_override_wins_over_the_binding(flags):
    clock = FakeClock(100.0)
    reg = _registry(
        flags, [pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"])], clock, tenant_overrides={"acme": 2}
    )
    job = JobRequest("en", "zh", session_id="s1", tenant_id="acme")
    assert reg.select_node(job).preferred_pool == 2
    assert reg.sessions.get("s1").bound_pool == 1  # bound by the rule, not the override


def test_sessions_are_bounded_and_expire():
    clock = FakeClock(0.0)
    manager = SessionRuntimeManager(max_sessions=3, idle_ttl_s=10.0, clock=clock)
    for i in range(5):
        manager.get_or_create(f"s{i}")
    assert len(manager) == 3 and manager.evicted == 2
    assert manager.get("s0") is None and manager.get("s4") is not None
    manager.get_or_create("s2")  # used again: now the most recent
    manager.get_or_create("s5")
    assert manager.get("s3") is None and manager.get("s2") is not None
    clock.advance(11.0)
    assert manager.expire() == 3 and len(manager) == 0


def test_an_idle_session_starts_over():
    clock = FakeClock(0.0)
    manager = SessionRuntimeManager(idle_ttl_s=5.0, clock=clock)
    entry = manager.get_or_create("s")
    entry.bound_pool = 9
    clock.advance(6.0)
    assert manager.get_or_create("s").bound_pool is None and manager.expired == 1


def test_cached_members_follow_the_snapshot_generation():
    clock = FakeClock(0.0)
    manager = SessionRuntimeManager(members_ttl_s=5.0, clock=clock)
    manager.get_or_create("s").bound_pool = 1
    loads = []

    def load(pool_id):
        loads.append(pool_id)
        return (f"n{len(loads)}",)

    assert manager.members("s", generation=1, now=0.0, load=load) == ("n1",)
    assert manager.members("s", generation=1, now=1.0, load=load) == ("n1",)  # cached
    assert manager.members("s", generation=2, now=1.0, load=load) == ("n2",)  # new generation
    assert manager.members("s", generation=2, now=9.0, load=load) == ("n3",)  # TTL passed
    assert loads == [1, 1, 1]


def test_a_million_sessions_stay_bounded():
    clock = FakeClock(0.0)
    manager = SessionRuntimeManager(max_sessions=1000, clock=clock)
    for i in range(100_000):
        manager.get_or_create(f"s{i}")
    assert len(manager) == 1000 and manager.evicted == 99_000
