"""Language codes, translation directions and node language sets (docs/DESIGN.md §5, §6).

Codes are normalised once, when a model object is built: surrounding blanks
stripped, lower case, ``_`` turned into ``-``. They are compared as whole
codes, never as substrings (``en`` never matches ``ben``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .limits import MAX_LANG_LENGTH

__all__ = [
    "AUTO",
    "NMT_RULES",
    "MAX_LANG_LENGTH",
    "normalize_lang",
    "normalize_langs",
    "normalize_pairs",
    "rule_allows",
    "pool_admits",
]

AUTO = "auto"
"""Source code meaning "detected later"; allowed only as a job's source."""

NMT_RULES = ("any_to_any", "any_to_en", "en_to_any", "specific_pairs")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_NORMAL = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # a code already in normal form


def normalize_lang(code: Any, field: str, error: type[Exception], *, allow_auto: bool = False) -> str:
    """Return the normal form of one language code, or raise ``error`` naming ``field``."""
    if type(code) is str and len(code) <= MAX_LANG_LENGTH and code != AUTO and _NORMAL.fullmatch(code):
        return code  # the common case, checked in one pass
    if not isinstance(code, str):
        raise error(f"{field}: a language code must be a string, got {code!r}")
    norm = code.strip().lower().replace("_", "-")
    if not norm:
        raise error(f"{field}: empty language code {code!r}")
    if len(norm) > MAX_LANG_LENGTH:
        raise error(f"{field}: language code longer than {MAX_LANG_LENGTH} characters: {code!r}")
    if not set(norm) <= _ALLOWED or norm.startswith("-") or norm.endswith("-"):
        raise error(f"{field}: language code must be letters, digits and '-', got {code!r}")
    if norm == AUTO and not allow_auto:
        raise error(f"{field}: 'auto' is allowed only as a job's source language")
    return norm


def normalize_langs(codes: Any, field: str, error: type[Exception]) -> tuple[str, ...]:
    """Normalise a collection of codes into a sorted tuple without duplicates."""
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Iterable):
        raise error(f"{field} must be a list of language codes, got {codes!r}")
    return tuple(sorted({normalize_lang(c, field, error) for c in codes}))


def normalize_pairs(pairs: Any, field: str, error: type[Exception]) -> tuple[tuple[str, str], ...]:
    """Normalise ``(src, tgt)`` pairs (or ``"src:tgt"`` strings) into a sorted tuple."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise error(f"{field} must be a list of (src, tgt) pairs, got {pairs!r}")
    out: set[tuple[str, str]] = set()
    for pair in pairs:
        if isinstance(pair, str):
            parts = pair.split(":")
        elif isinstance(pair, (tuple, list)):
            parts = list(pair)
        else:
            raise error(f"{field}: a pair must be (src, tgt) or 'src:tgt', got {pair!r}")
        if len(parts) != 2:
            raise error(f"{field}: a pair must have exactly two codes, got {pair!r}")
        src = normalize_lang(parts[0], field, error)
        tgt = normalize_lang(parts[1], field, error)
        if src == tgt:
            raise error(f"{field}: a pair must join two different languages, got {pair!r}")
        out.add((src, tgt))
    return tuple(sorted(out))


def rule_allows(rule: str, src: str, tgt: str, nmt_pairs: Iterable[tuple[str, str]]) -> bool:
    """Whether a pool's ``nmt_rule`` allows the direction ``src -> tgt``."""
    if rule == "any_to_any":
        return True
    if rule == "any_to_en":
        return tgt == "en"
    if rule == "en_to_any":
        return src == "en"
    return (src, tgt) in nmt_pairs


def pool_admits(
    languages: frozenset[str] | tuple[str, ...],
    rule: str,
    nmt_pairs: frozenset[tuple[str, str]] | tuple[tuple[str, str], ...],
    blocked_pairs: frozenset[tuple[str, str]] | tuple[tuple[str, str], ...],
    src: str,
    tgt: str,
) -> bool:
    """Whether a pool admits the job pair ``(src, tgt)`` (docs/DESIGN.md §5, pool eligibility).

    ``src`` may be ``auto``: then the pool admits when it admits ``(s, tgt)``
    for some language ``s`` of its own.
    """
    if src == AUTO:
        return any(
            pool_admits(languages, rule, nmt_pairs, blocked_pairs, s, tgt) for s in languages
        )
    return (
        src != tgt
        and src in languages
        and tgt in languages
        and (src, tgt) not in blocked_pairs
        and rule_allows(rule, src, tgt, nmt_pairs)
    )
