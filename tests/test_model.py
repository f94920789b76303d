"""The public value types (docs/DESIGN.md §3, §5): validation, normalisation, round trips,
``Reason`` order, ``Breakdown`` and ``Selection.explain``."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from pyscheduler import (
    Attempt,
    Breakdown,
    Heartbeat,
    InstalledService,
    InvalidHeartbeatError,
    InvalidRequestError,
    JobRequest,
    LanguageCapabilities,
    NodeInfo,
    Reason,
    SchedulerError,
    Selection,
    ServiceState,
    ServiceType,
)
from pyscheduler.domain.model import CHECK_REASONS, CORE_TYPES, parse_service_types

ASR, NMT, TTS, SEMANTIC, TONE = (
    ServiceType.ASR,
    ServiceType.NMT,
    ServiceType.TTS,
    ServiceType.SEMANTIC,
    ServiceType.TONE,
)


@contextmanager
def raises(error: type[Exception], *fragments: str):
    """Expect exactly ``error`` (or a subclass) whose message contains every fragment."""
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, SchedulerError)


# --- strategies ---------------------------------------------------------------

LANGS = ["en", "zh", "ja", "de", "fr", "ben", "pt-br", "zh-hant"]
lang = st.sampled_from(LANGS)
pair = st.tuples(lang, lang).filter(lambda p: p[0] != p[1])

printable_id = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() and s.isprintable())

caps_strategy = st.builds(
    LanguageCapabilities,
    asr=st.lists(lang, max_size=4),
    tts=st.lists(lang, max_size=4),
    semantic=st.lists(lang, max_size=3),
    nmt_languages=st.lists(lang, max_size=4),
    nmt_pairs=st.lists(pair, max_size=4),
)

single_type = st.sampled_from(list(ServiceType))
service_state = st.sampled_from(list(ServiceState))


@st.composite
def services_strategy(draw):
    ids = draw(st.lists(printable_id, unique=True, max_size=5))
    return tuple(InstalledService(i, draw(single_type), draw(service_state)) for i in ids)


node_info_strategy = st.builds(
    NodeInfo,
    node_id=st.none() | printable_id,
    has_gpu=st.booleans(),
    accept_public_jobs=st.booleans(),
    max_concurrent_jobs=st.integers(1, 1_000_000),
    installed_services=services_strategy(),
    language_capabilities=caps_strategy,
    labels=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
)


# --- ServiceType / parse_service_types ------------------------------------------


def test_core_types_are_asr_nmt_tts():
    assert CORE_TYPES == ASR | NMT | TTS
    assert SEMANTIC not in CORE_TYPES and TONE not in CORE_TYPES


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ServiceType.NMT, NMT),
        (3, ASR | NMT),
        ("tts", TTS),
        (" Semantic ", SEMANTIC),
        (["ASR", "nmt"], ASR | NMT),
        ((), ServiceType(0)),
        ([ServiceType.TONE, "asr"], TONE | ASR),
    ],
)
def test_parse_service_types_accepts_flags_masks_and_names(value, expected):
    assert parse_service_types(value, "f", InvalidRequestError) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("GPU", "'GPU'"),
        (["ASR", "WHISPER"], "'WHISPER'"),
        ([1], "1"),
        (32, "32"),
        (-1, "-1"),
        (1.0, "1.0"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_parse_service_types_rejects_unknown_names_and_masks(value, fragment):
    with raises(InvalidRequestError, "the_field", fragment):
        parse_service_types(value, "the_field", InvalidRequestError)


# --- InstalledService -----------------------------------------------------------


def test_installed_service_normalises_type_and_state():
    s = InstalledService("whisper", "asr", "stopped")
    assert s.type is ServiceType.ASR
    assert s.state is ServiceState.STOPPED
    assert InstalledService("m", NMT).state is ServiceState.RUNNING


@pytest.mark.parametrize("kind", [ASR | NMT, 3, ["ASR", "TTS"], ServiceType(0), 0])
def test_installed_service_needs_exactly_one_type(kind):
    with raises(InvalidRequestError, "InstalledService.type"):
        InstalledService("svc", kind)


def test_installed_service_rejects_unknown_type_name():
    with raises(InvalidRequestError, "InstalledService.type", "'VOCODER'"):
        InstalledService("svc", "VOCODER")


def test_installed_service_rejects_unknown_state():
    with raises(InvalidRequestError, "InstalledService.state", "'paused'"):
        InstalledService("svc", ASR, "paused")


@pytest.mark.parametrize("bad", ["", "   ", "x" * 257, "a\nb", 7, None])
def test_installed_service_rejects_bad_ids(bad):
    with raises(InvalidRequestError, "InstalledService.service_id"):
        InstalledService(bad, ASR)


def test_installed_service_id_length_limit_is_inclusive():
    assert InstalledService("x" * 256, ASR).service_id == "x" * 256


@given(st.builds(InstalledService, printable_id, single_type, service_state))
def test_installed_service_dict_round_trip(service):
    assert InstalledService.from_dict(service.to_dict()) == service


def test_installed_service_from_dict_rejects_unknown_keys():
    with raises(InvalidRequestError, "InstalledService", "version"):
        InstalledService.from_dict({"service_id": "a", "type": "ASR", "version": 2})


# --- LanguageCapabilities --------------------------------------------------------


def test_language_codes_are_normalised_deduplicated_and_sorted():
    caps = LanguageCapabilities(
        asr=[" EN_us ", "en-US", "zh", "Zh"],
        tts=["ja", "DE"],
        nmt_languages=["FR", "en"],
        nmt_pairs=[("ZH", "en_GB"), "zh:en-gb", ["ja", "de"]],
    )
    assert caps.asr == ("en-us", "zh")
    assert caps.tts == ("de", "ja")
    assert caps.nmt_languages == ("en", "fr")
    assert caps.nmt_pairs == (("ja", "de"), ("zh", "en-gb"))


@pytest.mark.parametrize("field", ["asr", "tts", "semantic", "nmt_languages"])
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [([""], "''"), (["  "], "'  '"), ([5], "5"), (["auto"], "auto"), (["e n"], "'e n'")],
)
def test_language_capabilities_reject_bad_codes(field, bad, fragment):
    with raises(InvalidRequestError, f"LanguageCapabilities.{field}", fragment):
        LanguageCapabilities(**{field: bad})


@pytest.mark.parametrize("field", ["asr", "tts", "semantic", "nmt_languages", "nmt_pairs"])
def test_language_capabilities_reject_a_bare_string(field):
    # "en" is not a list of codes; iterating it would silently give "e", "n".
    with raises(InvalidRequestError, f"LanguageCapabilities.{field}", "'en'"):
        LanguageCapabilities(**{field: "en"})


@pytest.mark.parametrize(
    "bad_pair",
    [("en", "EN"), ("en", ""), ("auto", "en"), ("en",), ("en", "zh", "ja"), "en-zh", 5],
)
def test_language_capabilities_reject_bad_pairs(bad_pair):
    with raises(InvalidRequestError, "LanguageCapabilities.nmt_pairs"):
        LanguageCapabilities(nmt_pairs=[bad_pair])


def test_language_set_is_semantic_when_present():
    caps = LanguageCapabilities(
        asr=["en", "de"], tts=["fr"], semantic=["zh", "en"], nmt_pairs=[("ja", "ko")]
    )
    assert caps.language_set() == frozenset({"en", "zh"})


def test_language_set_without_semantic_is_everything_served():
    caps = LanguageCapabilities(
        asr=["en"], tts=["fr"], nmt_languages=["de", "en"], nmt_pairs=[("ja", "ko")]
    )
    assert caps.language_set() == frozenset({"en", "fr", "de", "ja", "ko"})
    assert LanguageCapabilities().language_set() == frozenset()


@given(caps_strategy)
def test_language_set_definition(caps):
    if caps.semantic:
        expected = set(caps.semantic)
    else:
        expected = set(caps.asr) | set(caps.tts) | set(caps.nmt_languages)
        for src, tgt in caps.nmt_pairs:
            expected |= {src, tgt}
    assert caps.language_set() == expected


def test_supports_asr_whole_codes_and_auto():
    caps = LanguageCapabilities(asr=["ben", "zh-hant"])
    assert caps.supports_asr("ben")
    assert not caps.supports_asr("en")  # never a substring match
    assert not caps.supports_asr("zh")
    assert not caps.supports_asr("hant")
    assert caps.supports_asr("auto")
    assert not LanguageCapabilities(tts=["en"]).supports_asr("auto")


def test_supports_tts_whole_codes():
    caps = LanguageCapabilities(tts=["ben"])
    assert caps.supports_tts("ben")
    assert not caps.supports_tts("en")
    assert not caps.supports_tts("be")


def test_supports_nmt_pairs_and_languages():
    caps = LanguageCapabilities(nmt_languages=["en", "zh"], nmt_pairs=[("ja", "de")])
    assert caps.supports_nmt("en", "zh") and caps.supports_nmt("zh", "en")
    assert caps.supports_nmt("ja", "de")
    assert not caps.supports_nmt("de", "ja")  # a pair is directed
    assert not caps.supports_nmt("en", "en")
    assert not caps.supports_nmt("ja", "zh")  # mixing a pair end with a language is no pair


def test_supports_nmt_whole_codes():
    caps = LanguageCapabilities(nmt_languages=["ben", "zh"], nmt_pairs=[("ben", "ja")])
    assert not caps.supports_nmt("en", "zh")
    assert not caps.supports_nmt("en", "ja")
    assert not caps.supports_nmt("zh", "en")
    assert caps.supports_nmt("ben", "zh")


def test_supports_nmt_auto_needs_some_source_for_the_target():
    assert LanguageCapabilities(nmt_pairs=[("ja", "de")]).supports_nmt("auto", "de")
    assert not LanguageCapabilities(nmt_pairs=[("ja", "de")]).supports_nmt("auto", "ja")
    assert LanguageCapabilities(nmt_languages=["en", "zh"]).supports_nmt("auto", "zh")
    # the only NMT language is the target itself: nothing translates into it
    assert not LanguageCapabilities(nmt_languages=["zh"]).supports_nmt("auto", "zh")
    assert not LanguageCapabilities(nmt_languages=["ben", "zh"]).supports_nmt("auto", "en")
    assert not LanguageCapabilities(nmt_pairs=[("zh", "ben")]).supports_nmt("auto", "en")


@given(caps_strategy, lang)
def test_supports_nmt_auto_iff_some_concrete_source(caps, tgt):
    some_source = any(caps.supports_nmt(src, tgt) for src in LANGS)
    assert caps.supports_nmt("auto", tgt) == some_source


@given(caps_strategy)
def test_supports_asr_auto_iff_some_asr_language(caps):
    assert caps.supports_asr("auto") == any(caps.supports_asr(s) for s in LANGS)


@given(caps_strategy, lang, lang)
def test_supports_nmt_definition(caps, src, tgt):
    expected = (src, tgt) in caps.nmt_pairs or (
        src != tgt and src in caps.nmt_languages and tgt in caps.nmt_languages
    )
    assert caps.supports_nmt(src, tgt) == expected
    if caps.supports_nmt(src, tgt):
        assert src != tgt


@given(caps_strategy)
def test_language_capabilities_dict_round_trip(caps):
    assert LanguageCapabilities.from_dict(caps.to_dict()) == caps


def test_language_capabilities_from_dict_rejects_unknown_keys():
    with raises(InvalidRequestError, "LanguageCapabilities", "nmt"):
        LanguageCapabilities.from_dict({"asr": ["en"], "nmt": ["zh"]})


# --- NodeInfo --------------------------------------------------------------------


def test_node_info_defaults_match_design():
    info = NodeInfo()
    assert info.node_id is None
    assert info.has_gpu is True
    assert info.accept_public_jobs is True
    assert info.max_concurrent_jobs == 4
    assert info.installed_services == ()
    assert info.language_capabilities == LanguageCapabilities()
    assert info.labels == {}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "0"),
        (-1, "-1"),
        (1_000_001, "1000001"),
        (10**9, str(10**9)),
        (2.0, "2.0"),
        (True, "True"),
        ("4", "'4'"),
    ],
)
def test_node_info_rejects_bad_max_concurrent_jobs(value, fragment):
    with raises(InvalidRequestError, "NodeInfo.max_concurrent_jobs", fragment):
        NodeInfo(max_concurrent_jobs=value)


def test_node_info_max_concurrent_jobs_limit_is_inclusive():
    assert NodeInfo(max_concurrent_jobs=1_000_000).max_concurrent_jobs == 1_000_000
    assert NodeInfo(max_concurrent_jobs=1).max_concurrent_jobs == 1


@pytest.mark.parametrize("bad", ["", "   ", "n" * 257, "a\tb", "a\x00", 12, b"node"])
def test_node_info_rejects_bad_node_ids(bad):
    with raises(InvalidRequestError, "NodeInfo.node_id"):
        NodeInfo(node_id=bad)


def test_node_info_node_id_length_limit_is_inclusive():
    assert NodeInfo(node_id="n" * 256).node_id == "n" * 256


def test_node_info_id_too_long_message_names_the_length():
    with raises(InvalidRequestError, "NodeInfo.node_id", "257"):
        NodeInfo(node_id="n" * 257)


@pytest.mark.parametrize("field", ["has_gpu", "accept_public_jobs"])
@pytest.mark.parametrize("bad", [1, "yes", None])
def test_node_info_rejects_non_bool_flags(field, bad):
    with raises(InvalidRequestError, f"NodeInfo.{field}", repr(bad)):
        NodeInfo(**{field: bad})


def test_node_info_rejects_duplicate_service_ids():
    services = (InstalledService("m", ASR), InstalledService("m", NMT))
    with raises(InvalidRequestError, "NodeInfo.installed_services", "duplicate", "'m'"):
        NodeInfo(installed_services=services)


@pytest.mark.parametrize("bad", ["asr", 5, [{"service_id": "a", "type": "ASR"}], [ASR]])
def test_node_info_rejects_bad_installed_services(bad):
    with raises(InvalidRequestError, "NodeInfo.installed_services"):
        NodeInfo(installed_services=bad)


def test_node_info_installed_services_becomes_a_tuple():
    info = NodeInfo(installed_services=[InstalledService("a", ASR)])
    assert info.installed_services == (InstalledService("a", ASR),)


def test_node_info_rejects_bad_language_capabilities_and_labels():
    with raises(InvalidRequestError, "NodeInfo.language_capabilities"):
        NodeInfo(language_capabilities={"asr": ["en"]})
    with raises(InvalidRequestError, "NodeInfo.labels", "5"):
        NodeInfo(labels={"zone": 5})
    with raises(InvalidRequestError, "NodeInfo.labels"):
        NodeInfo(labels=[("zone", "a")])


def test_node_info_labels_are_copied():
    labels = {"zone": "a"}
    info = NodeInfo(labels=labels)
    labels["zone"] = "b"
    assert info.labels == {"zone": "a"}


def test_node_info_with_id_keeps_everything_else():
    info = NodeInfo(
        None,
        False,
        False,
        7,
        (InstalledService("a", TTS),),
        LanguageCapabilities(tts=["en"]),
        {"k": "v"},
    )
    named = info.with_id("n-1")
    assert named.node_id == "n-1"
    assert named.to_dict() == {**info.to_dict(), "node_id": "n-1"}


@given(node_info_strategy)
@example(NodeInfo())
def test_node_info_dict_round_trip(info):
    d = info.to_dict()
    assert NodeInfo.from_dict(d) == info
    assert ("node_id" in d) == (info.node_id is not None)


def test_node_info_from_dict_example():
    info = NodeInfo.from_dict(
        {
            "node_id": "gpu-7",
            "max_concurrent_jobs": 8,
            "installed_services": [{"service_id": "whisper", "type": "asr"}],
            "language_capabilities": {"asr": ["EN"], "nmt_pairs": [["en", "zh"]]},
        }
    )
    assert info.node_id == "gpu-7"
    assert info.installed_services == (InstalledService("whisper", ASR, ServiceState.RUNNING),)
    assert info.language_capabilities.asr == ("en",)
    assert info.language_capabilities.nmt_pairs == (("en", "zh"),)


@pytest.mark.parametrize(
    ("d", "fragment"),
    [
        ({"node_id": "a", "gpu": True}, "gpu"),
        ({"installed_services": [{"service_id": "a", "type": "ASR", "port": 1}]}, "port"),
        ({"language_capabilities": {"asr": ["en"], "stt": ["en"]}}, "stt"),
    ],
)
def test_node_info_from_dict_rejects_unknown_keys(d, fragment):
    with raises(InvalidRequestError, fragment):
        NodeInfo.from_dict(d)


@pytest.mark.parametrize(
    "d",
    [
        "node",
        {"installed_services": "whisper"},
        {"installed_services": ["whisper"]},
        {"language_capabilities": ["en"]},
    ],
)
def test_node_info_from_dict_rejects_wrong_shapes(d):
    with raises(InvalidRequestError):
        NodeInfo.from_dict(d)


# --- Heartbeat -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["cpu_usage", "memory_usage", "gpu_usage"])
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (-0.1, "-0.1"),
        (-1, "-1"),
        (100.01, "100.01"),
        (101, "101"),
        (True, "True"),
        ("50", "'50'"),
    ],
)
def test_heartbeat_rejects_bad_usages(field, bad, fragment):
    kwargs = {"cpu_usage": 10.0, "memory_usage": 10.0, field: bad}
    with raises(InvalidHeartbeatError, f"Heartbeat.{field}", fragment):
        Heartbeat(**kwargs)


@pytest.mark.parametrize("value", [0, 0.0, 100, 100.0, 55.5])
def test_heartbeat_usage_bounds_are_inclusive(value):
    hb = Heartbeat(value, value, value)
    assert hb.cpu_usage == hb.memory_usage == hb.gpu_usage == value
    assert isinstance(hb.cpu_usage, float) and isinstance(hb.gpu_usage, float)


def test_heartbeat_gpu_usage_may_be_absent():
    assert Heartbeat(1, 2).gpu_usage is None


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [(-1, "-1"), (1_000_001, "1000001"), (1.5, "1.5"), (False, "False"), (None, "None")],
)
def test_heartbeat_rejects_bad_current_jobs(bad, fragment):
    with raises(InvalidHeartbeatError, "Heartbeat.current_jobs", fragment):
        Heartbeat(1, 1, current_jobs=bad)


def test_heartbeat_current_jobs_limit_is_inclusive():
    assert Heartbeat(1, 1, current_jobs=1_000_000).current_jobs == 1_000_000


def test_heartbeat_rejects_duplicate_service_ids_as_a_heartbeat_error():
    services = (InstalledService("m", ASR), InstalledService("m", TTS))
    with pytest.raises(InvalidHeartbeatError) as info:
        Heartbeat(1, 1, installed_services=services)
    assert not isinstance(info.value, InvalidRequestError)
    assert "installed_services" in str(info.value) and "'m'" in str(info.value)


def test_heartbeat_rejects_bad_capabilities():
    with raises(InvalidHeartbeatError, "Heartbeat.language_capabilities"):
        Heartbeat(1, 1, language_capabilities={"asr": ["en"]})


def test_heartbeat_load_only():
    assert Heartbeat(1, 1).load_only
    assert not Heartbeat(1, 1, installed_services=()).load_only
    assert not Heartbeat(1, 1, language_capabilities=LanguageCapabilities()).load_only


# --- JobRequest ------------------------------------------------------------------


def test_job_request_normalises_languages():
    job = JobRequest(" EN_us ", "ZH_Hant")
    assert (job.src_lang, job.tgt_lang) == ("en-us", "zh-hant")
    assert job.required_types == CORE_TYPES
    assert JobRequest("AUTO", "en").src_lang == "auto"


@pytest.mark.parametrize("bad", ["", "   ", None, 5, "e n", "-en", "en-", "x" * 36])
@pytest.mark.parametrize("field", ["src_lang", "tgt_lang"])
def test_job_request_rejects_bad_language_codes(field, bad):
    kwargs = {"src_lang": "en", "tgt_lang": "zh", field: bad}
    with raises(InvalidRequestError, f"JobRequest.{field}"):
        JobRequest(**kwargs)


@pytest.mark.parametrize("tgt", ["auto", " Auto "])
def test_auto_is_allowed_only_as_source(tgt):
    with raises(InvalidRequestError, "JobRequest.tgt_lang", "auto"):
        JobRequest("en", tgt)


def test_job_request_required_types():
    assert JobRequest("en", "zh", ["asr", "NMT"]).required_types == ASR | NMT
    assert JobRequest("en", "zh", SEMANTIC | ASR).required_types == SEMANTIC | ASR
    with raises(InvalidRequestError, "JobRequest.required_types"):
        JobRequest("en", "zh", ServiceType(0))
    with raises(InvalidRequestError, "JobRequest.required_types", "'OCR'"):
        JobRequest("en", "zh", ["ASR", "OCR"])


def test_job_request_exclude_node_ids():
    job = JobRequest("en", "zh", exclude_node_ids=["a", "b", "a"])
    assert job.exclude_node_ids == frozenset({"a", "b"})
    with raises(InvalidRequestError, "JobRequest.exclude_node_ids", "'node-1'"):
        JobRequest("en", "zh", exclude_node_ids="node-1")
    with raises(InvalidRequestError, "JobRequest.exclude_node_ids"):
        JobRequest("en", "zh", exclude_node_ids=["a", ""])
    with raises(InvalidRequestError, "JobRequest.exclude_node_ids"):
        JobRequest("en", "zh", exclude_node_ids=5)


@pytest.mark.parametrize("field", ["session_id", "tenant_id", "preferred_node_id"])
@pytest.mark.parametrize("bad", ["", "s" * 257, 5])
def test_job_request_rejects_bad_ids(field, bad):
    with raises(InvalidRequestError, f"JobRequest.{field}"):
        JobRequest("en", "zh", **{field: bad})


def test_job_request_routing_key_limits():
    assert JobRequest("en", "zh", routing_key="").routing_key == ""
    assert JobRequest("en", "zh", routing_key="k" * 1024).key == "k" * 1024
    with raises(InvalidRequestError, "JobRequest.routing_key"):
        JobRequest("en", "zh", routing_key="k" * 1025)
    with raises(InvalidRequestError, "JobRequest.routing_key", "5"):
        JobRequest("en", "zh", routing_key=5)


def test_job_request_public_must_be_bool():
    with raises(InvalidRequestError, "JobRequest.public", "0"):
        JobRequest("en", "zh", public=0)


@given(
    routing_key=st.none() | st.text(max_size=20),
    session_id=st.none() | printable_id,
)
def test_job_request_key(routing_key, session_id):
    job = JobRequest("en", "zh", routing_key=routing_key, session_id=session_id)
    if routing_key is not None:
        assert job.key == routing_key  # an empty routing key still wins
    elif session_id is not None:
        assert job.key == session_id
    else:
        assert job.key == ""


# --- Reason ------------------------------------------------------------------------

# docs/DESIGN.md §5 "Node checks", in order, then the two job-level reasons.
DESIGN_CHECK_ORDER = [
    "excluded",
    "offline",
    "status_not_ready",
    "heartbeat_stale",
    "gpu_unavailable",
    "not_in_public_pool",
    "model_not_available",
    "asr_lang_unsupported",
    "lang_pair_unsupported",
    "tts_lang_unsupported",
    "capacity_exceeded",
    "resource_threshold_exceeded",
]


def test_reason_order_is_the_design_check_order():
    assert [r.value for r in Reason] == [*DESIGN_CHECK_ORDER, "no_eligible_pool", "no_nodes"]
    assert [r.value for r in CHECK_REASONS] == DESIGN_CHECK_ORDER
    assert tuple(Reason)[:12] == CHECK_REASONS
    assert Reason.NO_ELIGIBLE_POOL not in CHECK_REASONS and Reason.NO_NODES not in CHECK_REASONS


def test_reason_names_are_upper_case_values():
    for reason in Reason:
        assert reason.name == reason.value.upper()
        assert reason == reason.value
        assert str(reason) == reason.value
    assert Reason.CAPACITY_EXCEEDED == "capacity_exceeded"
    assert Reason("heartbeat_stale") is Reason.HEARTBEAT_STALE


# --- Breakdown --------------------------------------------------------------------


def counts_of(**named: int) -> list[int]:
    return [named.get(r.name.lower(), 0) for r in CHECK_REASONS]


def test_breakdown_is_a_mapping_of_non_zero_counts_in_check_order():
    b = Breakdown(counts_of(capacity_exceeded=2, excluded=1), total=5)
    assert dict(b) == {Reason.EXCLUDED: 1, Reason.CAPACITY_EXCEEDED: 2}
    assert list(b) == [Reason.EXCLUDED, Reason.CAPACITY_EXCEEDED]
    assert len(b) == 2
    assert b[Reason.CAPACITY_EXCEEDED] == 2
    assert b["excluded"] == 1
    assert Reason.OFFLINE not in b
    assert b.get(Reason.OFFLINE) is None
    for missing in (Reason.OFFLINE, Reason.NO_NODES, Reason.NO_ELIGIBLE_POOL, "bogus"):
        with pytest.raises(KeyError):
            b[missing]
    assert (b.total, b.rejected, b.available) == (5, 3, 2)
    assert b.counts == tuple(counts_of(capacity_exceeded=2, excluded=1))


def test_breakdown_from_a_mapping_equals_from_a_sequence():
    by_map = Breakdown({Reason.OFFLINE: 3, Reason.HEARTBEAT_STALE: 1}, total=4)
    by_seq = Breakdown(counts_of(offline=3, heartbeat_stale=1), total=4)
    assert by_map == by_seq
    assert hash(by_map) == hash(by_seq)
    assert by_map == {Reason.OFFLINE: 3, Reason.HEARTBEAT_STALE: 1}
    assert by_map != Breakdown(counts_of(offline=3, heartbeat_stale=1), total=5)


def test_breakdown_top_reason_tie_goes_to_the_earlier_check():
    tied = Breakdown(counts_of(capacity_exceeded=2, status_not_ready=2, excluded=1), total=5)
    assert tied.top_reason is Reason.STATUS_NOT_READY
    larger = Breakdown(counts_of(capacity_exceeded=3, status_not_ready=2), total=5)
    assert larger.top_reason is Reason.CAPACITY_EXCEEDED
    last = Breakdown(counts_of(resource_threshold_exceeded=1, tts_lang_unsupported=1), total=2)
    assert last.top_reason is Reason.TTS_LANG_UNSUPPORTED


def test_breakdown_empty_is_no_nodes():
    empty = Breakdown()
    assert empty.total == 0 and len(empty) == 0
    assert empty.top_reason is Reason.NO_NODES
    assert (
        Breakdown(total=0, empty_reason=Reason.NO_ELIGIBLE_POOL).top_reason
        is Reason.NO_ELIGIBLE_POOL
    )


def test_breakdown_nothing_rejected_has_no_top_reason():
    assert Breakdown(total=3).top_reason is None
    assert Breakdown(total=3).available == 3


@pytest.mark.parametrize(
    ("counts", "total"),
    [
        (counts_of(excluded=2, offline=2), 3),  # counts exceed total
        (counts_of(excluded=1), 0),
        (counts_of(offline=-1), 5),
        ([1, 2, 3], 10),  # not one count per check
        ([0] * 13, 10),
    ],
)
def test_breakdown_rejects_impossible_counts(counts, total):
    with pytest.raises(ValueError):
        Breakdown(counts, total=total)


def test_breakdown_describe_ranks_by_count_then_check_order():
    b = Breakdown(
        counts_of(capacity_exceeded=2, status_not_ready=2, excluded=1, offline=5), total=12
    )
    assert b.describe() == "5 offline, 2 status_not_ready, 2 capacity_exceeded, 1 excluded"
    assert Breakdown(total=2).describe() == ""


breakdown_counts = st.lists(st.integers(0, 50), min_size=12, max_size=12)


@given(breakdown_counts, st.integers(0, 50))
def test_breakdown_counts_sum_plus_available_is_total(counts, survivors):
    total = sum(counts) + survivors
    b = Breakdown(counts, total=total)
    assert sum(b.values()) + b.available == b.total == total
    assert b.available == survivors
    assert set(b) == {r for r, c in zip(CHECK_REASONS, counts) if c}
    if total == 0:
        assert b.top_reason is Reason.NO_NODES
    elif max(counts) == 0:
        assert b.top_reason is None
    else:
        best = max(counts)
        earliest = next(r for r, c in zip(CHECK_REASONS, counts) if c == best)
        assert b.top_reason is earliest
        assert all(b[r] <= b[b.top_reason] for r in b)


@given(breakdown_counts)
def test_breakdown_never_accepts_more_rejections_than_candidates(counts):
    assume(sum(counts) > 0)
    with pytest.raises(ValueError):
        Breakdown(counts, total=sum(counts) - 1)


# --- Selection ---------------------------------------------------------------------


def make_selection(node_id, attempts, path="fast"):
    first = attempts[0].breakdown if attempts else Breakdown()
    return Selection(
        node_id=node_id,
        pool_id=attempts[-1].pool_id if node_id else None,
        preferred_pool=attempts[0].pool_id if attempts else None,
        fallback_used=len(attempts) > 1,
        breakdown=attempts[-1].breakdown if node_id else first,
        attempts=tuple(attempts),
        path=path,
    )


def test_explain_success_names_node_and_pool():
    b = Breakdown(counts_of(status_not_ready=2, excluded=1), total=12)
    sel = make_selection("n-3", [Attempt(1, "en-zh", b)])
    assert sel.ok
    text = sel.explain()
    assert "n-3" in text
    assert "9/12 nodes available in pool 1 (en-zh)" in text
    assert "2 status_not_ready, 1 excluded" in text
    assert text.index("status_not_ready") < text.index("excluded")


def test_explain_failure_lists_every_pool_tried():
    a1 = Attempt(4, "en-ja-zh", Breakdown(counts_of(capacity_exceeded=3), total=3))
    a2 = Attempt(7, "en-zh", Breakdown(counts_of(offline=1, heartbeat_stale=1), total=2))
    a3 = Attempt(9, "de-en", Breakdown(total=0))
    sel = make_selection(None, [a1, a2, a3])
    assert not sel.ok
    text = sel.explain()
    assert "0/3 nodes available in pool 4 (en-ja-zh): 3 capacity_exceeded" in text
    assert "0/2 nodes available in pool 7 (en-zh): 1 offline, 1 heartbeat_stale" in text
    assert "0/0 nodes available in pool 9 (de-en): no_nodes" in text
    assert "\n" not in text


def test_explain_single_level_and_no_attempts():
    sel = make_selection("n-1", [Attempt(None, "", Breakdown(counts_of(offline=1), total=4))])
    text = sel.explain()
    assert "3/4 nodes available in all nodes" in text
    assert "pool" not in text
    nothing = Selection(
        None,
        None,
        None,
        False,
        Breakdown(total=0, empty_reason=Reason.NO_ELIGIBLE_POOL),
        (),
        "legacy",
    )
    assert "no_eligible_pool" in nothing.explain()
    assert not nothing.ok


@given(
    st.lists(
        st.tuples(st.integers(0, 2**31 - 1), printable_id, breakdown_counts, st.integers(0, 5)),
        min_size=1,
        max_size=4,
    ),
    st.none() | printable_id,
)
def test_explain_mentions_every_attempt(raw, node_id):
    attempts = [
        Attempt(pid, name, Breakdown(c, total=sum(c) + extra)) for pid, name, c, extra in raw
    ]
    text = make_selection(node_id, attempts).explain()
    for a in attempts if node_id is None else attempts[-1:]:
        b = a.breakdown
        assert (
            f"{b.available}/{b.total} nodes available in pool {a.pool_id} ({a.pool_name})" in text
        )
    if node_id is not None:
        assert node_id in text


def test_selection_decision_and_attempt_properties():
    b = Breakdown(counts_of(excluded=1), total=2)
    a = Attempt(3, "en-zh", b)
    assert a.top_reason is Reason.EXCLUDED and a.candidates == 2
    s1 = make_selection("n", [a], path="fast")
    s2 = make_selection("n", [a], path="legacy")
    assert s1.decision() == s2.decision()  # the path is not part of the decision
    s3 = make_selection("m", [a], path="fast")
    assert s1.decision() != s3.decision()


def test_model_errors_are_value_errors_and_scheduler_errors():
    for exc in (InvalidRequestError, InvalidHeartbeatError):
        assert issubclass(exc, SchedulerError) and issubclass(exc, ValueError)


def test_frozen_value_objects():
    job = JobRequest("en", "zh")
    with pytest.raises(AttributeError):
        job.src_lang = "de"  # type: ignore[misc]
    info = NodeInfo()
    with pytest.raises(AttributeError):
        info.max_concurrent_jobs = 9  # type: ignore[misc]
