"""Language codes and pool eligibility by language (docs/DESIGN.md §5 "Languages",
"Pool eligibility", §7.8 whole-code matching)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyscheduler import ConfigError, InvalidRequestError
from pyscheduler.domain.languages import (
    AUTO,
    MAX_LANG_LENGTH,
    NMT_RULES,
    normalize_lang,
    normalize_langs,
    normalize_pairs,
    pool_admits,
    rule_allows,
)


def admits(languages, src, tgt, rule="any_to_any", nmt_pairs=(), blocked=()):
    return pool_admits(
        frozenset(languages), rule, frozenset(nmt_pairs), frozenset(blocked), src, tgt
    )


# --- normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("en", "en"),
        ("  EN  ", "en"),
        ("zh_Hant", "zh-hant"),
        ("pt_BR", "pt-br"),
        ("sr-Latn-RS", "sr-latn-rs"),
        ("\tYUE\n", "yue"),
        ("x" * MAX_LANG_LENGTH, "x" * MAX_LANG_LENGTH),
        ("es-419", "es-419"),
    ],
)
def test_normalize_lang(raw, norm):
    assert normalize_lang(raw, "f", InvalidRequestError) == norm


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "_",
        "-en",
        "en-",
        "_en",
        "en us",
        "en/us",
        "en.us",
        "ün",
        "x" * (MAX_LANG_LENGTH + 1),
        None,
        5,
        b"en",
        ["en"],
    ],
)
def test_normalize_lang_rejects_bad_codes(bad):
    with pytest.raises(InvalidRequestError) as info:
        normalize_lang(bad, "JobRequest.src_lang", InvalidRequestError)
    assert "JobRequest.src_lang" in str(info.value)
    if isinstance(bad, str) and len(bad) < 40:
        assert repr(bad) in str(info.value)


@pytest.mark.parametrize("raw", ["auto", "AUTO", " Auto "])
def test_auto_only_where_allowed(raw):
    assert normalize_lang(raw, "f", InvalidRequestError, allow_auto=True) == AUTO
    with pytest.raises(ConfigError, match="auto"):
        normalize_lang(raw, "pool 1: languages", ConfigError)


def test_normalize_lang_raises_the_given_error_class():
    with pytest.raises(ConfigError):
        normalize_lang("", "f", ConfigError)
    with pytest.raises(InvalidRequestError):
        normalize_lang("", "f", InvalidRequestError)


def test_normalize_langs_dedupes_and_sorts():
    assert normalize_langs(["zh", " EN", "en", "de_at", "DE-AT"], "f", ConfigError) == (
        "de-at",
        "en",
        "zh",
    )
    assert normalize_langs((), "f", ConfigError) == ()
    assert normalize_langs({"ja"}, "f", ConfigError) == ("ja",)
    assert normalize_langs((c for c in ["b1", "a1"]), "f", ConfigError) == ("a1", "b1")


@pytest.mark.parametrize("bad", ["en", b"en", 5, None])
def test_normalize_langs_rejects_non_lists(bad):
    with pytest.raises(ConfigError, match="the_field"):
        normalize_langs(bad, "the_field", ConfigError)


def test_normalize_pairs():
    pairs = normalize_pairs(
        ["ZH:en", ("en", "zh"), ["zh", "EN"], ("ja_JP", "en")], "f", ConfigError
    )
    assert pairs == (("en", "zh"), ("ja-jp", "en"), ("zh", "en"))


@pytest.mark.parametrize(
    "bad",
    [
        ["en:en"],
        [("en", " EN")],
        [("en",)],
        [("en", "zh", "ja")],
        ["en-zh"],
        ["en:zh:ja"],
        [("auto", "en")],
        [5],
        [None],
        "en:zh",
    ],
)
def test_normalize_pairs_rejects_bad_pairs(bad):
    with pytest.raises(ConfigError, match="the_pairs"):
        normalize_pairs(bad, "the_pairs", ConfigError)


@given(st.lists(st.from_regex(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", fullmatch=True), max_size=8))
def test_normalize_langs_is_idempotent_and_sorted(codes):
    once = normalize_langs([c.upper().replace("-", "_") for c in codes], "f", ConfigError)
    assert once == tuple(sorted(set(codes)))
    assert normalize_langs(once, "f", ConfigError) == once


# --- rules -------------------------------------------------------------------------


def test_nmt_rules_are_the_four_of_the_design():
    assert set(NMT_RULES) == {"any_to_any", "any_to_en", "en_to_any", "specific_pairs"}


@pytest.mark.parametrize(
    ("rule", "src", "tgt", "expected"),
    [
        ("any_to_any", "zh", "ja", True),
        ("any_to_en", "zh", "en", True),
        ("any_to_en", "en", "zh", False),
        ("any_to_en", "zh", "ja", False),
        ("any_to_en", "zh", "en-gb", False),  # whole code: en-gb is not en
        ("en_to_any", "en", "zh", True),
        ("en_to_any", "zh", "en", False),
        ("en_to_any", "ben", "zh", False),
        ("specific_pairs", "en", "zh", True),
        ("specific_pairs", "zh", "en", False),
        ("specific_pairs", "en", "ja", False),
    ],
)
def test_rule_allows(rule, src, tgt, expected):
    assert rule_allows(rule, src, tgt, frozenset({("en", "zh")})) is expected


# --- pool_admits -------------------------------------------------------------------

POOL = ("de", "en", "ja", "zh")


@pytest.mark.parametrize(
    ("rule", "admitted"),
    [
        ("any_to_any", {(s, t) for s in POOL for t in POOL if s != t}),
        ("any_to_en", {(s, "en") for s in POOL if s != "en"}),
        ("en_to_any", {("en", t) for t in POOL if t != "en"}),
        ("specific_pairs", {("en", "zh"), ("ja", "de")}),
    ],
)
def test_pool_admits_every_rule(rule, admitted):
    pairs = [("en", "zh"), ("ja", "de"), ("en", "ko")]  # ko is not a pool language
    found = {
        (s, t) for s in (*POOL, "ko") for t in (*POOL, "ko") if admits(POOL, s, t, rule, pairs)
    }
    assert found == admitted


@pytest.mark.parametrize("rule", NMT_RULES)
def test_pool_admits_never_the_same_language(rule):
    for lang in POOL:
        assert not admits(POOL, lang, lang, rule, [("en", "zh")])


def test_pool_admits_needs_both_languages():
    assert not admits(("en", "zh"), "en", "ja")
    assert not admits(("en", "zh"), "ja", "en")
    assert not admits(("en", "zh"), "fr", "de")
    assert admits(("en", "zh"), "zh", "en")


def test_pool_admits_respects_blocked_pairs_in_one_direction():
    blocked = [("zh", "en")]
    assert not admits(POOL, "zh", "en", blocked=blocked)
    assert admits(POOL, "en", "zh", blocked=blocked)
    assert not admits(POOL, "en", "zh", "specific_pairs", [("en", "zh")], blocked=[("en", "zh")])


def test_pool_admits_whole_codes_only():
    pool = ("ben", "zh-hant")
    assert not admits(pool, "en", "zh")
    assert not admits(pool, "en", "zh-hant")
    assert not admits(pool, "ben", "zh")
    assert admits(pool, "ben", "zh-hant")
    assert not admits(pool, "auto", "zh")
    assert not admits(("ben", "zh"), "auto", "en")


def test_pool_admits_auto_source():
    assert admits(("en", "zh"), AUTO, "zh")
    assert not admits(("zh",), AUTO, "zh")  # no other language to come from
    assert admits(POOL, AUTO, "en", "any_to_en")
    assert not admits(POOL, AUTO, "zh", "any_to_en")
    assert admits(POOL, AUTO, "zh", "en_to_any")
    assert not admits(("de", "zh"), AUTO, "zh", "en_to_any")
    assert admits(POOL, AUTO, "de", "specific_pairs", [("ja", "de")])
    assert not admits(POOL, AUTO, "ja", "specific_pairs", [("ja", "de")])
    # every way into tgt is blocked
    assert not admits(("en", "zh"), AUTO, "zh", blocked=[("en", "zh")])
    assert admits(("en", "ja", "zh"), AUTO, "zh", blocked=[("en", "zh")])


# --- properties ----------------------------------------------------------------------

LANGS = ["en", "zh", "ja", "de", "ben"]
lang = st.sampled_from(LANGS)
pair = st.tuples(lang, lang).filter(lambda p: p[0] != p[1])
pools = st.tuples(
    st.frozensets(lang, min_size=1),
    st.sampled_from(NMT_RULES),
    st.frozensets(pair, max_size=6),
    st.frozensets(pair, max_size=4),
)


@given(pools, lang, lang)
@example((frozenset({"en", "zh"}), "any_to_any", frozenset(), frozenset()), "zh", "zh")
def test_admits_implies_both_in_languages_and_distinct(pool, src, tgt):
    languages, rule, nmt_pairs, blocked = pool
    if pool_admits(languages, rule, nmt_pairs, blocked, src, tgt):
        assert src in languages and tgt in languages
        assert src != tgt
        assert (src, tgt) not in blocked


@given(pools, lang, lang)
def test_admits_definition(pool, src, tgt):
    languages, rule, nmt_pairs, blocked = pool
    direction = {
        "any_to_any": True,
        "any_to_en": tgt == "en",
        "en_to_any": src == "en",
        "specific_pairs": (src, tgt) in nmt_pairs,
    }[rule]
    expected = (
        src in languages
        and tgt in languages
        and src != tgt
        and (src, tgt) not in blocked
        and direction
    )
    assert pool_admits(languages, rule, nmt_pairs, blocked, src, tgt) == expected


@given(pools, lang)
def test_auto_admits_iff_some_source_admits(pool, tgt):
    languages, rule, nmt_pairs, blocked = pool
    some = any(pool_admits(languages, rule, nmt_pairs, blocked, s, tgt) for s in LANGS)
    assert pool_admits(languages, rule, nmt_pairs, blocked, AUTO, tgt) == some


@given(st.frozensets(lang, min_size=1), lang, lang)
def test_any_to_any_is_symmetric(languages, a, b):
    # docs/DESIGN.md §7.1: zh->en and en->zh find the same language-set pools
    assert admits(languages, a, b) == admits(languages, b, a)
