"""Which language codes are known: ISO 639-1 and common BCP-47 tags.

The scheduler itself accepts any well-formed code (a fleet may use private
codes); this list only lets ``pyscheduler validate-config`` warn about a code
that is probably a typo (``"xx-notreal"``, ``"cn"`` for ``"zh"``).

A code is known when it is an ISO 639-1 code, one of :data:`EXTRA_LANGUAGES`
(ISO 639-3 codes speech systems commonly use), or a BCP-47 tag whose primary
subtag is one of those and whose other subtags are a script (four letters,
``zh-hant``) and/or a region (two letters or three digits, ``pt-br``,
``es-419``). ``auto`` (detect the source) is known too.
"""

from __future__ import annotations

import re

from .languages import AUTO

__all__ = ["EXTRA_LANGUAGES", "ISO_639_1", "is_known_language", "unknown_languages"]

#: The 183 two-letter codes of ISO 639-1 (``iw``/``in``/``ji``, their withdrawn
#: forms, are left out on purpose: they are the typos this check exists for).
ISO_639_1: frozenset[str] = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho
    hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku
    kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn
    no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm
    sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi
    vo wa wo xh yi yo za zh zu
    """.split()
)

#: Three-letter codes (ISO 639-3) common in speech and translation systems.
EXTRA_LANGUAGES: frozenset[str] = frozenset(
    "yue cmn wuu nan hak fil haw ceb hmn ast ckb sah lij fur szl hsb dsb mni sat kok mai".split()
)

_PRIMARY = ISO_639_1 | EXTRA_LANGUAGES
_SUBTAG = re.compile(r"[a-z]{4}|[a-z]{2}|[0-9]{3}")


def is_known_language(code: str) -> bool:
    """Whether a (normalised: lower case, ``-`` separated) code is a known language or tag."""
    if code == AUTO:
        return True
    primary, *rest = code.split("-")
    if primary not in _PRIMARY or len(rest) > 2:
        return False
    return all(_SUBTAG.fullmatch(subtag) for subtag in rest)


def unknown_languages(codes: object, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The codes (an iterable of normalised codes) that are neither known nor ``allowed``,
    sorted and without repeats."""
    return sorted({c for c in codes if c not in allowed and not is_known_language(c)})  # type: ignore[attr-defined]
