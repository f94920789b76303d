"""The registry API of docs/DESIGN.md §4 on the legacy path: registration, heartbeats,
removal, bad input, reading, and generated pools (docs/DESIGN.md §6).

Every operation that raises must leave the registry as it was; those tests
compare :func:`helpers.registry_state` before and after.
"""

from __future__ import annotations

import math

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    caps,
    counts,
    make_registry,
    membership_state,
    node_info,
    phase3,
    pool,
    registry_state,
    services,
    svc,
)

from pyscheduler import (
    AutoPoolConfig,
    ConfigError,
    CoreServicesConfig,
    DuplicateNodeError,
    Heartbeat,
    InstalledService,
    InvalidHeartbeatError,
    InvalidRequestError,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    NodeStatus,
    Phase3Config,
    SchedulerError,
    ServiceType,
    UnknownNodeError,
    UnknownPoolError,
    _compat,
)
from pyscheduler.state.fleet import Fleet

EN_ZH = pool(1, ["en", "zh"])
EN_JA = pool(2, ["en", "ja"])
EN_ZH_JA = pool(3, ["en", "zh", "ja"])


# -- construction ----------------------------------------------------------------------


def test_default_registry_is_fast_when_built_and_empty():
    reg = NodeRegistry()
    assert reg.phase3_config == Phase3Config()
    assert reg.core_services_config == CoreServicesConfig()
    expected = MigrationFlags.all_on() if _compat.HAVE_HOTPATH else MigrationFlags.legacy()
    assert reg.flags == expected
    assert reg.node_ids() == []
    assert reg.pools() == []
    assert reg.verify_consistency() == []


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"phase3": {"enabled": True}}, "phase3"),
        ({"core_services": "asr"}, "core_services"),
        ({"flags": True}, "flags"),
        ({"clock": 12.0}, "clock"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        NodeRegistry(**kwargs)


# -- register_node_with_policy ---------------------------------------------------------


def test_register_returns_the_given_id_and_starts_registering():
    clock = FakeClock(50.0)
    reg = make_registry(pools=[EN_ZH], clock=clock)
    assert reg.register_node_with_policy(node_info("n1")) == "n1"
    view = reg.get_node("n1")
    assert view.status is NodeStatus.REGISTERING
    assert view.registered_at == view.last_heartbeat == 50.0  # registration counts as a beat
    assert view.pool_ids == (1,)
    assert reg.pool_members(1) == ["n1"]
    assert reg.verify_consistency() == []


def test_generated_ids_are_unique_and_usable():
    reg = make_registry(pools=[EN_ZH], ready=False)
    ids = {reg.register_node_with_policy(node_info(None)) for _ in range(20)}
    assert len(ids) == 20
    for node_id in ids:
        assert isinstance(node_id, str) and node_id
        view = reg.get_node(node_id)
        assert view.node_id == node_id == view.info.node_id
        assert reg.update_node_heartbeat(node_id, beat()) is NodeStatus.READY
    assert reg.pool_members(1) == sorted(ids)
    assert reg.verify_consistency() == []


def test_reject_duplicate_raises_and_changes_nothing():
    reg = make_registry([node_info("n1", ["en", "zh"])], pools=[EN_ZH, EN_JA])
    before = registry_state(reg)
    for policy in ({}, {"policy": "reject_duplicate"}):
        with pytest.raises(DuplicateNodeError, match="n1"):
            reg.register_node_with_policy(node_info("n1", ["en", "ja"]), **policy)
        assert registry_state(reg) == before
    assert issubclass(DuplicateNodeError, SchedulerError)


def test_replace_overwrites_the_node_and_drops_its_reservations():
    reg = make_registry([node_info("n1", ["en", "zh"])], pools=[EN_ZH, EN_JA])
    sel = reg.select_node(JobRequest("en", "zh"))
    assert sel.node_id == "n1" and reg.get_node("n1").reserved_jobs == 1
    assert reg.register_node_with_policy(node_info("n1", ["en", "ja"]), policy="replace") == "n1"
    view = reg.get_node("n1")
    assert view.status is NodeStatus.REGISTERING  # a new registration
    assert view.reserved_jobs == 0
    assert view.pool_ids == (2,)
    assert reg.pool_members(1) == [] and reg.pool_members(2) == ["n1"]
    assert view.info.language_capabilities == caps(["en", "ja"])
    assert reg.metrics()["gauges"]["reservations"] == 0
    assert reg.release(sel) is False
    assert reg.commit(sel) is False
    assert reg.verify_consistency() == []


def test_replace_of_an_unknown_id_registers_it():
    reg = make_registry()
    assert reg.register_node_with_policy(node_info("n1"), policy="replace") == "n1"
    assert reg.node_ids() == ["n1"]


def test_reregister_after_disconnect_with_the_default_policy():
    reg = make_registry([node_info("n1")], pools=[EN_ZH])
    reg.disconnect_node("n1")
    assert reg.register_node_with_policy(node_info("n1")) == "n1"
    view = reg.get_node("n1")
    assert view.status is NodeStatus.REGISTERING and view.pool_ids == (1,)
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    assert reg.select_node(JobRequest("en", "zh")).node_id == "n1"
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("bad", [None, "n1", {"node_id": "n1"}, ("n1",), 7])
def test_register_rejects_what_is_not_a_node_info(bad):
    reg = make_registry([node_info("n0")], pools=[EN_ZH])
    before = registry_state(reg)
    with pytest.raises(InvalidRequestError, match="info"):
        reg.register_node_with_policy(bad)
    assert registry_state(reg) == before


@pytest.mark.parametrize("policy", ["overwrite", "", "REPLACE", None, 1])
def test_register_rejects_a_bad_policy(policy):
    reg = make_registry([node_info("n0")], pools=[EN_ZH])
    before = registry_state(reg)
    with pytest.raises(InvalidRequestError, match="policy"):
        reg.register_node_with_policy(node_info("n1"), policy=policy)
    with pytest.raises(InvalidRequestError, match="policy"):
        reg.register_node_with_policy(node_info("n0"), policy=policy)
    assert registry_state(reg) == before


# -- update_node_heartbeat -------------------------------------------------------------


def test_heartbeat_for_an_unknown_node():
    reg = make_registry([node_info("n1")])
    before = registry_state(reg)
    for node_id in ("n2", "", None, 3):
        with pytest.raises(UnknownNodeError):
            reg.update_node_heartbeat(node_id, beat())
    assert registry_state(reg) == before


def test_heartbeat_for_a_disconnected_or_removed_node():
    reg = make_registry([node_info("n1"), node_info("n2")])
    reg.disconnect_node("n1")
    reg.remove_node("n2")
    before = registry_state(reg)
    with pytest.raises(UnknownNodeError, match="register again"):
        reg.update_node_heartbeat("n1", beat())
    with pytest.raises(UnknownNodeError, match="n2"):
        reg.update_node_heartbeat("n2", beat())
    assert registry_state(reg) == before
    assert reg.get_node("n1").status is NodeStatus.OFFLINE


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cpu_usage": math.nan, "memory_usage": 1}, "cpu_usage"),
        ({"cpu_usage": 101, "memory_usage": 1}, "cpu_usage"),
        ({"cpu_usage": -0.1, "memory_usage": 1}, "cpu_usage"),
        ({"cpu_usage": 1, "memory_usage": math.inf}, "memory_usage"),
        ({"cpu_usage": 1, "memory_usage": "5"}, "memory_usage"),
        ({"cpu_usage": True, "memory_usage": 1}, "cpu_usage"),
        ({"cpu_usage": 1, "memory_usage": 1, "gpu_usage": math.nan}, "gpu_usage"),
        ({"cpu_usage": 1, "memory_usage": 1, "gpu_usage": 100.5}, "gpu_usage"),
        ({"cpu_usage": 1, "memory_usage": 1, "current_jobs": -1}, "current_jobs"),
        ({"cpu_usage": 1, "memory_usage": 1, "current_jobs": 1.5}, "current_jobs"),
        ({"cpu_usage": 1, "memory_usage": 1, "installed_services": ["asr"]}, "installed_services"),
        ({"cpu_usage": 1, "memory_usage": 1, "installed_services": "asr"}, "installed_services"),
        (
            {
                "cpu_usage": 1,
                "memory_usage": 1,
                "installed_services": (svc("ASR", "x"), svc("NMT", "x")),
            },
            "installed_services",
        ),
        (
            {"cpu_usage": 1, "memory_usage": 1, "language_capabilities": {"asr": ["en"]}},
            "language_capabilities",
        ),
    ],
)
def test_invalid_heartbeats_are_refused_at_construction(kwargs, field):
    with pytest.raises(InvalidHeartbeatError, match=field):
        Heartbeat(**kwargs)


@pytest.mark.parametrize("bad", [None, {"cpu_usage": 1, "memory_usage": 1}, (1, 1)])
def test_heartbeat_must_be_a_heartbeat(bad):
    reg = make_registry([node_info("n1")])
    before = registry_state(reg)
    with pytest.raises(InvalidHeartbeatError, match="hb"):
        reg.update_node_heartbeat("n1", bad)
    assert registry_state(reg) == before


def test_heartbeat_updates_load_figures_and_returns_the_status():
    clock = FakeClock(10.0)
    reg = make_registry([node_info("n1")], clock=clock, ready=False)
    clock.advance(5)
    assert (
        reg.update_node_heartbeat("n1", beat(cpu=12.5, mem=40, gpu=None, jobs=3))
        is NodeStatus.READY
    )
    view = reg.get_node("n1")
    assert (view.cpu_usage, view.memory_usage, view.gpu_usage) == (12.5, 40.0, None)
    assert view.running_jobs == 3 and view.last_heartbeat == 15.0 and view.registered_at == 10.0


@pytest.fixture
def spy_capability_changes(monkeypatch):
    """Count the legacy fleet's membership refreshes caused by heartbeats."""
    calls = []
    original = Fleet.capabilities_changed

    def spy(self, record, *args):
        calls.append(record.node_id)
        return original(self, record, *args)

    monkeypatch.setattr(Fleet, "capabilities_changed", spy)
    return calls


def test_load_only_heartbeat_changes_no_membership(spy_capability_changes):
    reg = make_registry([node_info("n1"), node_info("n2", ["en", "ja"])], pools=[EN_ZH, EN_JA])
    before = membership_state(reg)
    for i in range(5):
        reg.update_node_heartbeat("n1", beat(cpu=i, jobs=i % 3))
    assert membership_state(reg) == before
    assert spy_capability_changes == []


def test_repeated_capabilities_change_no_membership(spy_capability_changes):
    info = node_info("n1", ["en", "zh"], semantic=["en", "zh"])
    reg = make_registry([info], pools=[EN_ZH, EN_ZH_JA], auto_generate_language_pools=True)
    before = membership_state(reg)
    same = beat(
        installed_services=info.installed_services, language_capabilities=info.language_capabilities
    )
    for _ in range(3):
        assert reg.update_node_heartbeat("n1", same) is NodeStatus.READY
    # equal values built afresh (normalised differently on input) are still "the same"
    rebuilt = LanguageCapabilities(
        asr=["ZH", "en"], tts=["zh", "en"], semantic=["en ", "zh"], nmt_languages=["en", "zh"]
    )
    assert reg.update_node_heartbeat("n1", beat(language_capabilities=rebuilt)) is NodeStatus.READY
    assert membership_state(reg) == before
    assert spy_capability_changes == []
    assert reg.verify_consistency() == []


def test_capability_change_refreshes_membership(spy_capability_changes):
    reg = make_registry([node_info("n1", ["en", "zh"])], pools=[EN_ZH, EN_JA, EN_ZH_JA])
    assert reg.get_node("n1").pool_ids == (1,)
    reg.update_node_heartbeat("n1", beat(language_capabilities=caps(["en", "ja"])))
    assert reg.get_node("n1").pool_ids == (2,)
    assert reg.pool_members(1) == [] and reg.pool_members(2) == ["n1"]
    reg.update_node_heartbeat("n1", beat(language_capabilities=caps(["en", "ja", "zh"])))
    assert reg.get_node("n1").pool_ids == (1, 2, 3)
    assert reg.get_node("n1").info.language_capabilities == caps(["en", "ja", "zh"])
    assert spy_capability_changes == ["n1", "n1"]
    # the new languages serve at once
    assert reg.select_node(JobRequest("ja", "en")).node_id == "n1"
    assert reg.verify_consistency() == []


def test_service_change_refreshes_membership():
    semantic_pool = pool(4, ["en", "zh"], name="en-zh-sem", required_services=ServiceType.SEMANTIC)
    reg = make_registry([node_info("n1")], pools=[EN_ZH, semantic_pool])
    assert reg.get_node("n1").pool_ids == (1,)
    reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES + services("SEMANTIC")))
    assert reg.get_node("n1").pool_ids == (1, 4)
    assert reg.pool_members(4) == ["n1"]
    reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES))
    assert reg.get_node("n1").pool_ids == (1,)
    assert reg.verify_consistency() == []


# -- removal and other lifecycle calls on unknown ids ----------------------------------


@pytest.mark.parametrize(
    "method", ["mark_node_draining", "disconnect_node", "remove_node", "get_node"]
)
def test_lifecycle_calls_on_unknown_ids(method):
    reg = make_registry([node_info("n1")])
    before = registry_state(reg)
    with pytest.raises(UnknownNodeError, match="n9"):
        getattr(reg, method)("n9")
    assert registry_state(reg) == before


@pytest.mark.parametrize("method", ["mark_node_draining", "disconnect_node"])
def test_lifecycle_calls_on_disconnected_nodes(method):
    reg = make_registry([node_info("n1")])
    reg.disconnect_node("n1")
    before = registry_state(reg)
    with pytest.raises(UnknownNodeError, match="n1"):
        getattr(reg, method)("n1")
    assert registry_state(reg) == before


def test_remove_node_forgets_it_and_its_reservations():
    reg = make_registry([node_info("n1"), node_info("n2")], pools=[EN_ZH])
    sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids={"n2"}))
    assert sel.node_id == "n1"
    reg.remove_node("n1")
    assert reg.node_ids() == ["n2"]
    assert reg.pool_members(1) == ["n2"]
    with pytest.raises(UnknownNodeError):
        reg.get_node("n1")
    assert reg.commit(sel) is False and reg.release(sel) is False
    assert reg.metrics()["gauges"]["reservations"] == 0
    assert reg.select_node(JobRequest("en", "zh")).node_id == "n2"
    assert reg.verify_consistency() == []


def test_remove_a_disconnected_node():
    reg = make_registry([node_info("n1")], pools=[EN_ZH])
    reg.disconnect_node("n1")
    reg.remove_node("n1")
    assert reg.node_ids() == []
    with pytest.raises(UnknownNodeError):
        reg.remove_node("n1")
    assert reg.register_node_with_policy(node_info("n1")) == "n1"
    assert reg.verify_consistency() == []


# -- reading ---------------------------------------------------------------------------


def test_get_node_is_a_read_only_copy():
    reg = make_registry([node_info("n1")])
    view = reg.get_node("n1")
    with pytest.raises(AttributeError):
        view.status = NodeStatus.OFFLINE  # type: ignore[misc]
    reg.mark_node_draining("n1")
    assert view.status is NodeStatus.READY
    assert reg.get_node("n1").status is NodeStatus.DRAINING and reg.get_node("n1").draining


@pytest.mark.parametrize("path", ["legacy", pytest.param("fast", marks=pytest.mark.hotpath)])
def test_metrics_gauges_and_counters(path):
    flags = MigrationFlags.legacy() if path == "legacy" else MigrationFlags.all_on()
    reg = make_registry([node_info("n1"), node_info("n2"), node_info("n3")], pools=[EN_ZH], flags=flags)
    reg.disconnect_node("n3")
    reg.mark_node_draining("n2")
    reg.select_node(JobRequest("en", "zh"))
    reg.select_node(JobRequest("en", "ja"))
    m = reg.metrics()
    assert counts(reg) == {
        "nodes": 2,
        "nodes_ready": 1,
        "pools": 1,
        "generated_pools": 0,
        "reservations": 1,
    }
    assert m["counters"]["registrations"] == 3
    assert m["counters"]["heartbeats"] == 3
    assert m["counters"]["selections"] == 2
    assert m["counters"]["selections_failed"] == 1
    if path == "legacy":  # the fast path counts, it does not time itself
        assert m["histograms"]["select_s"]["count"] == 2


def test_pool_members_of_an_unknown_pool():
    reg = make_registry(pools=[EN_ZH])
    with pytest.raises(UnknownPoolError, match="7"):
        reg.pool_members(7)


def test_set_configs_reject_wrong_types_and_change_nothing():
    reg = make_registry([node_info("n1")], pools=[EN_ZH])
    before = registry_state(reg)
    with pytest.raises(ConfigError, match="cfg"):
        reg.set_phase3_config({"pools": []})
    with pytest.raises(ConfigError, match="cfg"):
        reg.set_core_services_config(None)
    assert registry_state(reg) == before


def test_set_core_services_config_applies_to_the_next_selection():
    reg = make_registry([node_info("n1")], pools=[EN_ZH])
    reg.set_core_services_config(CoreServicesConfig(asr_service_id="asr-special"))
    assert reg.core_services_config.asr_service_id == "asr-special"
    sel = reg.select_node(JobRequest("en", "zh"))
    assert not sel.ok and sel.breakdown.top_reason == "model_not_available"
    reg.set_core_services_config(CoreServicesConfig(asr_service_id="asr-main"))
    assert reg.select_node(JobRequest("en", "zh")).node_id == "n1"


# -- generated pools (docs/DESIGN.md §6) ---------------------------------------------------------


def sem(node_id: str, langs, **kw) -> NodeInfo:
    """A node whose language set is its semantic set ``langs``."""
    return node_info(node_id, langs, semantic=langs, **kw)


def auto_cfg(*pools, **auto) -> Phase3Config:
    return phase3(*pools, auto_generate_language_pools=True, auto_pool=AutoPoolConfig(**auto))


def generated(reg) -> dict[int, str]:
    configured = {p.pool_id for p in reg.phase3_config.pools}
    return {p.pool_id: p.name for p in reg.pools() if p.pool_id not in configured}


def test_pools_are_generated_on_registration():
    reg = make_registry(cfg=auto_cfg(pool(5, ["de", "en"], name="configured")), ready=False)
    assert generated(reg) == {}
    reg.register_node_with_policy(sem("n1", ["zh", "en"]))
    assert generated(reg) == {6: "en-zh"}  # ids start above the largest configured id
    p = next(p for p in reg.pools() if p.pool_id == 6)
    assert p.languages == ("en", "zh") and p.nmt_rule == "any_to_any" and not p.required_services
    assert reg.pool_members(6) == ["n1"]
    reg.register_node_with_policy(sem("n2", ["en", "ja", "zh"]))
    assert generated(reg) == {6: "en-zh", 7: "en-ja-zh"}
    assert reg.pool_members(6) == ["n1", "n2"]  # n2's set covers en-zh too
    assert reg.pool_members(7) == ["n2"]
    assert reg.metrics()["gauges"]["generated_pools"] == 2
    reg.update_node_heartbeat("n1", beat())
    assert reg.select_node(JobRequest("zh", "en")).pool_id == 6
    assert reg.verify_consistency() == []


def test_generation_counts_only_semantic_nodes_when_required():
    reg = make_registry(cfg=auto_cfg(), ready=False)
    reg.register_node_with_policy(node_info("n1", ["en", "zh"]))
    assert generated(reg) == {}
    reg.set_phase3_config(auto_cfg(require_semantic=False))
    assert generated(reg) == {0: "en-zh"}
    assert reg.pool_members(0) == ["n1"]


def test_generation_needs_min_nodes_and_respects_max_pools():
    reg = make_registry(cfg=auto_cfg(min_nodes_per_pool=2, max_pools=1), ready=False)
    reg.register_node_with_policy(sem("n1", ["en", "zh"]))
    assert generated(reg) == {}
    reg.register_node_with_policy(sem("n2", ["en", "zh"]))
    assert generated(reg) == {0: "en-zh"}
    assert reg.pool_members(0) == ["n1", "n2"]
    reg.register_node_with_policy(sem("n3", ["en", "ja"]))
    reg.register_node_with_policy(sem("n4", ["en", "ja"]))
    assert generated(reg) == {0: "en-zh"}  # max_pools reached


def test_generation_runs_on_capability_change():
    reg = make_registry([sem("n1", ["en", "zh"])], cfg=auto_cfg())
    reg.update_node_heartbeat(
        "n1", beat(language_capabilities=caps(["de", "en"], semantic=["de", "en"]))
    )
    assert generated(reg) == {0: "en-zh", 1: "de-en"}
    assert reg.pool_members(0) == [] and reg.pool_members(1) == ["n1"]
    assert reg.verify_consistency() == []


def test_generated_ids_are_stable_and_never_reused():
    reg = make_registry([sem("n1", ["en", "zh"]), sem("n2", ["en", "ja"])], cfg=auto_cfg())
    assert generated(reg) == {0: "en-zh", 1: "en-ja"}
    # an empty set keeps its pool until the next set_phase3_config ...
    reg.remove_node("n2")
    assert generated(reg) == {0: "en-zh", 1: "en-ja"}
    assert reg.pool_members(1) == []
    # ... which drops it; the other keeps its id
    reg.set_phase3_config(auto_cfg())
    assert generated(reg) == {0: "en-zh"}
    # a new set never gets the dropped id; the old set gets its own id back
    reg.register_node_with_policy(sem("n3", ["de", "en"]))
    reg.register_node_with_policy(sem("n2", ["en", "ja"]))
    assert generated(reg) == {0: "en-zh", 1: "en-ja", 2: "de-en"}
    reg.set_phase3_config(auto_cfg())
    assert generated(reg) == {0: "en-zh", 1: "en-ja", 2: "de-en"}
    assert reg.verify_consistency() == []


def test_disconnected_nodes_keep_their_generated_pool_until_the_config_changes():
    reg = make_registry([sem("n1", ["en", "zh"]), sem("n2", ["en", "ja"])], cfg=auto_cfg())
    reg.disconnect_node("n2")
    assert generated(reg) == {0: "en-zh", 1: "en-ja"}
    assert reg.pool_members(1) == []
    assert reg.verify_consistency() == []


def test_configured_pool_id_colliding_with_a_generated_id_is_refused():
    reg = make_registry([sem("n1", ["en", "zh"])], cfg=auto_cfg(pool(3, ["de", "en"])))
    assert generated(reg) == {4: "en-zh"}
    before = registry_state(reg)
    clash = auto_cfg(pool(3, ["de", "en"]), pool(4, ["en", "ja"]))
    with pytest.raises(ConfigError, match="4") as info:
        reg.set_phase3_config(clash)
    assert "en-zh" in str(info.value)
    assert registry_state(reg) == before
    # the id stays held even once its pool is dropped
    reg.remove_node("n1")
    reg.register_node_with_policy(sem("n2", ["de", "zh"]))
    reg.set_phase3_config(auto_cfg(pool(3, ["de", "en"])))
    assert generated(reg) == {5: "de-zh"}
    with pytest.raises(ConfigError, match="4"):
        reg.set_phase3_config(phase3(pool(4, ["en", "ja"])))
    # a configured id that is free is fine, and new generated ids go above it
    reg.set_phase3_config(auto_cfg(pool(9, ["de", "en"])))
    reg.register_node_with_policy(sem("n5", ["en", "ja"]))
    assert generated(reg) == {5: "de-zh", 10: "en-ja"}
    reg.register_node_with_policy(sem("n1", ["en", "zh"]))
    assert generated(reg) == {4: "en-zh", 5: "de-zh", 10: "en-ja"}
    assert reg.verify_consistency() == []


def test_turning_generation_off_drops_generated_pools():
    reg = make_registry([sem("n1", ["en", "zh"])], cfg=auto_cfg())
    reg.set_phase3_config(phase3())
    assert reg.pools() == []
    assert reg.get_node("n1").pool_ids == ()
    assert reg.select_node(JobRequest("en", "zh")).pool_id is None  # single level
    reg.set_phase3_config(auto_cfg())
    assert generated(reg) == {0: "en-zh"}


def test_most_specific_membership():
    cfg = phase3(EN_ZH, EN_JA, EN_ZH_JA, membership="most_specific")
    reg = make_registry(
        [
            node_info("n1", ["en", "zh", "ja", "de"]),
            node_info("n2", ["en", "zh"]),
            node_info("n3", ["de"]),
        ],
        cfg=cfg,
    )
    assert reg.get_node("n1").pool_ids == (3,)  # the widest covered pool
    assert reg.get_node("n2").pool_ids == (1,)
    assert reg.get_node("n3").pool_ids == ()
    assert reg.verify_consistency() == []


def test_most_specific_ties_use_the_node_hash():
    from pyscheduler.domain.hashing import node_hash

    cfg = phase3(EN_ZH, EN_JA, membership="most_specific")
    ids = [f"n{i}" for i in range(8)]
    reg = make_registry([node_info(i, ["en", "zh", "ja"]) for i in ids], cfg=cfg)
    for node_id in ids:
        assert reg.get_node(node_id).pool_ids == ((1, 2)[node_hash(node_id) % 2],)
    assert reg.verify_consistency() == []


def test_select_node_from_pool_picks_in_that_pool_only():
    reg = make_registry(
        [node_info("n1", ["en", "zh"]), node_info("n2", ["en", "ja"])], pools=[EN_ZH, EN_JA],
        flags=MigrationFlags.legacy(),
    )
    sel = reg.select_node_from_pool(2, JobRequest("en", "zh"))
    assert not sel.ok and sel.preferred_pool == 2 and sel.reservation is None
    assert [a.pool_id for a in sel.attempts] == [2]
    assert dict(sel.breakdown) == {"lang_pair_unsupported": 1}
    sel = reg.select_node_from_pool(1, JobRequest("en", "zh"))
    assert (sel.node_id, sel.pool_id, sel.fallback_used, sel.path) == ("n1", 1, False, "legacy")
    assert sel.reservation is not None and reg.get_node("n1").reserved_jobs == 1


@pytest.mark.parametrize("pool_id", [7, -1, "1", None])
def test_select_node_from_an_unknown_pool(pool_id):
    reg = make_registry([node_info("n1")], pools=[EN_ZH])
    before = registry_state(reg)
    with pytest.raises(UnknownPoolError):
        reg.select_node_from_pool(pool_id, JobRequest("en", "zh"))
    assert registry_state(reg) == before


@pytest.mark.parametrize(
    "method", ["select_node", "select_node_with_types_two_level_excluding_with_breakdown"]
)
def test_select_node_rejects_what_is_not_a_job(method):
    reg = make_registry([node_info("n1")])
    with pytest.raises(InvalidRequestError, match="job"):
        getattr(reg, method)(("en", "zh"))
    with pytest.raises(InvalidRequestError, match="job"):
        reg.select_nodes_batch([JobRequest("en", "zh"), None])
    assert reg.metrics()["gauges"]["reservations"] == 0


@pytest.mark.parametrize("bad", [None, "1", 1.0, True])
def test_commit_and_release_reject_bad_tokens(bad):
    reg = make_registry([node_info("n1")])
    with pytest.raises(InvalidRequestError):
        reg.commit(bad)
    with pytest.raises(InvalidRequestError):
        reg.release(bad)


def test_commit_and_release_of_unknown_tokens_return_false():
    reg = make_registry([node_info("n1")])
    failed = reg.select_node(JobRequest("en", "ja"))
    assert failed.reservation is None
    assert reg.commit(12345) is False and reg.release(12345) is False
    assert reg.commit(failed) is False and reg.release(failed) is False


@pytest.mark.parametrize(
    "src, tgt", [("", "en"), ("en", " "), ("en", "auto"), ("e n", "zh"), (None, "en")]
)
def test_select_eligible_pools_rejects_bad_languages(src, tgt):
    reg = make_registry(pools=[EN_ZH])
    with pytest.raises(InvalidRequestError):
        reg.select_eligible_pools(src, tgt)


def test_bad_job_requests_are_refused_at_construction():
    with pytest.raises(InvalidRequestError, match="src_lang"):
        JobRequest("", "en")
    with pytest.raises(InvalidRequestError, match="tgt_lang"):
        JobRequest("en", "auto")
    with pytest.raises(InvalidRequestError, match="required_types"):
        JobRequest("en", "zh", required_types=ServiceType(0))
    with pytest.raises(InvalidRequestError, match="exclude_node_ids"):
        JobRequest("en", "zh", exclude_node_ids="n1")


def test_installed_service_type_must_be_single():
    with pytest.raises(InvalidRequestError, match="type"):
        InstalledService("x", ServiceType.ASR | ServiceType.NMT)
