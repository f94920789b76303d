"""Migration flags (docs/DESIGN.md §4): move a running dispatcher from the legacy path to
the new one a step at a time. All off (``MigrationFlags.legacy()``) is the legacy
path; ``NodeRegistry()`` runs with all on when the compiled extension is built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ._validate import check_bool, check_int
from .errors import ConfigError
from .hashing import fnv1a64

__all__ = ["MigrationFlags"]


@dataclass(frozen=True, slots=True)
class MigrationFlags:
    """Which parts of the new path are on.

    ``rollout_percent`` routes that share of routing keys (by a stable hash) to
    the new path; ``shadow_compare`` computes both paths, serves one and counts
    every decision where they differ.
    """

    use_management_registry: bool = False
    use_runtime_snapshot: bool = False
    use_lang_index: bool = False
    use_session_runtime: bool = False
    shadow_compare: bool = False
    rollout_percent: int = 100

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "rollout_percent":
                check_bool(getattr(self, f.name), f"MigrationFlags.{f.name}", ConfigError)
        check_int(self.rollout_percent, "MigrationFlags.rollout_percent", ConfigError, low=0, high=100)

    @classmethod
    def all_on(cls) -> MigrationFlags:
        """Every flag on except ``shadow_compare``: the fast path, and what
        ``NodeRegistry()`` runs by default when the compiled extension is built."""
        return cls(True, True, True, True, False, 100)

    @classmethod
    def all_off(cls) -> MigrationFlags:
        """Every flag off: the legacy (reference) path."""
        return cls()

    @classmethod
    def legacy(cls) -> MigrationFlags:
        """The legacy (reference) path, chosen explicitly: the same as :meth:`all_off`."""
        return cls()

    @property
    def any_on(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name.startswith("use_"))

    def in_rollout(self, key: str) -> bool:
        """Whether a routing key falls in the rolled-out share (stable across calls)."""
        if self.rollout_percent >= 100:
            return True
        return fnv1a64(key.encode("utf-8")) % 100 < self.rollout_percent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MigrationFlags:
        """Flags from a mapping such as ``to_dict()`` returns; unknown names are errors."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"MigrationFlags must be a mapping of flag names, got {d!r:.200}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"MigrationFlags: unknown flag(s) {', '.join(sorted(map(str, unknown)))}")
        return cls(**dict(d))
