"""The selection engines the tools offer, and the one flag map behind them.

``pyscheduler simulate --engine NAME`` (one process or ``--instances N``)
and the benchmarks build their registries from :func:`engine_flags`, so one
name means the same flags everywhere, and every report prints
:func:`describe_engine` — which path is served and which, in shadow mode,
is only computed beside it:

- ``legacy``: every flag off; the pure-Python reference under one lock.
- ``fast``: every flag on but ``shadow_compare``; the compiled kernels over
  the snapshot (the default when the extension is built).
- ``shadow``: serves the legacy path and computes the fast one beside it,
  counting every decision where they differ — the migration step of
  ``docs/MIGRATION.md`` (a dispatcher still on legacy checks the new path).
- ``shadow-fast``: serves the fast path and computes the legacy one beside
  it — the check after switching over.
"""

from __future__ import annotations

from .. import _compat
from ..domain.flags import MigrationFlags

__all__ = ["ENGINES", "default_engine", "describe_engine", "engine_flags"]

_OFF = dict(
    use_management_registry=False,
    use_runtime_snapshot=False,
    use_lang_index=False,
    use_session_runtime=False,
)
_ON = {name: True for name in _OFF}

_FLAGS: dict[str, MigrationFlags] = {
    "legacy": MigrationFlags(**_OFF, shadow_compare=False),
    "fast": MigrationFlags(**_ON, shadow_compare=False),
    "shadow": MigrationFlags(**_OFF, shadow_compare=True),
    "shadow-fast": MigrationFlags(**_ON, shadow_compare=True),
}

_DESCRIPTIONS: dict[str, str] = {
    "legacy": "serves legacy",
    "fast": "serves fast",
    "shadow": "serves legacy, computes fast beside it and counts mismatches",
    "shadow-fast": "serves fast, computes legacy beside it and counts mismatches",
}

#: The engine names, in the order the CLI lists them.
ENGINES: tuple[str, ...] = tuple(_FLAGS)


def engine_flags(engine: str) -> MigrationFlags:
    """The migration flags of an engine name (one of :data:`ENGINES`)."""
    try:
        return _FLAGS[engine]
    except (KeyError, TypeError):
        raise ValueError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}") from None


def describe_engine(engine: str) -> str:
    """What the engine serves and computes, in words (printed by every report)."""
    engine_flags(engine)  # the same error for an unknown name
    return _DESCRIPTIONS[engine]


def default_engine() -> str:
    """``fast`` when the compiled extension is in use, else ``legacy``."""
    return "fast" if _compat.HAVE_HOTPATH else "legacy"
