"""Hostile input from callers and nodes: every bad value gets a named
``SchedulerError`` subclass and changes nothing, on both paths.

Covers the documented limits (``pyscheduler.domain.limits``), unencodable
strings, unhashable and wrongly typed arguments, foreign snapshots and a legacy
batch that fails part-way.
"""

from __future__ import annotations

import math

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    make_registry,
    node_info,
    pool,
    registry_state,
    svc,
)

from pyscheduler import (
    ConfigError,
    Heartbeat,
    InstalledService,
    InvalidHeartbeatError,
    InvalidRequestError,
    JobRequest,
    LanguageCapabilities,
    LimitExceededError,
    MigrationFlags,
    NodeInfo,
    PoolConfig,
    SchedulerError,
    UnknownNodeError,
    UnknownPoolError,
)
from pyscheduler.domain import limits
from pyscheduler.selection import legacy

PATHS = [
    pytest.param(MigrationFlags(), id="legacy"),
    pytest.param(MigrationFlags.all_on(), id="fast", marks=pytest.mark.hotpath),
]


def _codes(n: int, prefix: str = "l") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# -- the documented limits ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["asr", "tts", "semantic", "nmt_languages"])
def test_languages_per_capability_are_bounded(name):
    at_limit = _codes(limits.MAX_LANGUAGES_PER_CAPABILITY)
    assert len(getattr(LanguageCapabilities(**{name: at_limit}), name)) == len(at_limit)
    with pytest.raises(LimitExceededError, match=rf"LanguageCapabilities\.{name}: at most 256"):
        LanguageCapabilities(**{name: _codes(limits.MAX_LANGUAGES_PER_CAPABILITY + 1)})


def test_a_huge_language_list_is_rejected_before_it_is_normalised():
    with pytest.raises(LimitExceededError, match="asr: at most 1024 entries, duplicates included, got 2560"):
        LanguageCapabilities(asr=["en"] * (10 * limits.MAX_LANGUAGES_PER_CAPABILITY))


def test_duplicates_do_not_count_against_the_language_limit():
    langs = _codes(limits.MAX_LANGUAGES_PER_CAPABILITY) * 2
    assert len(LanguageCapabilities(asr=langs).asr) == limits.MAX_LANGUAGES_PER_CAPABILITY


def test_nmt_pairs_are_bounded():
    langs = _codes(65)
    pairs = [(a, b) for a in langs for b in langs if a != b][: limits.MAX_NMT_PAIRS + 1]
    assert len(LanguageCapabilities(nmt_pairs=pairs[:-1]).nmt_pairs) == limits.MAX_NMT_PAIRS
    with pytest.raises(LimitExceededError, match="nmt_pairs: at most 4096 pairs"):
        LanguageCapabilities(nmt_pairs=pairs)


def test_distinct_languages_of_a_node_are_bounded():
    per = limits.MAX_LANGUAGES_PER_CAPABILITY
    ok = LanguageCapabilities(asr=_codes(per, "a"), tts=_codes(per, "t"))
    assert len(ok.all_languages()) == limits.MAX_NODE_LANGUAGES
    with pytest.raises(LimitExceededError, match="at most 512 distinct language codes"):
        LanguageCapabilities(asr=_codes(per, "a"), tts=_codes(per, "t"), semantic=["s0"])


def test_services_labels_and_text_size_are_bounded():
    many = [svc("ASR", service_id=f"s{i}") for i in range(limits.MAX_SERVICES + 1)]
    with pytest.raises(LimitExceededError, match="at most 64 services"):
        NodeInfo("n", installed_services=many)
    with pytest.raises(InvalidHeartbeatError, match="at most 64 services"):
        Heartbeat(1, 1, installed_services=many)
    labels = {f"k{i}": "v" for i in range(limits.MAX_LABELS + 1)}
    with pytest.raises(LimitExceededError, match="at most 64 labels"):
        NodeInfo("n", labels=labels)
    with pytest.raises(LimitExceededError, match="labels"):
        NodeInfo("n", labels={"k": "v" * (limits.MAX_LABEL_VALUE_LENGTH + 1)})
    with pytest.raises(LimitExceededError, match="node_id must be at most 256"):
        NodeInfo("n" * (limits.MAX_ID_LENGTH + 1))
    big = {f"k{i}": "v" * limits.MAX_LABEL_VALUE_LENGTH for i in range(limits.MAX_LABELS)}
    langs = _codes(65, "x" * 30)
    pairs = [(a, b) for a in langs for b in langs if a != b][: limits.MAX_NMT_PAIRS]
    with pytest.raises(LimitExceededError, match="NodeInfo: at most 131072 characters"):
        NodeInfo("n", labels=big, language_capabilities=LanguageCapabilities(nmt_pairs=pairs))
    assert NodeInfo("n", labels=big).text_size() < limits.MAX_INFO_CHARS


def test_limit_errors_are_invalid_request_errors_and_config_keeps_config_error():
    assert issubclass(LimitExceededError, InvalidRequestError)
    with pytest.raises(ConfigError, match="at most 512 language codes"):
        PoolConfig(1, "huge", tuple(_codes(limits.MAX_POOL_LANGUAGES + 1)))
    with pytest.raises(ConfigError, match="name must be at most 18432"):
        PoolConfig(1, "p" * (limits.MAX_POOL_NAME_LENGTH + 1), ("en", "zh"))


def test_from_dict_reports_limits_with_a_named_error():
    d = {"node_id": "n", "language_capabilities": {"asr": _codes(300)}}
    with pytest.raises(LimitExceededError):
        NodeInfo.from_dict(d)
    with pytest.raises(LimitExceededError):
        NodeInfo.from_dict({"node_id": "n", "installed_services": [{"service_id": "a", "type": "ASR"}] * 300})


# -- unencodable and overflowing values -------------------------------------------------


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "x" * 1025])
def test_routing_keys_must_be_utf8_text_of_bounded_length(text):
    with pytest.raises(InvalidRequestError, match="routing_key"):
        JobRequest("en", "zh", routing_key=text)


@pytest.mark.parametrize("field", ["session_id", "tenant_id", "preferred_node_id"])
def test_ids_with_lone_surrogates_are_rejected(field):
    with pytest.raises(InvalidRequestError, match=field):
        JobRequest("en", "zh", **{field: "s\ud800"})


def test_labels_node_ids_and_service_ids_must_encode():
    with pytest.raises(InvalidRequestError, match="labels"):
        NodeInfo("n", labels={"k": "\udc80"})
    with pytest.raises(InvalidRequestError, match="labels key"):
        NodeInfo("n", labels={"\udc80": "v"})
    with pytest.raises(InvalidRequestError, match="node_id"):
        NodeInfo("n\ud800")
    with pytest.raises(InvalidRequestError, match="service_id"):
        InstalledService("a\ud800", "ASR")


@pytest.mark.parametrize("value", [2**2000, -(2**2000), math.inf, math.nan])
def test_heartbeat_usages_that_are_not_finite_floats_are_rejected(value):
    with pytest.raises(InvalidHeartbeatError, match="cpu_usage must be finite"):
        Heartbeat(value, 1)


@pytest.mark.parametrize("excluded", [[[]], [{}], [1], ["ok", None], "abc"])
def test_exclude_node_ids_with_unhashable_or_wrong_items(excluded):
    with pytest.raises(InvalidRequestError, match="exclude_node_ids"):
        JobRequest("en", "zh", exclude_node_ids=excluded)


# -- the registry: bad arguments change nothing -------------------------------------------


def _registry(flags: MigrationFlags):
    clock = FakeClock()
    reg = make_registry(["a", "b", node_info("c", ("en", "ja"))], pools=[pool(1, ("en", "zh"))],
                        flags=flags, clock=clock)
    reg.select_node(JobRequest("en", "zh", session_id="s"))  # one reservation held
    return reg, clock


BAD_CALLS = {
    "remove_node(list)": lambda r: r.remove_node([]),
    "remove_node(dict)": lambda r: r.remove_node({}),
    "get_node(list)": lambda r: r.get_node([]),
    "mark_node_draining(list)": lambda r: r.mark_node_draining([]),
    "disconnect_node(None)": lambda r: r.disconnect_node(None),
    "update_node_heartbeat(list)": lambda r: r.update_node_heartbeat([], beat()),
    "update_node_heartbeat(hb=dict)": lambda r: r.update_node_heartbeat("a", {"cpu_usage": 1}),
    "update_node_heartbeats(int)": lambda r: r.update_node_heartbeats(5),
    "update_node_heartbeats(unhashable id)": lambda r: r.update_node_heartbeats([("a", beat()), ([], beat())]),
    "sync_node_to_management(list)": lambda r: r.sync_node_to_management([]),
    "remove_node_from_management(list)": lambda r: r.remove_node_from_management([]),
    "pool_members(list)": lambda r: r.pool_members([]),
    "pool_members(str)": lambda r: r.pool_members("1"),
    "pool_members(huge)": lambda r: r.pool_members(2**2000),
    "select_node_from_pool(list)": lambda r: r.select_node_from_pool([], JobRequest("en", "zh")),
    "select_node_from_pool(snapshot=object)": lambda r: r.select_node_from_pool(
        1, JobRequest("en", "zh"), snapshot=object()),
    "select_node(dict)": lambda r: r.select_node({"src_lang": "en"}),
    "select_nodes_batch(int)": lambda r: r.select_nodes_batch(5),
    "select_nodes_batch(str)": lambda r: r.select_nodes_batch("en"),
    "select_nodes_batch(one bad job)": lambda r: r.select_nodes_batch([JobRequest("en", "zh"), None]),
    "select_eligible_pools(types=0)": lambda r: r.select_eligible_pools("en", "zh", required_types=0),
    "select_eligible_pools(types=[])": lambda r: r.select_eligible_pools("en", "zh", required_types=[]),
    "select_eligible_pools(src=list)": lambda r: r.select_eligible_pools([], "zh"),
    "sweep(abc)": lambda r: r.sweep("abc"),
    "sweep('1e12')": lambda r: r.sweep("1e12"),
    "sweep(nan)": lambda r: r.sweep(math.nan),
    "sweep(inf)": lambda r: r.sweep(math.inf),
    "sweep(huge int)": lambda r: r.sweep(10**400),
    "sweep(list)": lambda r: r.sweep([]),
    "sweep(True)": lambda r: r.sweep(True),
    "register(dict)": lambda r: r.register_node_with_policy({"node_id": "z"}),
    "register(policy list)": lambda r: r.register_node_with_policy(node_info("z"), policy=[]),
    "release(str)": lambda r: r.release("1"),
    "commit(None)": lambda r: r.commit(None),
    "set_phase3_config(dict)": lambda r: r.set_phase3_config({}),
    "set_flags(None)": lambda r: r.set_flags(None),
    "subscribe(1)": lambda r: r.subscribe(1),
}


@pytest.mark.parametrize("flags", PATHS)
@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_raise_a_named_error_and_change_nothing(flags, name):
    reg, _ = _registry(flags)
    before, metrics_before = registry_state(reg), reg.metrics()["counters"]
    with pytest.raises(SchedulerError):
        BAD_CALLS[name](reg)
    assert registry_state(reg) == before
    assert reg.metrics()["counters"] == metrics_before
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("flags", PATHS)
def test_sweep_accepts_numbers_on_the_registry_clock(flags):
    reg, clock = _registry(flags)
    assert reg.sweep(clock() + 1) == []
    assert reg.sweep(int(clock())) == []
    assert reg.sweep(clock() + 10_000) == ["a", "b", "c"]


@pytest.mark.parametrize("flags", PATHS)
def test_non_string_node_ids_are_unknown_nodes(flags):
    reg, _ = _registry(flags)
    for call in (reg.remove_node, reg.get_node, reg.disconnect_node, reg.mark_node_draining):
        with pytest.raises(UnknownNodeError):
            call([])
    with pytest.raises(UnknownPoolError):
        reg.pool_members(1.0)


@pytest.mark.parametrize("flags", PATHS)
def test_select_eligible_pools_rejects_no_types_like_job_request(flags):
    reg, _ = _registry(flags)
    with pytest.raises(InvalidRequestError, match="required_types must name at least one"):
        JobRequest("en", "zh", required_types=0)
    with pytest.raises(InvalidRequestError, match="required_types must name at least one"):
        reg.select_eligible_pools("en", "zh", required_types=0)
    assert reg.select_eligible_pools("en", "zh", required_types="ASR") == [1]


@pytest.mark.hotpath
def test_a_snapshot_of_another_registry_is_rejected_and_nothing_is_reserved():
    flags = MigrationFlags.all_on()
    reg, _ = _registry(flags)
    other, _ = _registry(flags)
    before = (registry_state(reg), registry_state(other))
    with pytest.raises(InvalidRequestError, match="published by another registry"):
        reg.select_node_from_pool(1, JobRequest("en", "zh"), snapshot=other.snapshot())
    assert (registry_state(reg), registry_state(other)) == before
    assert reg.verify_consistency() == [] and other.verify_consistency() == []
    sel = reg.select_node_from_pool(1, JobRequest("en", "zh"), snapshot=reg.snapshot())
    assert sel.ok and reg.release(sel)


@pytest.mark.parametrize("flags", PATHS)
def test_a_legacy_batch_that_fails_part_way_releases_what_it_reserved(flags, monkeypatch):
    flags = MigrationFlags(rollout_percent=flags.rollout_percent)  # the legacy batch
    reg, _ = _registry(flags)
    before = registry_state(reg)
    real, calls = legacy.select, []

    def failing_select(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure in the third job")
        return real(*args, **kw)

    monkeypatch.setattr(legacy, "select", failing_select)
    jobs = [JobRequest("en", "zh", routing_key=str(i)) for i in range(4)]
    with pytest.raises(RuntimeError, match="injected"):
        reg.select_nodes_batch(jobs)
    assert len(calls) == 3
    assert registry_state(reg) == before  # the two earlier reservations were given back
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("flags", PATHS)
def test_a_node_at_every_limit_registers_and_is_selected(flags):
    per = limits.MAX_LANGUAGES_PER_CAPABILITY
    langs = _codes(per)
    big = LanguageCapabilities(asr=langs, tts=langs, nmt_languages=langs, semantic=_codes(per, "s"))
    info = NodeInfo("big", installed_services=CORE_SERVICES, language_capabilities=big,
                    labels={f"k{i}": "v" * 100 for i in range(limits.MAX_LABELS)})
    reg = make_registry([info, "a"], pools=[pool(1, ("en", "zh"))], flags=flags,
                        auto_generate_language_pools=True)
    sel = reg.select_node(JobRequest("l1", "l200"))
    assert sel.node_id == "big"
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("flags", PATHS)
def test_a_generated_pool_named_by_a_long_language_set_registers_cleanly(flags):
    # the generated name joins 100 codes (389 characters): longer than an id
    langs = _codes(100)
    reg = make_registry(["a"], flags=flags, auto_generate_language_pools=True)
    reg.register_node_with_policy(node_info("big", langs, semantic=langs))
    assert [p.name for p in reg.pools()] == ["-".join(sorted(langs))]
    assert reg.pool_members(reg.pools()[0].pool_id) == ["big"]
    assert reg.verify_consistency() == []
