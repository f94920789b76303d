"""Scheduler configuration (docs/DESIGN.md §3): pools, Phase3 settings, core services.

Configs validate on construction (:class:`~pyscheduler.errors.ConfigError`
names the field and the bad value), load from TOML files and dicts, and dump
back losslessly: ``Phase3Config.from_dict(cfg.to_dict()) == cfg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._validate import (
    MAX_COUNT,
    check_bool,
    check_choice,
    check_id,
    check_int,
    check_number,
    check_optional_id,
    check_size,
)
from .errors import ConfigError
from .languages import NMT_RULES, normalize_langs, normalize_pairs
from .limits import MAX_NMT_PAIRS, MAX_POOL_LANGUAGES, MAX_POOL_NAME_LENGTH
from .model import ServiceType, parse_service_types, service_type_names
from .tomlfile import parse_toml, read_toml_file

__all__ = [
    "PoolConfig",
    "AutoPoolConfig",
    "Phase3Config",
    "CoreServicesConfig",
    "MODES",
    "MAX_POOL_ID",
]

MODES = ("two_level", "single_level")
MATCH_SCOPES = ("core_only", "all_required")
MATCH_MODES = ("contains", "exact")
MEMBERSHIPS = ("all_matching", "most_specific")
MAX_POOL_ID = 2**31 - 1
MAX_POOLS = 100_000
MAX_HASH_SEED = 2**63 - 1  # TOML integers are signed 64-bit


def _reject_unknown(d: Any, cls: type, owner: str) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{owner} must be a table/mapping, got {d!r}")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(str(k) for k in set(d) - known)
    if unknown:
        raise ConfigError(f"{owner}: unknown key(s) {', '.join(unknown)}")


@dataclass(frozen=True)
class PoolConfig:
    """A pool: the languages it serves, its translation rule and its required services."""

    pool_id: int
    name: str
    languages: tuple[str, ...] = ()
    nmt_rule: str = "any_to_any"
    nmt_pairs: tuple[tuple[str, str], ...] = ()
    blocked_pairs: tuple[tuple[str, str], ...] = ()
    required_services: ServiceType = ServiceType(0)
    _language_set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"pool {self.pool_id!r}"
        check_int(self.pool_id, "PoolConfig.pool_id", ConfigError, low=0, high=MAX_POOL_ID)
        check_id(self.name, f"{where}: name", ConfigError, max_length=MAX_POOL_NAME_LENGTH)
        langs = normalize_langs(self.languages, f"{where}: languages", ConfigError)
        if not langs:
            raise ConfigError(f"{where}: languages must not be empty")
        check_size(len(langs), MAX_POOL_LANGUAGES, f"{where}: languages", ConfigError, "language codes")
        object.__setattr__(self, "languages", langs)
        object.__setattr__(self, "_language_set", frozenset(langs))
        check_choice(self.nmt_rule, f"{where}: nmt_rule", NMT_RULES, ConfigError)
        for name in ("nmt_pairs", "blocked_pairs"):
            pairs = normalize_pairs(getattr(self, name), f"{where}: {name}", ConfigError)
            check_size(len(pairs), MAX_NMT_PAIRS, f"{where}: {name}", ConfigError, "pairs")
            object.__setattr__(self, name, pairs)
        if self.nmt_rule == "specific_pairs" and not self.nmt_pairs:
            raise ConfigError(f"{where}: nmt_rule 'specific_pairs' needs nmt_pairs")
        required = parse_service_types(self.required_services, f"{where}: required_services", ConfigError)
        object.__setattr__(self, "required_services", required)

    @property
    def language_set(self) -> frozenset[str]:
        """The pool's languages as a set (built once)."""
        return self._language_set

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool_id": self.pool_id,
            "name": self.name,
            "languages": list(self.languages),
            "nmt_rule": self.nmt_rule,
            "nmt_pairs": [list(p) for p in self.nmt_pairs],
            "blocked_pairs": [list(p) for p in self.blocked_pairs],
            "required_services": service_type_names(self.required_services),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PoolConfig:
        _reject_unknown(d, cls, f"pool {d.get('pool_id')!r}" if isinstance(d, Mapping) else "pool")
        for key in ("pool_id", "name"):
            if key not in d:
                raise ConfigError(f"pool: missing required key {key!r} in {dict(d)!r}")
        return cls(**dict(d))


@dataclass(frozen=True)
class AutoPoolConfig:
    """How language pools are generated from the fleet (docs/DESIGN.md §6, generated pools).

    ``require_semantic``: only nodes that declare semantic languages count
    towards a generated set (their semantic set is their language set).
    """

    min_nodes_per_pool: int = 1
    max_pools: int = 50
    require_semantic: bool = True

    def __post_init__(self) -> None:
        check_int(self.min_nodes_per_pool, "auto_pool.min_nodes_per_pool", ConfigError, low=1, high=MAX_COUNT)
        check_int(self.max_pools, "auto_pool.max_pools", ConfigError, low=0, high=MAX_POOLS)
        check_bool(self.require_semantic, "auto_pool.require_semantic", ConfigError)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_nodes_per_pool": self.min_nodes_per_pool,
            "max_pools": self.max_pools,
            "require_semantic": self.require_semantic,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AutoPoolConfig:
        _reject_unknown(d, cls, "auto_pool")
        return cls(**dict(d))


@dataclass(frozen=True)
class Phase3Config:
    """The two-level scheduling configuration (docs/DESIGN.md §3, §5)."""

    enabled: bool = True
    mode: str = "two_level"
    pools: tuple[PoolConfig, ...] = ()
    hash_seed: int = 0
    fallback_scan_all_pools: bool = True
    tenant_overrides: Mapping[str, int] = field(default_factory=dict)
    pool_match_scope: str = "core_only"
    pool_match_mode: str = "contains"
    strict_pool_eligibility: bool = False
    auto_generate_language_pools: bool = False
    auto_pool: AutoPoolConfig = field(default_factory=AutoPoolConfig)
    enable_session_affinity: bool = False
    random_sample_size: int = 0
    resource_threshold: float = 85.0
    heartbeat_interval_s: float = 15
    heartbeat_timeout_s: float = 45
    warmup_s: float = 60
    reservation_ttl_s: float = 30
    membership: str = "all_matching"

    def __post_init__(self) -> None:
        err = ConfigError
        for name in ("enabled", "fallback_scan_all_pools", "strict_pool_eligibility",
                     "auto_generate_language_pools", "enable_session_affinity"):
            check_bool(getattr(self, name), name, err)
        check_choice(self.mode, "mode", MODES, err)
        check_choice(self.pool_match_scope, "pool_match_scope", MATCH_SCOPES, err)
        check_choice(self.pool_match_mode, "pool_match_mode", MATCH_MODES, err)
        check_choice(self.membership, "membership", MEMBERSHIPS, err)
        check_int(self.hash_seed, "hash_seed", err, low=0, high=MAX_HASH_SEED)
        check_int(self.random_sample_size, "random_sample_size", err, low=0, high=MAX_COUNT)
        check_number(self.resource_threshold, "resource_threshold", err, low=0, high=100, low_open=True)
        for name in ("heartbeat_interval_s", "heartbeat_timeout_s", "reservation_ttl_s"):
            check_number(getattr(self, name), name, err, low=0, high=86_400 * 365, low_open=True)
        check_number(self.warmup_s, "warmup_s", err, low=0, high=86_400 * 365)
        if self.heartbeat_timeout_s < self.heartbeat_interval_s:
            raise err(
                f"heartbeat_timeout_s ({self.heartbeat_timeout_s}) must be >= "
                f"heartbeat_interval_s ({self.heartbeat_interval_s})"
            )
        if not isinstance(self.auto_pool, AutoPoolConfig):
            raise err(f"auto_pool must be an AutoPoolConfig, got {self.auto_pool!r}")
        object.__setattr__(self, "pools", self._checked_pools(self.pools))
        object.__setattr__(self, "tenant_overrides", self._checked_overrides(self.tenant_overrides))

    @staticmethod
    def _checked_pools(pools: Any) -> tuple[PoolConfig, ...]:
        if isinstance(pools, (str, bytes, Mapping)) or not hasattr(pools, "__iter__"):
            raise ConfigError(f"pools must be a list of PoolConfig, got {pools!r}")
        pools = tuple(pools)
        if len(pools) > MAX_POOLS:
            raise ConfigError(f"pools: at most {MAX_POOLS} pools, got {len(pools)}")
        seen: set[int] = set()
        for pool in pools:
            if not isinstance(pool, PoolConfig):
                raise ConfigError(f"pools must hold PoolConfig objects, got {pool!r}")
            if pool.pool_id in seen:
                raise ConfigError(f"pools: duplicate pool_id {pool.pool_id}")
            seen.add(pool.pool_id)
        return tuple(sorted(pools, key=lambda p: p.pool_id))

    @staticmethod
    def _checked_overrides(overrides: Any) -> dict[str, int]:
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"tenant_overrides must map tenant id to pool id, got {overrides!r}")
        out: dict[str, int] = {}
        for tenant, pool_id in overrides.items():
            check_id(tenant, "tenant_overrides key", ConfigError)
            out[tenant] = check_int(pool_id, f"tenant_overrides[{tenant!r}]", ConfigError,
                                    low=0, high=MAX_POOL_ID)
        return out

    def __hash__(self) -> int:
        return hash((self.pools, tuple(sorted(self.tenant_overrides.items())), self.hash_seed))

    @property
    def two_level(self) -> bool:
        """Whether two-level scheduling is on (it still needs at least one pool to apply)."""
        return self.enabled and self.mode == "two_level"

    def with_pools(self, pools: tuple[PoolConfig, ...]) -> Phase3Config:
        return replace(self, pools=tuple(pools))

    # -- dict / TOML ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (TOML-compatible) that ``from_dict`` turns back into an equal config."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "pools":
                value = [p.to_dict() for p in value]
            elif f.name == "auto_pool":
                value = value.to_dict()
            elif f.name == "tenant_overrides":
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Phase3Config:
        """Build from a dict such as ``to_dict()`` returns; unknown keys are errors."""
        _reject_unknown(d, cls, "Phase3Config")
        kwargs = dict(d)
        if "pools" in kwargs:
            pools = kwargs["pools"]
            if not isinstance(pools, (list, tuple)):
                raise ConfigError(f"pools must be a list of tables, got {pools!r}")
            kwargs["pools"] = tuple(
                p if isinstance(p, PoolConfig) else PoolConfig.from_dict(p) for p in pools
            )
        if "auto_pool" in kwargs and not isinstance(kwargs["auto_pool"], AutoPoolConfig):
            kwargs["auto_pool"] = AutoPoolConfig.from_dict(kwargs["auto_pool"])
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> Phase3Config:
        """Load a TOML file. A ``[phase3]`` table, if present, holds the config."""
        data = _load_toml(path)
        try:
            return cls.from_dict(_section(data, "phase3"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_toml_string(cls, text: str | bytes) -> Phase3Config:
        """Load TOML text (``bytes`` must be UTF-8); a ``[phase3]`` table, if present, holds the config."""
        return cls.from_dict(_section(parse_toml(text), "phase3"))

    def to_toml(self) -> str:
        """The config as TOML text (``from_toml_string`` reads it back equal)."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())


_SECTIONS = ("phase3", "core_services")


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The ``[name]`` table of a config file; a file with neither section is the
    table itself (top-level keys)."""
    if any(s in data for s in _SECTIONS):
        section = data.get(name, {})
    else:
        section = data
    if not isinstance(section, Mapping):
        raise ConfigError(f"[{name}] must be a table, got {section!r}")
    return section


def _load_toml(path: str | Path) -> dict[str, Any]:
    return read_toml_file(path, "config file")


@dataclass(frozen=True)
class CoreServicesConfig:
    """Which installed service counts as the core ASR / NMT / TTS model.

    When an id is set, a node provides that type only if it has a RUNNING
    service of that type with that id; ``None`` accepts any service of the type.
    """

    asr_service_id: str | None = None
    nmt_service_id: str | None = None
    tts_service_id: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            check_optional_id(getattr(self, f.name), f.name, ConfigError)

    def service_id_for(self, kind: ServiceType) -> str | None:
        """The required service id for a core type, or ``None``."""
        if kind == ServiceType.ASR:
            return self.asr_service_id
        if kind == ServiceType.NMT:
            return self.nmt_service_id
        if kind == ServiceType.TTS:
            return self.tts_service_id
        return None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CoreServicesConfig:
        _reject_unknown(d, cls, "CoreServicesConfig")
        return cls(**dict(d))

    @classmethod
    def from_toml(cls, path: str | Path) -> CoreServicesConfig:
        data = _load_toml(path)
        try:
            return cls.from_dict(_section(data, "core_services"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
