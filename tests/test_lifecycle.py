"""The node lifecycle of docs/DESIGN.md §6, driven by an injected fake clock.

REGISTERING → READY (healthy beat) · READY → DEGRADED (3 unhealthy beats in a
row) · DEGRADED → READY (healthy beat) · stale → OFFLINE at sweep · warm-up
expiry → DEGRADED at sweep · OFFLINE → READY/REGISTERING on a beat ·
DRAINING (operator) · disconnect · remove.
"""

from __future__ import annotations

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    counts,
    make_registry,
    node_info,
    pool,
    services,
    stopped,
    unhealthy_beat,
)

from pyscheduler import (
    InstalledService,
    JobRequest,
    NodeStatus,
    Reason,
    ServiceState,
    ServiceType,
    UnknownNodeError,
)

EN_ZH = pool(1, ["en", "zh"])
JOB = JobRequest("en", "zh", session_id="s")
TIMEOUT = 45.0  # Phase3Config defaults
WARMUP = 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def reg(clock):
    """One node n1 (every core service RUNNING), REGISTERING, in pool 1."""
    return make_registry([node_info("n1")], pools=[EN_ZH], clock=clock, ready=False)


def status(reg, node_id="n1") -> NodeStatus:
    return reg.get_node(node_id).status


def reason(reg, job=JOB):
    sel = reg.select_node(job)
    if sel.ok:
        reg.release(sel)
        return None
    return sel.breakdown.top_reason


# -- REGISTERING -------------------------------------------------------------------------


def test_registering_becomes_ready_on_one_healthy_beat(reg):
    assert status(reg) is NodeStatus.REGISTERING
    assert reason(reg) is Reason.STATUS_NOT_READY
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    assert status(reg) is NodeStatus.READY
    assert reason(reg) is None


@pytest.mark.parametrize(
    "svcs",
    [
        (),  # no service at all
        services("SEMANTIC", "TONE"),  # no core type installed
        stopped(CORE_SERVICES, "NMT"),  # one core service not RUNNING
        CORE_SERVICES[:2] + services("TTS", state=ServiceState.ERROR),
    ],
    ids=["none", "no-core", "nmt-stopped", "tts-error"],
)
def test_unhealthy_beats_keep_a_node_registering(clock, svcs):
    reg = make_registry([node_info("n1", svcs=svcs)], pools=[EN_ZH], clock=clock, ready=False)
    for _ in range(5):
        assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.REGISTERING


def test_partial_core_is_healthy(clock):
    reg = make_registry([node_info("n1", svcs=services("ASR"))], clock=clock, ready=False)
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY


def test_health_is_judged_on_the_services_the_beat_reports(reg):
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.REGISTERING
    assert (
        reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES)) is NodeStatus.READY
    )


def test_no_gpu_node_is_ready_but_rejected_at_dispatch(clock):
    reg = make_registry([node_info("n1", has_gpu=False)], pools=[EN_ZH], clock=clock, ready=False)
    assert reg.update_node_heartbeat("n1", beat(gpu=None)) is NodeStatus.READY
    sel = reg.select_node(JOB)
    assert not sel.ok and dict(sel.breakdown) == {Reason.GPU_UNAVAILABLE: 1}


def test_registering_past_warmup_is_degraded_at_sweep(reg, clock):
    clock.advance(30)
    reg.update_node_heartbeat("n1", unhealthy_beat())  # keeps it fresh, not READY
    clock.advance(WARMUP - 30)
    assert reg.sweep() == []  # exactly warmup_s: not yet
    assert status(reg) is NodeStatus.REGISTERING
    clock.advance(1)
    assert reg.sweep() == ["n1"]
    assert status(reg) is NodeStatus.DEGRADED
    assert reg.sweep() == []  # once
    assert (
        reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES)) is NodeStatus.READY
    )


def test_a_ready_node_is_not_touched_by_warmup(reg, clock):
    reg.update_node_heartbeat("n1", beat())
    for _ in range(4):
        clock.advance(WARMUP / 2)
        reg.update_node_heartbeat("n1", beat())
        assert reg.sweep() == []
    assert status(reg) is NodeStatus.READY


# -- READY <-> DEGRADED ---------------------------------------------------------------


def test_three_unhealthy_beats_in_a_row_degrade(reg):
    reg.update_node_heartbeat("n1", beat())
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY  # 2 are not enough
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.DEGRADED
    assert reason(reg) is Reason.STATUS_NOT_READY
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.DEGRADED


def test_a_healthy_beat_resets_the_streak(reg):
    reg.update_node_heartbeat("n1", beat())
    for _ in range(3):
        reg.update_node_heartbeat("n1", unhealthy_beat())
        reg.update_node_heartbeat("n1", unhealthy_beat())
        assert (
            reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES))
            is NodeStatus.READY
        )
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.DEGRADED


def test_unhealthy_beats_while_registering_do_not_count_once_ready(reg):
    reg.update_node_heartbeat("n1", unhealthy_beat())
    reg.update_node_heartbeat("n1", unhealthy_beat())
    assert (
        reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES)) is NodeStatus.READY
    )
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY


def test_degraded_becomes_ready_on_one_healthy_beat(reg):
    reg.update_node_heartbeat("n1", beat())
    for _ in range(3):
        reg.update_node_heartbeat("n1", unhealthy_beat())
    assert status(reg) is NodeStatus.DEGRADED
    assert (
        reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES)) is NodeStatus.READY
    )
    assert reason(reg) is None


def test_a_ready_node_with_a_stopped_service_is_rejected_before_it_degrades(reg):
    reg.update_node_heartbeat("n1", beat())
    assert (
        reg.update_node_heartbeat("n1", beat(installed_services=stopped(CORE_SERVICES, "TTS")))
        is NodeStatus.READY
    )
    assert reason(reg) is Reason.MODEL_NOT_AVAILABLE


# -- staleness and OFFLINE ---------------------------------------------------------------


def test_stale_node_is_heartbeat_stale_before_sweep_and_offline_after(reg, clock):
    reg.update_node_heartbeat("n1", beat())
    clock.advance(TIMEOUT)
    assert reason(reg) is None  # exactly the timeout is not older than it
    assert reg.sweep() == []
    clock.advance(0.5)
    assert status(reg) is NodeStatus.READY
    assert reason(reg) is Reason.HEARTBEAT_STALE  # even before a sweep ran
    assert reg.sweep() == ["n1"]
    assert status(reg) is NodeStatus.OFFLINE
    assert reason(reg) is Reason.OFFLINE
    assert reg.sweep() == []
    # OFFLINE nodes stay members; the breakdown shows them
    assert reg.pool_members(1) == ["n1"] and reg.get_node("n1").pool_ids == (1,)


def test_sweep_takes_an_explicit_time_and_returns_sorted_ids(clock):
    reg = make_registry([node_info(n) for n in ("n3", "n1", "n2")], pools=[EN_ZH], clock=clock)
    clock.advance(10)
    reg.update_node_heartbeat("n2", beat())
    assert reg.sweep(now=clock() + TIMEOUT - 5) == ["n1", "n3"]
    assert [status(reg, n) for n in ("n1", "n2", "n3")] == [
        NodeStatus.OFFLINE,
        NodeStatus.READY,
        NodeStatus.OFFLINE,
    ]
    assert reg.sweep(now=clock() + TIMEOUT + 1) == ["n2"]


def test_registering_node_without_beats_goes_offline_when_stale(clock):
    reg = make_registry([node_info("n1")], clock=clock, ready=False, warmup_s=100.0)
    clock.advance(TIMEOUT + 1)
    assert reg.sweep() == ["n1"]
    assert status(reg) is NodeStatus.OFFLINE


@pytest.mark.parametrize(
    "healthy, expected", [(True, NodeStatus.READY), (False, NodeStatus.REGISTERING)]
)
def test_a_heartbeat_readmits_an_offline_node(reg, clock, healthy, expected):
    reg.update_node_heartbeat("n1", beat())
    clock.advance(TIMEOUT + 1)
    reg.sweep()
    assert status(reg) is NodeStatus.OFFLINE
    hb = beat(installed_services=CORE_SERVICES) if healthy else unhealthy_beat()
    assert reg.update_node_heartbeat("n1", hb) is expected
    assert reason(reg) is (None if healthy else Reason.STATUS_NOT_READY)
    assert reg.verify_consistency() == []


def test_a_readmitted_registering_node_gets_a_full_warmup_again(reg, clock):
    reg.update_node_heartbeat("n1", beat())
    clock.advance(WARMUP + TIMEOUT)  # far past the original warm-up
    assert reg.sweep() == ["n1"] and status(reg) is NodeStatus.OFFLINE
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.REGISTERING
    for _ in range(2):  # stay fresh and unhealthy for exactly warmup_s
        clock.advance(WARMUP / 2)
        reg.update_node_heartbeat("n1", unhealthy_beat())
    assert reg.sweep() == [] and status(reg) is NodeStatus.REGISTERING
    clock.advance(1)
    assert reg.sweep() == ["n1"] and status(reg) is NodeStatus.DEGRADED


def test_a_stopped_spare_beside_a_running_service_of_its_type_is_healthy(clock):
    spare = InstalledService("asr-spare", ServiceType.ASR, ServiceState.STOPPED)
    reg = make_registry([node_info("n1", svcs=CORE_SERVICES + (spare,))], pools=[EN_ZH], clock=clock, ready=False)
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    assert reason(reg) is None


def test_a_degraded_node_goes_offline_when_stale(reg, clock):
    reg.update_node_heartbeat("n1", beat())
    for _ in range(3):
        reg.update_node_heartbeat("n1", unhealthy_beat())
    clock.advance(TIMEOUT + 1)
    assert reg.sweep() == ["n1"]
    assert status(reg) is NodeStatus.OFFLINE


# -- DRAINING --------------------------------------------------------------------------


@pytest.mark.parametrize("prep", ["registering", "ready", "degraded"])
def test_draining_is_never_dispatchable(reg, clock, prep):
    if prep != "registering":
        reg.update_node_heartbeat("n1", beat())
    if prep == "degraded":
        for _ in range(3):
            reg.update_node_heartbeat("n1", unhealthy_beat())
    reg.mark_node_draining("n1")
    assert status(reg) is NodeStatus.DRAINING
    assert reason(reg) is Reason.STATUS_NOT_READY
    for hb in (
        beat(installed_services=CORE_SERVICES),
        unhealthy_beat(),
        beat(installed_services=CORE_SERVICES),
    ):
        assert reg.update_node_heartbeat("n1", hb) is NodeStatus.DRAINING
        assert reason(reg) is Reason.STATUS_NOT_READY
    # a draining node times out like any other, and comes back draining
    clock.advance(TIMEOUT + 1)
    assert reg.sweep() == ["n1"]
    assert status(reg) is NodeStatus.OFFLINE
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.DRAINING
    # only a new registration ends it
    reg.register_node_with_policy(node_info("n1"), policy="replace")
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY


def test_draining_an_offline_node_keeps_it_offline_until_it_beats(reg, clock):
    reg.update_node_heartbeat("n1", beat())
    clock.advance(TIMEOUT + 1)
    reg.sweep()
    reg.mark_node_draining("n1")
    assert status(reg) is NodeStatus.OFFLINE and reg.get_node("n1").draining
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.DRAINING


def test_draining_keeps_running_jobs_and_membership(reg):
    reg.update_node_heartbeat("n1", beat(jobs=2))
    reg.mark_node_draining("n1")
    view = reg.get_node("n1")
    assert view.running_jobs == 2 and view.pool_ids == (1,)
    assert reg.pool_members(1) == ["n1"]


# -- disconnect and remove ----------------------------------------------------------------


def test_disconnect_is_offline_at_once_and_out_of_every_pool(clock):
    reg = make_registry(
        [node_info("n1"), node_info("n2")], pools=[EN_ZH, pool(2, ["en"])], clock=clock
    )
    sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids={"n2"}))
    assert sel.node_id == "n1"
    reg.disconnect_node("n1")
    view = reg.get_node("n1")
    assert view.status is NodeStatus.OFFLINE and view.pool_ids == () and view.reserved_jobs == 0
    assert reg.pool_members(1) == ["n2"] and reg.pool_members(2) == ["n2"]
    assert reg.release(sel) is False
    with pytest.raises(UnknownNodeError):
        reg.update_node_heartbeat("n1", beat())
    assert reg.sweep(now=clock() + 10 * TIMEOUT) == ["n2"]  # a disconnected node is not swept again
    # it is in no candidate set any more, not even single-level
    reg2 = make_registry([node_info("n1"), node_info("n2")], clock=clock)
    reg2.disconnect_node("n1")
    sel = reg2.select_node(JobRequest("en", "zh", exclude_node_ids={"n2"}))
    assert sel.breakdown.total == 1 and dict(sel.breakdown) == {Reason.EXCLUDED: 1}
    assert reg.verify_consistency() == [] and reg2.verify_consistency() == []


def test_disconnected_node_must_register_again(reg):
    reg.update_node_heartbeat("n1", beat())
    reg.disconnect_node("n1")
    assert reg.metrics()["gauges"]["nodes"] == 0
    reg.register_node_with_policy(node_info("n1"))
    assert status(reg) is NodeStatus.REGISTERING
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    assert counts(reg) == {
        "nodes": 1,
        "nodes_ready": 1,
        "pools": 1,
        "generated_pools": 0,
        "reservations": 0,
    }


def test_remove_node_in_any_state(reg, clock):
    reg.register_node_with_policy(node_info("n2"))
    reg.register_node_with_policy(node_info("n3"))
    reg.update_node_heartbeat("n1", beat())
    reg.mark_node_draining("n2")
    clock.advance(TIMEOUT + 1)
    reg.sweep()
    for node_id in ("n1", "n2", "n3"):
        reg.remove_node(node_id)
        with pytest.raises(UnknownNodeError):
            reg.get_node(node_id)
    assert reg.node_ids() == [] and reg.pool_members(1) == []
    assert reg.verify_consistency() == []


# -- reservations and time -----------------------------------------------------------------


def test_reservations_expire_at_sweep_after_their_ttl(clock):
    reg = make_registry(
        [node_info("n1", max_concurrent_jobs=1)], pools=[EN_ZH], clock=clock, reservation_ttl_s=30
    )
    sel = reg.select_node(JOB)
    assert sel.ok and reason(reg) is Reason.CAPACITY_EXCEEDED
    clock.advance(30)
    reg.update_node_heartbeat("n1", beat())  # a beat leaves reservations alone
    reg.sweep()
    assert reg.get_node("n1").reserved_jobs == 1  # exactly the TTL: not older
    reg.sweep(now=clock() + 0.5)
    assert reg.get_node("n1").reserved_jobs == 0
    assert reg.commit(sel) is False and reg.release(sel) is False
    assert reg.metrics()["counters"]["reservations_expired"] == 1
    assert reason(reg) is None
