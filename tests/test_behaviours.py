"""docs/DESIGN.md §7: the behaviours learned from the system pyscheduler replaces, one
test each, on the legacy path.

Not here: 6 (no snapshot lock exists to hold; the snapshot tests cover it) and
9 (atomic membership in Redis; the cluster-sync tests cover it).
"""

from __future__ import annotations

import pytest
from helpers import (
    FakeClock,
    NodeSpec,
    beat,
    caps,
    fleet_of,
    make_registry,
    membership_state,
    node_info,
    phase3,
    pool,
    populate,
    unhealthy_beat,
)

from pyscheduler import (
    AutoPoolConfig,
    JobRequest,
    NodeRegistry,
    NodeStatus,
    Phase3Config,
    Reason,
)
from pyscheduler.selection import legacy
from pyscheduler.state.fleet import Fleet


def sem(node_id, langs, **kw):
    return node_info(node_id, langs, semantic=langs, **kw)


AUTO = {"auto_generate_language_pools": True, "auto_pool": AutoPoolConfig()}


# 1 ---------------------------------------------------------------------------------------


def test_1_both_directions_find_the_same_language_set_pools():
    cfg = phase3(pool(1, ["en", "zh"]), pool(2, ["zh", "ja", "en"]), pool(3, ["de", "en"]), **AUTO)
    reg = make_registry([sem("n1", ["en", "zh", "ko"]), sem("n2", ["en", "zh"])], cfg=cfg)
    assert [(p.pool_id, p.name) for p in reg.pools() if p.pool_id > 3] == [
        (4, "en-ko-zh"),
        (5, "en-zh"),
    ]
    # smallest language set first, then id; the same list both ways
    assert (
        reg.select_eligible_pools("zh", "en")
        == reg.select_eligible_pools("en", "zh")
        == [1, 5, 2, 4]
    )
    for src, tgt in (("zh", "en"), ("en", "zh")):
        sel = reg.select_node(JobRequest(src, tgt))
        assert sel.pool_id == 1 and sel.ok
        reg.release(sel)
    assert reg.select_eligible_pools("ko", "zh") == reg.select_eligible_pools("zh", "ko") == [4]


# 2 ---------------------------------------------------------------------------------------


def test_2_a_generation_that_finds_no_sets_never_wipes_pools():
    cfg = phase3(pool(1, ["de", "en"]), **AUTO)
    reg = make_registry([sem("n1", ["en", "zh"]), sem("n2", ["en", "ja"])], cfg=cfg)
    before = reg.pools()
    assert [p.name for p in before] == ["de-en", "en-zh", "en-ja"]
    # every node goes away (removal and disconnect): pools stay
    reg.remove_node("n1")
    reg.disconnect_node("n2")
    assert reg.pools() == before
    # the config is set again while no node is there: generation finds no sets,
    # which changes nothing
    reg.set_phase3_config(cfg)
    assert reg.pools() == before
    reg.set_phase3_config(Phase3Config.from_dict(cfg.to_dict()))
    assert reg.pools() == before
    assert reg.verify_consistency() == []
    # nodes coming back land in the pools they had
    reg.register_node_with_policy(sem("n1", ["en", "zh"]))
    reg.update_node_heartbeat("n1", beat())
    sel = reg.select_node(JobRequest("zh", "en"))
    assert sel.node_id == "n1" and sel.pool_id == 2
    assert reg.pools() == before


def test_2_removing_every_node_keeps_generated_pools():
    reg = make_registry([sem("n1", ["en", "zh"])], cfg=phase3(**AUTO))
    pools = reg.pools()
    reg.remove_node("n1")
    assert reg.pools() == pools and reg.pool_members(pools[0].pool_id) == []
    sel = reg.select_node(JobRequest("en", "zh"))
    assert sel.pool_id is None and [a.pool_id for a in sel.attempts] == [pools[0].pool_id]


# 3 ---------------------------------------------------------------------------------------


@pytest.fixture
def fleet3() -> NodeRegistry:
    return make_registry(
        [node_info("n1", ["en", "zh"]), node_info("n2", ["en", "ja"]), sem("n3", ["de", "en"])],
        pools=[pool(1, ["en", "zh"])],
        strict_pool_eligibility=True,
    )


def test_3_a_new_pool_is_dispatchable_as_soon_as_the_config_is_set(fleet3):
    assert (
        fleet3.select_node(JobRequest("en", "ja")).breakdown.top_reason is Reason.NO_ELIGIBLE_POOL
    )
    fleet3.set_phase3_config(
        phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"]), strict_pool_eligibility=True)
    )
    assert fleet3.pool_members(2) == ["n2"]
    assert fleet3.select_eligible_pools("ja", "en") == [2]
    sel = fleet3.select_node(JobRequest("ja", "en"))
    assert (sel.node_id, sel.pool_id) == ("n2", 2)


def test_3_a_reloaded_pool_is_dispatchable_as_soon_as_the_config_is_set(fleet3):
    fleet3.set_phase3_config(
        phase3(pool(1, ["en", "ja"], name="reloaded"), strict_pool_eligibility=True)
    )
    assert fleet3.pool_members(1) == ["n2"]
    sel = fleet3.select_node(JobRequest("en", "ja"))
    assert (sel.node_id, sel.pool_id) == ("n2", 1)
    assert sel.attempts[0].pool_name == "reloaded"
    assert (
        fleet3.select_node(JobRequest("en", "zh")).breakdown.top_reason is Reason.NO_ELIGIBLE_POOL
    )
    assert fleet3.get_node("n1").pool_ids == ()


def test_3_a_regenerated_pool_is_dispatchable_as_soon_as_the_config_is_set(fleet3):
    fleet3.set_phase3_config(phase3(pool(1, ["en", "zh"]), strict_pool_eligibility=True, **AUTO))
    assert [(p.pool_id, p.name) for p in fleet3.pools()] == [(1, "en-zh"), (2, "de-en")]
    assert fleet3.pool_members(2) == ["n3"]
    sel = fleet3.select_node(JobRequest("de", "en"))
    assert (sel.node_id, sel.pool_id) == ("n3", 2)
    assert fleet3.verify_consistency() == []


# 4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("membership", ["all_matching", "most_specific"])
def test_4_membership_does_not_flap_when_the_config_is_unchanged(membership):
    cfg = phase3(
        pool(1, ["en", "zh"]),
        pool(2, ["en", "ja", "zh"]),
        pool(3, ["en", "ja"]),
        membership=membership,
        **AUTO,
    )
    nodes = [
        sem(f"s{i}", langs)
        for i, langs in enumerate(
            [["en", "zh"], ["en", "ja", "zh"], ["en", "ja"], ["de", "en", "ja", "zh"], ["en", "zh"]]
        )
    ]
    nodes += [node_info(f"p{i}", ["en", "ja", "zh"]) for i in range(4)]
    reg = make_registry(nodes, cfg=cfg)
    first = membership_state(reg)
    for same in (cfg, cfg, Phase3Config.from_dict(cfg.to_dict())):
        reg.set_phase3_config(same)
        assert membership_state(reg) == first
    for node_id in reg.node_ids():
        reg.update_node_heartbeat(node_id, beat(cpu=50))
    assert membership_state(reg) == first
    assert reg.verify_consistency() == []


# 5 ---------------------------------------------------------------------------------------


def test_5_a_heartbeat_repeating_the_same_capabilities_changes_no_membership(monkeypatch):
    info = sem("n1", ["en", "zh", "ja"])
    reg = make_registry([info, sem("n2", ["en", "zh"])], pools=[pool(1, ["en", "zh"])], **AUTO)
    before = membership_state(reg)
    changes = []
    original = Fleet._set_pools

    def spy(self, record, pool_ids):
        if pool_ids != record.pool_ids:
            changes.append(record.node_id)
        return original(self, record, pool_ids)

    monkeypatch.setattr(Fleet, "_set_pools", spy)
    repeat = beat(
        installed_services=info.installed_services, language_capabilities=info.language_capabilities
    )
    for _ in range(5):
        reg.update_node_heartbeat("n1", repeat)
    assert changes == []
    assert membership_state(reg) == before


# 7 ---------------------------------------------------------------------------------------


def test_7_health_changes_are_visible_at_once():
    clock = FakeClock()
    reg = make_registry(pools=[pool(1, ["en", "zh"])], clock=clock)
    job = JobRequest("en", "zh")

    def seen():
        sel = reg.select_node(job)
        reg.release(sel)
        return sel.node_id, dict(sel.breakdown)

    reg.register_node_with_policy(node_info("n1"))  # registration
    assert seen() == (None, {Reason.STATUS_NOT_READY: 1})
    reg.update_node_heartbeat("n1", beat())  # status change by a beat
    assert seen() == ("n1", {})
    reg.mark_node_draining("n1")  # operator status change
    assert seen() == (None, {Reason.STATUS_NOT_READY: 1})
    reg.register_node_with_policy(node_info("n1"), policy="replace")
    reg.update_node_heartbeat("n1", beat())
    for _ in range(3):
        reg.update_node_heartbeat("n1", unhealthy_beat())  # degraded
    assert seen() == (None, {Reason.STATUS_NOT_READY: 1})
    reg.update_node_heartbeat("n1", beat(installed_services=node_info().installed_services))
    assert seen() == ("n1", {})
    clock.advance(100)
    reg.sweep()  # status change by a sweep
    assert seen() == (None, {Reason.OFFLINE: 1})
    reg.update_node_heartbeat("n1", beat())
    assert seen() == ("n1", {})
    reg.disconnect_node("n1")  # disconnect
    assert seen() == (None, {})
    reg.register_node_with_policy(node_info("n1"))
    reg.update_node_heartbeat("n1", beat())
    assert seen() == ("n1", {})
    reg.remove_node("n1")  # removal
    assert seen() == (None, {})
    assert reg.verify_consistency() == []


# 8 ---------------------------------------------------------------------------------------


def test_8_auto_matches_whole_language_codes():
    ben = node_info("b1", capabilities=caps(["ben", "zh"]))
    reg = make_registry([ben], pools=[pool(1, ["ben", "zh"])], strict_pool_eligibility=True)
    # the pool holds "ben", never "en"
    assert reg.select_eligible_pools("auto", "en") == []
    assert reg.select_eligible_pools("en", "zh") == []
    assert reg.select_eligible_pools("auto", "zh") == [1]
    assert reg.select_eligible_pools("auto", "ben") == [1]
    assert reg.select_node(JobRequest("auto", "en")).breakdown.top_reason is Reason.NO_ELIGIBLE_POOL
    assert reg.select_node(JobRequest("auto", "zh")).node_id == "b1"
    # node level (single-level, so every node is a candidate)
    clock = FakeClock()
    reg = make_registry([ben, node_info("e1", capabilities=caps(["en"], nmt=[]))], clock=clock)
    for job, reasons in [
        (
            JobRequest("auto", "en"),
            {"b1": Reason.LANG_PAIR_UNSUPPORTED, "e1": Reason.LANG_PAIR_UNSUPPORTED},
        ),
        (
            JobRequest("en", "zh"),
            {"b1": Reason.ASR_LANG_UNSUPPORTED, "e1": Reason.LANG_PAIR_UNSUPPORTED},
        ),
        (
            JobRequest("zh", "en"),
            {"b1": Reason.LANG_PAIR_UNSUPPORTED, "e1": Reason.ASR_LANG_UNSUPPORTED},
        ),
        (JobRequest("auto", "ben"), {"b1": None, "e1": Reason.LANG_PAIR_UNSUPPORTED}),
    ]:
        fleet = fleet_of(reg)
        got = {n: legacy.check_node(fleet.nodes[n], job, fleet, clock()) for n in ("b1", "e1")}
        assert got == reasons, job
    node = node_info(
        "b2", capabilities=caps(["zh"], tts=["ben"], asr=["zh"], nmt=["zh"], pairs=[("zh", "ben")])
    )
    reg = make_registry([node])
    assert dict(reg.select_node(JobRequest("auto", "en")).breakdown) == {
        Reason.LANG_PAIR_UNSUPPORTED: 1
    }
    assert dict(reg.select_node(JobRequest("zh", "en", required_types="TTS")).breakdown) == {
        Reason.TTS_LANG_UNSUPPORTED: 1
    }
    assert reg.select_node(JobRequest("auto", "ben")).node_id == "b2"


# 10 --------------------------------------------------------------------------------------


def test_10_one_definition_of_dispatchable():
    kinds = ["ready", "registering", "degraded", "draining", "offline", "stale", "disconnected"]
    specs = [NodeSpec(node_info(f"{k}-{i}"), k) for k in kinds for i in range(2)]
    # an unhealthy one stays REGISTERING where a healthy one is READY
    specs.append(NodeSpec(node_info("sick", svcs=()), "ready"))
    clock = FakeClock()
    reg = NodeRegistry(phase3(pool(1, ["en", "zh"])), clock=clock)
    populate(reg, clock, specs)
    fleet = fleet_of(reg)
    statuses = {}
    for node_id in reg.node_ids():
        view = reg.get_node(node_id)
        statuses[view.status] = statuses.get(view.status, 0) + 1
        reason = legacy.check_node(
            fleet.nodes[node_id], JobRequest("en", "zh", required_types="ASR"), fleet, clock()
        )
        passes_status = reason not in (Reason.OFFLINE, Reason.STATUS_NOT_READY)
        assert (view.status is NodeStatus.READY) == passes_status, (node_id, view.status, reason)
    assert set(statuses) == set(NodeStatus)
    assert (
        reg.metrics()["gauges"]["nodes_ready"] == statuses[NodeStatus.READY] == 4
    )  # ready-* and stale-*
    # what the selection counts agrees
    sel = reg.select_node(
        JobRequest("en", "zh", required_types="ASR", exclude_node_ids={"ready-0", "ready-1"})
    )
    assert not sel.ok
    b = sel.breakdown
    assert b[Reason.OFFLINE] == 2  # the two timed-out nodes (disconnected ones are no members)
    assert b[Reason.STATUS_NOT_READY] == 2 + 2 + 2 + 1
    assert b[Reason.HEARTBEAT_STALE] == 2
