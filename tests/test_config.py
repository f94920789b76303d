"""Configuration objects (docs/DESIGN.md §3): validation that names the field and the bad
value, and lossless dict / TOML round trips."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyscheduler import (
    AutoPoolConfig,
    ConfigError,
    CoreServicesConfig,
    Phase3Config,
    PoolConfig,
    SchedulerError,
    ServiceType,
)
from pyscheduler.domain.config import MAX_POOL_ID
from pyscheduler.domain.limits import MAX_POOL_NAME_LENGTH

ASR, NMT, TTS, SEMANTIC = ServiceType.ASR, ServiceType.NMT, ServiceType.TTS, ServiceType.SEMANTIC


@contextmanager
def raises(*fragments: str, error: type[Exception] = ConfigError):
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, SchedulerError)


def pool(pool_id=1, name="p", languages=("en", "zh"), **kw) -> PoolConfig:
    return PoolConfig(pool_id, name, languages, **kw)


# --- strategies -----------------------------------------------------------------

LANGS = ["en", "zh", "ja", "de", "fr", "es", "pt-br", "zh-hant"]
lang = st.sampled_from(LANGS)
pair = st.tuples(lang, lang).filter(lambda p: p[0] != p[1])
printable_text = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() and s.isprintable())


@st.composite
def pool_configs(draw, pool_id=None):
    rule = draw(st.sampled_from(["any_to_any", "any_to_en", "en_to_any", "specific_pairs"]))
    nmt_pairs = draw(st.lists(pair, min_size=1 if rule == "specific_pairs" else 0, max_size=4))
    return PoolConfig(
        pool_id=draw(st.integers(0, MAX_POOL_ID)) if pool_id is None else pool_id,
        name=draw(printable_text),
        languages=draw(st.lists(lang, min_size=1, max_size=5)),
        nmt_rule=rule,
        nmt_pairs=nmt_pairs,
        blocked_pairs=draw(st.lists(pair, max_size=3)),
        required_services=ServiceType(draw(st.integers(0, 31))),
    )


seconds = st.one_of(
    st.integers(1, 10_000),
    st.floats(min_value=0, max_value=10_000, exclude_min=True, allow_nan=False),
)


@st.composite
def phase3_configs(draw):
    ids = draw(st.lists(st.integers(0, MAX_POOL_ID), unique=True, max_size=5))
    pools = [draw(pool_configs(pool_id=i)) for i in ids]
    interval, timeout = sorted([draw(seconds), draw(seconds)])
    return Phase3Config(
        enabled=draw(st.booleans()),
        mode=draw(st.sampled_from(["two_level", "single_level"])),
        pools=draw(st.permutations(pools)),
        hash_seed=draw(st.integers(0, 2**63 - 1)),
        fallback_scan_all_pools=draw(st.booleans()),
        tenant_overrides=draw(
            st.dictionaries(printable_text, st.integers(0, MAX_POOL_ID), max_size=3)
        ),
        pool_match_scope=draw(st.sampled_from(["core_only", "all_required"])),
        pool_match_mode=draw(st.sampled_from(["contains", "exact"])),
        strict_pool_eligibility=draw(st.booleans()),
        auto_generate_language_pools=draw(st.booleans()),
        auto_pool=AutoPoolConfig(
            draw(st.integers(1, 1_000_000)), draw(st.integers(0, 100_000)), draw(st.booleans())
        ),
        enable_session_affinity=draw(st.booleans()),
        random_sample_size=draw(st.integers(0, 1_000_000)),
        resource_threshold=draw(
            st.floats(min_value=0, max_value=100, exclude_min=True) | st.integers(1, 100)
        ),
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=timeout,
        warmup_s=draw(st.just(0) | seconds),
        reservation_ttl_s=draw(seconds),
        membership=draw(st.sampled_from(["all_matching", "most_specific"])),
    )


# --- PoolConfig ------------------------------------------------------------------


def test_pool_config_defaults_and_normalisation():
    p = PoolConfig(3, "asia", [" ZH", "en", "EN", "ja_JP"], nmt_pairs=["zh:en", ("JA-jp", "en")])
    assert p.languages == ("en", "ja-jp", "zh")
    assert p.language_set == frozenset({"en", "ja-jp", "zh"})
    assert p.nmt_rule == "any_to_any"
    assert p.nmt_pairs == (("ja-jp", "en"), ("zh", "en"))
    assert p.blocked_pairs == ()
    assert p.required_services == ServiceType(0)
    assert (
        PoolConfig(1, "x", ["en"], required_services=["asr", "NMT"]).required_services == ASR | NMT
    )


@pytest.mark.parametrize(
    ("pool_id", "fragment"),
    [
        (-1, "-1"),
        (MAX_POOL_ID + 1, str(MAX_POOL_ID + 1)),
        ("1", "'1'"),
        (True, "True"),
        (1.0, "1.0"),
        (None, "None"),
    ],
)
def test_pool_config_rejects_bad_pool_id(pool_id, fragment):
    with raises("PoolConfig.pool_id", fragment):
        PoolConfig(pool_id, "p", ["en"])


def test_pool_config_pool_id_bounds_are_inclusive():
    assert PoolConfig(0, "p", ["en"]).pool_id == 0
    assert PoolConfig(MAX_POOL_ID, "p", ["en"]).pool_id == MAX_POOL_ID


@pytest.mark.parametrize("name", ["", "  ", "n" * (MAX_POOL_NAME_LENGTH + 1), "a\nb", 7, None])
def test_pool_config_rejects_bad_name(name):
    with raises("pool 5", "name"):
        PoolConfig(5, name, ["en"])


@pytest.mark.parametrize(
    ("languages", "fragment"),
    [
        ([], "must not be empty"),
        ("en", "'en'"),
        (["en", ""], "''"),
        (["auto"], "auto"),
        (["e/n"], "'e/n'"),
        (None, "None"),
    ],
)
def test_pool_config_rejects_bad_languages(languages, fragment):
    with raises("pool 5", "languages", fragment):
        PoolConfig(5, "p", languages)


@pytest.mark.parametrize("rule", ["any", "ANY_TO_ANY", "", None, "en_to_en"])
def test_pool_config_rejects_bad_nmt_rule(rule):
    with raises("pool 5", "nmt_rule", repr(rule)):
        pool(5, nmt_rule=rule)


def test_pool_config_specific_pairs_needs_pairs():
    with raises("pool 5", "specific_pairs", "nmt_pairs"):
        pool(5, nmt_rule="specific_pairs")
    assert pool(5, nmt_rule="specific_pairs", nmt_pairs=[("en", "zh")]).nmt_pairs == (("en", "zh"),)


@pytest.mark.parametrize("field", ["nmt_pairs", "blocked_pairs"])
@pytest.mark.parametrize(
    "bad",
    [
        [("en", "en")],
        [("en", "EN ")],
        ["zh:zh"],
        [("en",)],
        [("en", "zh", "ja")],
        ["en-zh"],
        "en:zh",
        [("en", "auto")],
        [5],
    ],
)
def test_pool_config_rejects_bad_pairs(field, bad):
    with raises("pool 5", field):
        pool(5, **{field: bad})


@pytest.mark.parametrize(
    ("bad", "fragment"), [(["ASR", "GPU"], "'GPU'"), (64, "64"), ("speech", "'speech'")]
)
def test_pool_config_rejects_bad_required_services(bad, fragment):
    with raises("pool 5", "required_services", fragment):
        pool(5, required_services=bad)


def test_pool_config_from_dict_requires_id_and_name_and_rejects_unknown_keys():
    with raises("pool_id"):
        PoolConfig.from_dict({"name": "p", "languages": ["en"]})
    with raises("name"):
        PoolConfig.from_dict({"pool_id": 1, "languages": ["en"]})
    with raises("pool 1", "unknown", "langs"):
        PoolConfig.from_dict({"pool_id": 1, "name": "p", "langs": ["en"]})
    with raises("pool"):
        PoolConfig.from_dict(["pool_id", 1])


@given(pool_configs())
def test_pool_config_dict_round_trip(p):
    d = p.to_dict()
    assert PoolConfig.from_dict(d) == p
    assert isinstance(d["required_services"], list)
    assert all(isinstance(x, str) for x in d["required_services"])


# --- AutoPoolConfig ------------------------------------------------------------------


def test_auto_pool_defaults_match_design():
    assert AutoPoolConfig() == AutoPoolConfig(
        min_nodes_per_pool=1, max_pools=50, require_semantic=True
    )


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"min_nodes_per_pool": 0}, ("min_nodes_per_pool", "0")),
        ({"min_nodes_per_pool": 1_000_001}, ("min_nodes_per_pool", "1000001")),
        ({"min_nodes_per_pool": "2"}, ("min_nodes_per_pool", "'2'")),
        ({"max_pools": -1}, ("max_pools", "-1")),
        ({"max_pools": 100_001}, ("max_pools", "100001")),
        ({"max_pools": 2.5}, ("max_pools", "2.5")),
        ({"require_semantic": "yes"}, ("require_semantic", "'yes'")),
    ],
)
def test_auto_pool_rejects_bad_values(kwargs, fragments):
    with raises(*fragments):
        AutoPoolConfig(**kwargs)


def test_auto_pool_dict_round_trip_and_unknown_keys():
    a = AutoPoolConfig(3, 7, False)
    assert AutoPoolConfig.from_dict(a.to_dict()) == a
    with raises("auto_pool", "min_nodes"):
        AutoPoolConfig.from_dict({"min_nodes": 2})


# --- Phase3Config ------------------------------------------------------------------


def test_phase3_defaults_match_design():
    c = Phase3Config()
    assert c.enabled is True
    assert c.mode == "two_level"
    assert c.pools == ()
    assert c.hash_seed == 0
    assert c.fallback_scan_all_pools is True
    assert c.tenant_overrides == {}
    assert c.pool_match_scope == "core_only"
    assert c.pool_match_mode == "contains"
    assert c.strict_pool_eligibility is False
    assert c.auto_generate_language_pools is False
    assert c.auto_pool == AutoPoolConfig()
    assert c.enable_session_affinity is False
    assert c.random_sample_size == 0
    assert c.resource_threshold == 85.0
    assert (c.heartbeat_interval_s, c.heartbeat_timeout_s) == (15, 45)
    assert c.warmup_s == 60
    assert c.reservation_ttl_s == 30
    assert c.membership == "all_matching"
    assert c.two_level


def test_phase3_two_level_needs_enabled_and_mode():
    assert not Phase3Config(enabled=False).two_level
    assert not Phase3Config(mode="single_level").two_level


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"mode": "three_level"}, ("mode", "'three_level'")),
        ({"pool_match_scope": "all"}, ("pool_match_scope", "'all'")),
        ({"pool_match_mode": "subset"}, ("pool_match_mode", "'subset'")),
        ({"membership": "random"}, ("membership", "'random'")),
        ({"enabled": "true"}, ("enabled", "'true'")),
        ({"fallback_scan_all_pools": 1}, ("fallback_scan_all_pools", "1")),
        ({"strict_pool_eligibility": None}, ("strict_pool_eligibility", "None")),
        ({"auto_generate_language_pools": "no"}, ("auto_generate_language_pools", "'no'")),
        ({"enable_session_affinity": 0}, ("enable_session_affinity", "0")),
        ({"hash_seed": -1}, ("hash_seed", "-1")),
        ({"hash_seed": 2**63}, ("hash_seed", str(2**63))),
        ({"hash_seed": 1.0}, ("hash_seed", "1.0")),
        ({"random_sample_size": -1}, ("random_sample_size", "-1")),
        ({"random_sample_size": 1_000_001}, ("random_sample_size", "1000001")),
        ({"resource_threshold": 0}, ("resource_threshold", "0")),
        ({"resource_threshold": -5}, ("resource_threshold", "-5")),
        ({"resource_threshold": 100.5}, ("resource_threshold", "100.5")),
        ({"resource_threshold": math.nan}, ("resource_threshold", "nan")),
        ({"resource_threshold": math.inf}, ("resource_threshold", "inf")),
        ({"resource_threshold": "85"}, ("resource_threshold", "'85'")),
        ({"heartbeat_interval_s": 0}, ("heartbeat_interval_s", "0")),
        ({"heartbeat_interval_s": -1}, ("heartbeat_interval_s", "-1")),
        ({"heartbeat_timeout_s": 0}, ("heartbeat_timeout_s", "0")),
        ({"heartbeat_timeout_s": math.inf}, ("heartbeat_timeout_s", "inf")),
        ({"reservation_ttl_s": 0}, ("reservation_ttl_s", "0")),
        ({"reservation_ttl_s": -30}, ("reservation_ttl_s", "-30")),
        ({"reservation_ttl_s": True}, ("reservation_ttl_s", "True")),
        ({"warmup_s": -1}, ("warmup_s", "-1")),
        ({"warmup_s": math.nan}, ("warmup_s", "nan")),
        ({"auto_pool": {"max_pools": 3}}, ("auto_pool",)),
    ],
)
def test_phase3_rejects_bad_values(kwargs, fragments):
    with raises(*fragments):
        Phase3Config(**kwargs)


@pytest.mark.parametrize("threshold", [100, 100.0, 0.001, 1])
def test_phase3_resource_threshold_range_is_open_closed(threshold):
    assert Phase3Config(resource_threshold=threshold).resource_threshold == threshold


def test_phase3_boundaries_accepted():
    assert Phase3Config(warmup_s=0).warmup_s == 0
    assert Phase3Config(hash_seed=2**63 - 1).hash_seed == 2**63 - 1
    c = Phase3Config(heartbeat_interval_s=10, heartbeat_timeout_s=10)
    assert c.heartbeat_timeout_s == c.heartbeat_interval_s == 10


def test_phase3_timeout_must_not_be_shorter_than_interval():
    with raises("heartbeat_timeout_s", "heartbeat_interval_s", "10", "20"):
        Phase3Config(heartbeat_interval_s=20, heartbeat_timeout_s=10)
    with raises("heartbeat_timeout_s"):
        Phase3Config(heartbeat_interval_s=60)  # default timeout 45 < 60


def test_phase3_rejects_duplicate_pool_ids():
    with raises("duplicate", "pool_id", "7"):
        Phase3Config(pools=(pool(7, "a"), pool(3, "b"), pool(7, "c", ["de", "fr"])))


@pytest.mark.parametrize(
    ("pools", "fragment"),
    [
        ("en-zh", "pools"),
        ({"pool_id": 1}, "pools"),
        (5, "pools"),
        ([{"pool_id": 1, "name": "p", "languages": ["en"]}], "PoolConfig"),
    ],
)
def test_phase3_rejects_bad_pools(pools, fragment):
    with raises(fragment):
        Phase3Config(pools=pools)


def test_phase3_pools_are_kept_sorted_by_id():
    a, b, c = pool(9, "a"), pool(2, "b"), pool(5, "c")
    cfg = Phase3Config(pools=[a, b, c])
    assert [p.pool_id for p in cfg.pools] == [2, 5, 9]
    assert isinstance(cfg.pools, tuple)
    assert cfg == Phase3Config(pools=(c, a, b))
    assert hash(cfg) == hash(Phase3Config(pools=(c, a, b)))


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ([("acme", 1)], ("tenant_overrides",)),
        ({"": 1}, ("tenant_overrides",)),
        ({"t" * 257: 1}, ("tenant_overrides",)),
        ({5: 1}, ("tenant_overrides", "5")),
        ({"acme": "1"}, ("tenant_overrides['acme']", "'1'")),
        ({"acme": -1}, ("tenant_overrides['acme']", "-1")),
        ({"acme": True}, ("tenant_overrides['acme']", "True")),
        ({"acme": MAX_POOL_ID + 1}, ("tenant_overrides['acme']", str(MAX_POOL_ID + 1))),
    ],
)
def test_phase3_rejects_bad_tenant_overrides(overrides, fragments):
    with raises(*fragments):
        Phase3Config(tenant_overrides=overrides)


def test_phase3_tenant_overrides_are_copied():
    overrides = {"acme": 1}
    cfg = Phase3Config(tenant_overrides=overrides)
    overrides["acme"] = 2
    assert cfg.tenant_overrides == {"acme": 1}


def test_phase3_with_pools_replaces_only_pools():
    cfg = Phase3Config(hash_seed=9, membership="most_specific", pools=(pool(1),))
    new = cfg.with_pools((pool(4, "x", ["de", "fr"]),))
    assert [p.pool_id for p in new.pools] == [4]
    assert (new.hash_seed, new.membership) == (9, "most_specific")
    with raises("duplicate"):
        cfg.with_pools((pool(4), pool(4, "y")))


# --- from_dict -------------------------------------------------------------------------


def test_phase3_from_dict_builds_nested_objects():
    cfg = Phase3Config.from_dict(
        {
            "hash_seed": 42,
            "pools": [
                {
                    "pool_id": 2,
                    "name": "en-zh",
                    "languages": ["zh", "en"],
                    "required_services": ["ASR"],
                },
                {"pool_id": 1, "name": "en-ja", "languages": ["en", "ja"], "nmt_rule": "any_to_en"},
            ],
            "auto_pool": {"max_pools": 5},
            "tenant_overrides": {"acme": 2},
        }
    )
    assert [p.pool_id for p in cfg.pools] == [1, 2]
    assert cfg.pools[1].required_services == ASR
    assert cfg.pools[0].nmt_rule == "any_to_en"
    assert cfg.auto_pool == AutoPoolConfig(max_pools=5)
    assert cfg.tenant_overrides == {"acme": 2}


@pytest.mark.parametrize(
    ("d", "fragments"),
    [
        ({"hash_seeds": 1}, ("Phase3Config", "unknown", "hash_seeds")),
        (
            {"pools": [{"pool_id": 1, "name": "p", "languages": ["en"], "rule": "x"}]},
            ("pool 1", "rule"),
        ),
        ({"auto_pool": {"max_pool": 3}}, ("auto_pool", "max_pool")),
        ({"pools": {"pool_id": 1}}, ("pools",)),
        ({"pools": "p"}, ("pools",)),
        ({"pools": [5]}, ("pool",)),
        ({"auto_pool": 5}, ("auto_pool",)),
        ({"mode": 2}, ("mode", "2")),
        (
            {"pools": [{"pool_id": 1, "name": "p", "languages": ["en", "en_"]}]},
            ("pool 1", "languages"),
        ),
        ([("mode", "two_level")], ("Phase3Config",)),
    ],
)
def test_phase3_from_dict_rejects_bad_input(d, fragments):
    with raises(*fragments):
        Phase3Config.from_dict(d)


@given(phase3_configs())
@example(Phase3Config())
def test_phase3_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert Phase3Config.from_dict(d) == cfg
    # the dict is plain data: no enums, tuples or config objects
    assert isinstance(d["pools"], list) and isinstance(d["auto_pool"], dict)
    assert Phase3Config.from_dict(d).to_dict() == d


@given(phase3_configs())
@example(Phase3Config())
@example(Phase3Config(tenant_overrides={'we "quote" \\ ünïcode': 1}, pools=(pool(0, 'n "q" \\'),)))
def test_phase3_toml_round_trip(cfg):
    text = cfg.to_toml()
    assert Phase3Config.from_toml_string(text) == cfg


def test_phase3_toml_round_trip_keeps_every_field():
    cfg = Phase3Config(
        enabled=False,
        mode="single_level",
        pools=(
            pool(
                1,
                "a",
                ["en", "zh"],
                nmt_rule="specific_pairs",
                nmt_pairs=[("en", "zh")],
                blocked_pairs=[("zh", "en")],
                required_services=ASR | TTS,
            ),
        ),
        hash_seed=2**63 - 1,
        fallback_scan_all_pools=False,
        tenant_overrides={"acme": 1},
        pool_match_scope="all_required",
        pool_match_mode="exact",
        strict_pool_eligibility=True,
        auto_generate_language_pools=True,
        auto_pool=AutoPoolConfig(2, 3, False),
        enable_session_affinity=True,
        random_sample_size=16,
        resource_threshold=99.5,
        heartbeat_interval_s=0.25,
        heartbeat_timeout_s=1.5,
        warmup_s=0,
        reservation_ttl_s=7,
        membership="most_specific",
    )
    back = Phase3Config.from_toml_string(cfg.to_toml())
    assert back == cfg
    assert back.to_dict() == cfg.to_dict()
    assert all(
        getattr(back, k) != getattr(Phase3Config(), k) for k in cfg.to_dict() if k != "warmup_s"
    )


# --- TOML files ------------------------------------------------------------------------

TOML_TEXT = """\
hash_seed = 7
enable_session_affinity = true
membership = "most_specific"

[[pools]]
pool_id = 2
name = "en-zh"
languages = ["EN", "zh"]

[[pools]]
pool_id = 1
name = "to-english"
languages = ["de", "en", "fr"]
nmt_rule = "any_to_en"
blocked_pairs = [["fr", "en"]]
required_services = ["ASR", "NMT"]

[tenant_overrides]
acme = 2

[auto_pool]
max_pools = 9
"""


def check_loaded(cfg: Phase3Config) -> None:
    assert cfg.hash_seed == 7
    assert cfg.enable_session_affinity is True
    assert cfg.membership == "most_specific"
    assert [p.pool_id for p in cfg.pools] == [1, 2]
    assert cfg.pools[1].languages == ("en", "zh")
    assert cfg.pools[0].blocked_pairs == (("fr", "en"),)
    assert cfg.pools[0].required_services == ASR | NMT
    assert cfg.tenant_overrides == {"acme": 2}
    assert cfg.auto_pool == AutoPoolConfig(max_pools=9)
    assert cfg.heartbeat_timeout_s == 45  # untouched defaults


def test_from_toml_file(tmp_path):
    path = tmp_path / "scheduler.toml"
    path.write_text(TOML_TEXT, encoding="utf-8")
    check_loaded(Phase3Config.from_toml(path))
    check_loaded(Phase3Config.from_toml(str(path)))


def test_from_toml_file_with_phase3_section(tmp_path):
    body = "\n".join(
        line.replace("[[pools]]", "[[phase3.pools]]")
        .replace("[tenant_overrides]", "[phase3.tenant_overrides]")
        .replace("[auto_pool]", "[phase3.auto_pool]")
        for line in TOML_TEXT.splitlines()
    )
    head, _, tail = body.partition("\n\n")
    text = '[core_services]\nasr_service_id = "whisper"\n\n[phase3]\n' + head + "\n\n" + tail
    path = tmp_path / "full.toml"
    path.write_text(text, encoding="utf-8")
    check_loaded(Phase3Config.from_toml(path))
    check_loaded(Phase3Config.from_toml_string(text))
    assert CoreServicesConfig.from_toml(path) == CoreServicesConfig(asr_service_id="whisper")


def test_from_toml_file_written_by_to_toml(tmp_path):
    cfg = Phase3Config(pools=(pool(1), pool(2, "b", ["de", "fr"])), hash_seed=3)
    path = tmp_path / "dump.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    assert Phase3Config.from_toml(path) == cfg


def test_from_toml_malformed_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("hash_seed = = 3\n[pools\n", encoding="utf-8")
    with raises(str(path), "malformed TOML"):
        Phase3Config.from_toml(path)
    with raises("malformed TOML"):
        Phase3Config.from_toml_string(
            "mode = 'two_level'\nmode = 'single_level'\n"
        )  # duplicate key


def test_from_toml_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "does-not-exist.toml"
    with raises(str(path)):
        Phase3Config.from_toml(path)
    with raises(str(path)):
        CoreServicesConfig.from_toml(path)


def test_from_toml_invalid_value_names_file_and_field(tmp_path):
    path = tmp_path / "bad-value.toml"
    path.write_text("resource_threshold = 150\n", encoding="utf-8")
    with raises(str(path), "resource_threshold", "150"):
        Phase3Config.from_toml(path)
    path.write_text("[phase3]\nmembeship = 'most_specific'\n", encoding="utf-8")
    with raises(str(path), "membeship"):
        Phase3Config.from_toml(path)


def test_from_toml_phase3_must_be_a_table(tmp_path):
    path = tmp_path / "scalar.toml"
    path.write_text("phase3 = 5\n", encoding="utf-8")
    with raises("phase3"):
        Phase3Config.from_toml(path)
    with raises():
        Phase3Config.from_toml_string("phase3 = 5\n")


def test_from_toml_empty_file_is_the_default(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    assert Phase3Config.from_toml(path) == Phase3Config()


# --- CoreServicesConfig ------------------------------------------------------------------


def test_core_services_defaults_and_lookup():
    c = CoreServicesConfig(asr_service_id="whisper", tts_service_id="vits")
    assert c.service_id_for(ASR) == "whisper"
    assert c.service_id_for(NMT) is None
    assert c.service_id_for(TTS) == "vits"
    assert c.service_id_for(SEMANTIC) is None
    assert CoreServicesConfig() == CoreServicesConfig(None, None, None)


@pytest.mark.parametrize("field", ["asr_service_id", "nmt_service_id", "tts_service_id"])
@pytest.mark.parametrize("bad", ["", "   ", "s" * 257, 5, "a\nb"])
def test_core_services_rejects_bad_ids(field, bad):
    with raises(field):
        CoreServicesConfig(**{field: bad})


def test_core_services_dict_round_trip_and_unknown_keys():
    c = CoreServicesConfig(nmt_service_id="m2m")
    assert c.to_dict() == {"nmt_service_id": "m2m"}
    assert CoreServicesConfig.from_dict(c.to_dict()) == c
    assert CoreServicesConfig.from_dict({}) == CoreServicesConfig()
    with raises("CoreServicesConfig", "asr_id"):
        CoreServicesConfig.from_dict({"asr_id": "w"})
    with raises("CoreServicesConfig"):
        CoreServicesConfig.from_dict("whisper")


@given(st.none() | printable_text, st.none() | printable_text, st.none() | printable_text)
def test_core_services_round_trip(a, n, t):
    c = CoreServicesConfig(a, n, t)
    assert CoreServicesConfig.from_dict(c.to_dict()) == c


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, SchedulerError)


def test_each_loader_reads_only_its_own_section(tmp_path):
    only_phase3 = tmp_path / "phase3.toml"
    only_phase3.write_text('[phase3]\nhash_seed = 7\n[[phase3.pools]]\npool_id = 1\nname = "p"\nlanguages = ["en", "zh"]\n')
    only_core = tmp_path / "core.toml"
    only_core.write_text('[core_services]\nasr_service_id = "whisper"\n')
    assert Phase3Config.from_toml(only_phase3).hash_seed == 7
    assert CoreServicesConfig.from_toml(only_phase3) == CoreServicesConfig()
    assert Phase3Config.from_toml(only_core) == Phase3Config()
    assert CoreServicesConfig.from_toml(only_core).asr_service_id == "whisper"


def test_core_services_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "core.toml"
    bad.write_text('[core_services]\nasr_id = "x"\n')
    with pytest.raises(ConfigError, match=r"core\.toml.*asr_id"):
        CoreServicesConfig.from_toml(bad)
