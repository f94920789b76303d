"""The known-language list ``validate-config`` warns with: ISO 639-1 and common BCP-47 tags."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from pyscheduler.domain.language_codes import (
    EXTRA_LANGUAGES,
    ISO_639_1,
    is_known_language,
    unknown_languages,
)

REGIONS = st.one_of(
    st.text(string.ascii_lowercase, min_size=2, max_size=2),
    st.text(string.digits, min_size=3, max_size=3),
)
SCRIPTS = st.text(string.ascii_lowercase, min_size=4, max_size=4)


def test_the_list_is_iso_639_1():
    assert len(ISO_639_1) == 183
    assert {"en", "zh", "ja", "de", "fr", "es", "ko", "ar", "hi", "pt"} <= ISO_639_1
    assert not {"cn", "jp", "xx", "iw"} & ISO_639_1  # common typos and withdrawn codes


@given(st.sampled_from(sorted(ISO_639_1)), st.none() | SCRIPTS, st.none() | REGIONS)
def test_a_known_language_with_a_script_and_region_is_known(lang, script, region):
    code = "-".join(p for p in (lang, script, region) if p is not None)
    assert is_known_language(code)


@given(st.text(string.ascii_lowercase, min_size=2, max_size=3), st.none() | REGIONS)
def test_an_unlisted_primary_subtag_is_unknown_whatever_follows(primary, region):
    code = primary if region is None else f"{primary}-{region}"
    listed = primary in ISO_639_1 | EXTRA_LANGUAGES
    assert is_known_language(code) == listed


def test_examples():
    for code in ("en", "zh-hant", "zh-hant-tw", "pt-br", "es-419", "yue", "auto"):
        assert is_known_language(code), code
    for code in ("xx-notreal", "en-notreal", "cn", "en-us-x", "zh-hant-tw-extra", "e", ""):
        assert not is_known_language(code), code


def test_unknown_languages_sorts_dedupes_and_honours_allowed():
    assert unknown_languages(["xx", "en", "qq", "xx"]) == ["qq", "xx"]
    assert unknown_languages(["xx", "en", "qq"], frozenset({"qq"})) == ["xx"]
