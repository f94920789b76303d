"""Value types of the public API (docs/DESIGN.md §3): services, nodes, heartbeats, jobs, results.

Every class validates on construction and raises a subclass of
:class:`~pyscheduler.errors.SchedulerError` whose message names the field and
the bad value. Instances are immutable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._validate import (
    MAX_COUNT,
    check_bool,
    check_id,
    check_int,
    check_number,
    check_optional_id,
    check_size,
    check_text,
)
from .errors import InvalidHeartbeatError, InvalidRequestError
from .languages import AUTO, normalize_lang, normalize_langs, normalize_pairs
from .limits import (
    MAX_EXCLUDED_NODES,
    MAX_ID_LENGTH,
    MAX_INFO_CHARS,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    MAX_LANGUAGES_PER_CAPABILITY,
    MAX_NMT_PAIRS,
    MAX_NODE_LANGUAGES,
    MAX_ROUTING_KEY_LENGTH,
    MAX_SERVICES,
)

__all__ = [
    "ServiceType",
    "CORE_TYPES",
    "ServiceState",
    "InstalledService",
    "LanguageCapabilities",
    "NodeStatus",
    "NodeInfo",
    "Heartbeat",
    "JobRequest",
    "Reason",
    "CHECK_REASONS",
    "Breakdown",
    "Attempt",
    "Selection",
    "NodeView",
    "parse_service_types",
]


class ServiceType(enum.IntFlag):
    """Kinds of service a worker node runs. ASR, NMT and TTS are the core types."""

    ASR = 1
    NMT = 2
    TTS = 4
    SEMANTIC = 8
    TONE = 16


CORE_TYPES = ServiceType.ASR | ServiceType.NMT | ServiceType.TTS
_ALL_TYPES = CORE_TYPES | ServiceType.SEMANTIC | ServiceType.TONE


def parse_service_types(value: Any, field: str, error: type[Exception]) -> ServiceType:
    """Accept a ServiceType, an int mask, a name or a list of names (``["ASR", "NMT"]``)."""
    if isinstance(value, ServiceType):
        mask = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        mask = value
    elif isinstance(value, str) or isinstance(value, (list, tuple, set, frozenset)):
        names = [value] if isinstance(value, str) else list(value)
        mask = 0
        for name in names:
            if isinstance(name, ServiceType):
                mask |= int(name)
                continue
            if not isinstance(name, str) or name.strip().upper() not in ServiceType.__members__:
                known = ", ".join(ServiceType.__members__)
                raise error(f"{field}: unknown service type {name!r} (known: {known})")
            mask |= int(ServiceType[name.strip().upper()])
    else:
        raise error(f"{field} must be service types, got {value!r}")
    if mask & ~int(_ALL_TYPES) or mask < 0:
        raise error(f"{field}: invalid service type mask {value!r}")
    return ServiceType(mask)


def service_type_names(types: ServiceType) -> list[str]:
    """The member names in a mask, in declaration order (the dump form of a mask)."""
    return [m.name for m in ServiceType if m in types and m.name]


class ServiceState(str, enum.Enum):
    """State of one installed service as the node reports it."""

    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class InstalledService:
    """One service installed on a node: its id, its (single) type and its state."""

    service_id: str
    type: ServiceType
    state: ServiceState = ServiceState.RUNNING

    def __post_init__(self) -> None:
        check_id(self.service_id, "InstalledService.service_id", InvalidRequestError)
        kind = parse_service_types(self.type, "InstalledService.type", InvalidRequestError)
        if kind.bit_count() != 1:
            raise InvalidRequestError(
                f"InstalledService.type must be exactly one service type, got {self.type!r}"
            )
        object.__setattr__(self, "type", kind)
        try:
            state = ServiceState(self.state)
        except ValueError:
            raise InvalidRequestError(
                f"InstalledService.state must be one of running, stopped, error; got {self.state!r}"
            ) from None
        object.__setattr__(self, "state", state)

    def to_dict(self) -> dict[str, Any]:
        return {"service_id": self.service_id, "type": self.type.name, "state": self.state.value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InstalledService:
        _reject_unknown(d, ("service_id", "type", "state"), "InstalledService")
        return cls(d.get("service_id"), d.get("type"), d.get("state", ServiceState.RUNNING))


@dataclass(frozen=True, slots=True)
class LanguageCapabilities:
    """The languages a node serves, per service type (codes normalised, sorted, unique).

    A node translates ``src -> tgt`` if ``(src, tgt)`` is in ``nmt_pairs``, or
    both are in ``nmt_languages`` and differ.
    """

    asr: tuple[str, ...] = ()
    tts: tuple[str, ...] = ()
    semantic: tuple[str, ...] = ()
    nmt_languages: tuple[str, ...] = ()
    nmt_pairs: tuple[tuple[str, str], ...] = ()
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        err = InvalidRequestError
        for name in ("asr", "tts", "semantic", "nmt_languages"):
            field_name = f"LanguageCapabilities.{name}"
            _check_input_size(getattr(self, name), MAX_LANGUAGES_PER_CAPABILITY, field_name)
            langs = normalize_langs(getattr(self, name), field_name, err)
            check_size(len(langs), MAX_LANGUAGES_PER_CAPABILITY, field_name, err, "language codes")
            object.__setattr__(self, name, langs)
        _check_input_size(self.nmt_pairs, MAX_NMT_PAIRS, "LanguageCapabilities.nmt_pairs")
        pairs = normalize_pairs(self.nmt_pairs, "LanguageCapabilities.nmt_pairs", err)
        check_size(len(pairs), MAX_NMT_PAIRS, "LanguageCapabilities.nmt_pairs", err, "pairs")
        object.__setattr__(self, "nmt_pairs", pairs)
        check_size(len(self.all_languages()), MAX_NODE_LANGUAGES, "LanguageCapabilities", err,
                   "distinct language codes in all")
        key = (self.asr, self.tts, self.semantic, self.nmt_languages, self.nmt_pairs)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:  # cached: snapshots key their encodings by capabilities
        return self._hash

    def all_languages(self) -> frozenset[str]:
        """Every code the node mentions, for any service (pairs included)."""
        pair_langs = {lang for pair in self.nmt_pairs for lang in pair}
        return frozenset(self.asr) | frozenset(self.tts) | frozenset(self.semantic) | frozenset(
            self.nmt_languages
        ) | pair_langs

    def language_set(self) -> frozenset[str]:
        """The node's language set (docs/DESIGN.md §6): its semantic languages, or else all it serves."""
        if self.semantic:
            return frozenset(self.semantic)
        pair_langs = {lang for pair in self.nmt_pairs for lang in pair}
        return frozenset(self.asr) | frozenset(self.tts) | frozenset(self.nmt_languages) | pair_langs

    def supports_asr(self, src: str) -> bool:
        """ASR for ``src``; ``auto`` needs any ASR language."""
        return bool(self.asr) if src == AUTO else src in self.asr

    def supports_nmt(self, src: str, tgt: str) -> bool:
        """Translation ``src -> tgt``; ``auto`` needs some source that translates to ``tgt``."""
        if src == AUTO:
            if any(t == tgt for _, t in self.nmt_pairs):
                return True
            return tgt in self.nmt_languages and len(self.nmt_languages) >= 2
        if src == tgt:
            return False
        if (src, tgt) in self.nmt_pairs:
            return True
        return src in self.nmt_languages and tgt in self.nmt_languages

    def supports_tts(self, tgt: str) -> bool:
        return tgt in self.tts

    def to_dict(self) -> dict[str, Any]:
        return {
            "asr": list(self.asr),
            "tts": list(self.tts),
            "semantic": list(self.semantic),
            "nmt_languages": list(self.nmt_languages),
            "nmt_pairs": [list(p) for p in self.nmt_pairs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LanguageCapabilities:
        fields = ("asr", "tts", "semantic", "nmt_languages", "nmt_pairs")
        _reject_unknown(d, fields, "LanguageCapabilities")
        return cls(**{k: d[k] for k in fields if k in d})


def _check_input_size(value: Any, limit: int, field: str) -> None:
    """Reject a sized input far past ``limit`` before spending time normalising it
    (duplicates may shrink it, so the exact check follows normalisation)."""
    try:
        size = len(value)
    except TypeError:
        return  # not sized: normalisation names the problem
    check_size(size, 4 * limit, field, InvalidRequestError, "entries, duplicates included")


class NodeStatus(str, enum.Enum):
    """Lifecycle state of a node (docs/DESIGN.md §6). Only READY is dispatchable."""

    REGISTERING = "registering"
    READY = "ready"
    DEGRADED = "degraded"
    DRAINING = "draining"
    OFFLINE = "offline"


def _check_services(value: Any, field: str) -> tuple[InstalledService, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidRequestError(f"{field} must be a list of InstalledService, got {value!r}")
    _check_input_size(value, MAX_SERVICES, field)
    services = tuple(value)
    check_size(len(services), MAX_SERVICES, field, InvalidRequestError, "services")
    for s in services:
        if not isinstance(s, InstalledService):
            raise InvalidRequestError(f"{field} must hold InstalledService objects, got {s!r}")
    ids = [s.service_id for s in services]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError(f"{field}: duplicate service ids in {ids!r}")
    return services


@dataclass(frozen=True)
class NodeInfo:
    """What a node tells the registry when it registers."""

    node_id: str | None = None
    has_gpu: bool = True
    accept_public_jobs: bool = True
    max_concurrent_jobs: int = 4
    installed_services: tuple[InstalledService, ...] = ()
    language_capabilities: LanguageCapabilities = field(default_factory=LanguageCapabilities)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        err = InvalidRequestError
        check_optional_id(self.node_id, "NodeInfo.node_id", err)
        check_bool(self.has_gpu, "NodeInfo.has_gpu", err)
        check_bool(self.accept_public_jobs, "NodeInfo.accept_public_jobs", err)
        check_int(self.max_concurrent_jobs, "NodeInfo.max_concurrent_jobs", err, low=1, high=MAX_COUNT)
        services = _check_services(self.installed_services, "NodeInfo.installed_services")
        object.__setattr__(self, "installed_services", services)
        if not isinstance(self.language_capabilities, LanguageCapabilities):
            raise err(
                "NodeInfo.language_capabilities must be LanguageCapabilities, "
                f"got {self.language_capabilities!r}"
            )
        object.__setattr__(self, "labels", _checked_labels(self.labels))
        check_size(self.text_size(), MAX_INFO_CHARS, "NodeInfo", err, "characters of text")

    def text_size(self) -> int:
        """Characters of text the description carries (ids, codes, labels)."""
        caps = self.language_capabilities
        size = len(self.node_id or "")
        size += sum(len(s.service_id) for s in self.installed_services)
        size += sum(len(c) for name in ("asr", "tts", "semantic", "nmt_languages") for c in getattr(caps, name))
        size += sum(len(a) + len(b) for a, b in caps.nmt_pairs)
        return size + sum(len(k) + len(v) for k, v in self.labels.items())

    def __hash__(self) -> int:
        return hash((self.node_id, self.installed_services, self.language_capabilities))

    def with_id(self, node_id: str) -> NodeInfo:
        """A copy with ``node_id`` set."""
        return NodeInfo(
            node_id,
            self.has_gpu,
            self.accept_public_jobs,
            self.max_concurrent_jobs,
            self.installed_services,
            self.language_capabilities,
            self.labels,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "has_gpu": self.has_gpu,
            "accept_public_jobs": self.accept_public_jobs,
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "installed_services": [s.to_dict() for s in self.installed_services],
            "language_capabilities": self.language_capabilities.to_dict(),
            "labels": dict(self.labels),
        }
        if self.node_id is not None:
            d = {"node_id": self.node_id, **d}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeInfo:
        fields = (
            "node_id",
            "has_gpu",
            "accept_public_jobs",
            "max_concurrent_jobs",
            "installed_services",
            "language_capabilities",
            "labels",
        )
        _reject_unknown(d, fields, "NodeInfo")
        kwargs = {k: d[k] for k in fields if k in d}
        if "installed_services" in kwargs:
            kwargs["installed_services"] = _services_from(kwargs["installed_services"])
        if "language_capabilities" in kwargs:
            kwargs["language_capabilities"] = _caps_from(kwargs["language_capabilities"])
        return cls(**kwargs)


def _checked_labels(labels: Any) -> dict[str, str]:
    """A copy of ``labels``: at most MAX_LABELS str -> str entries, UTF-8 encodable."""
    err = InvalidRequestError
    if not isinstance(labels, Mapping):
        raise err(f"NodeInfo.labels must be a mapping, got {labels!r:.200}")
    check_size(len(labels), MAX_LABELS, "NodeInfo.labels", err, "labels")
    out = {}
    for k, v in labels.items():
        check_text(k, "NodeInfo.labels key", err, max_length=MAX_ID_LENGTH)
        check_text(v, f"NodeInfo.labels[{k!r}]", err, max_length=MAX_LABEL_VALUE_LENGTH)
        out[k] = v
    return out


def _services_from(items: Any) -> tuple[InstalledService, ...]:
    if not isinstance(items, (list, tuple)):
        raise InvalidRequestError(f"installed_services must be a list, got {items!r:.200}")
    check_size(len(items), MAX_SERVICES, "installed_services", InvalidRequestError, "services")
    return tuple(s if isinstance(s, InstalledService) else InstalledService.from_dict(s) for s in items)


def _caps_from(value: Any) -> LanguageCapabilities:
    if isinstance(value, LanguageCapabilities):
        return value
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"language_capabilities must be a table, got {value!r}")
    return LanguageCapabilities.from_dict(value)


def _reject_unknown(d: Any, known: tuple[str, ...], owner: str) -> None:
    if not isinstance(d, Mapping):
        raise InvalidRequestError(f"{owner} must be a mapping, got {d!r}")
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise InvalidRequestError(f"{owner}: unknown field(s) {', '.join(map(str, unknown))}")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Load report of a node. ``None`` in an optional field means "unchanged".

    Usages are percentages: finite numbers in [0, 100].
    """

    cpu_usage: float
    memory_usage: float
    gpu_usage: float | None = None
    current_jobs: int = 0
    installed_services: tuple[InstalledService, ...] | None = None
    language_capabilities: LanguageCapabilities | None = None

    def __post_init__(self) -> None:
        err = InvalidHeartbeatError
        for name in ("cpu_usage", "memory_usage"):
            value = check_number(getattr(self, name), f"Heartbeat.{name}", err, low=0, high=100)
            object.__setattr__(self, name, value)
        if self.gpu_usage is not None:
            gpu = check_number(self.gpu_usage, "Heartbeat.gpu_usage", err, low=0, high=100)
            object.__setattr__(self, "gpu_usage", gpu)
        check_int(self.current_jobs, "Heartbeat.current_jobs", err, low=0, high=MAX_COUNT)
        if self.installed_services is not None:
            try:
                services = _check_services(self.installed_services, "Heartbeat.installed_services")
            except InvalidRequestError as exc:
                raise err(str(exc)) from None
            object.__setattr__(self, "installed_services", services)
        caps = self.language_capabilities
        if caps is not None and not isinstance(caps, LanguageCapabilities):
            raise err(f"Heartbeat.language_capabilities must be LanguageCapabilities, got {caps!r}")

    @property
    def load_only(self) -> bool:
        """True when the beat changes only load figures (no services, no languages)."""
        return self.installed_services is None and self.language_capabilities is None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One job to place: its language pair, the service types it needs and its routing data."""

    src_lang: str
    tgt_lang: str
    required_types: ServiceType = CORE_TYPES
    session_id: str | None = None
    tenant_id: str | None = None
    routing_key: str | None = None
    exclude_node_ids: frozenset[str] = frozenset()
    public: bool = True
    preferred_node_id: str | None = None
    # derived once, for the dispatch path: the routing key and the types as an int
    key: str = field(default="", init=False, repr=False, compare=False)
    types_mask: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        err = InvalidRequestError
        src = normalize_lang(self.src_lang, "JobRequest.src_lang", err, allow_auto=True)
        tgt = normalize_lang(self.tgt_lang, "JobRequest.tgt_lang", err)
        object.__setattr__(self, "src_lang", src)
        object.__setattr__(self, "tgt_lang", tgt)
        types = parse_service_types(self.required_types, "JobRequest.required_types", err)
        if not types:
            raise err("JobRequest.required_types must name at least one service type")
        object.__setattr__(self, "required_types", types)
        for name in ("session_id", "tenant_id", "preferred_node_id"):
            check_optional_id(getattr(self, name), f"JobRequest.{name}", err)
        if self.routing_key is not None:
            check_text(self.routing_key, "JobRequest.routing_key", err, max_length=MAX_ROUTING_KEY_LENGTH)
        object.__setattr__(self, "exclude_node_ids", _checked_excluded(self.exclude_node_ids))
        check_bool(self.public, "JobRequest.public", err)
        # the routing key of docs/DESIGN.md §5: routing_key, else session_id, else ""
        key = self.routing_key if self.routing_key is not None else (self.session_id or "")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "types_mask", int(types))



def _checked_excluded(excluded: Any) -> frozenset[str]:
    """``exclude_node_ids`` as a frozenset of valid node ids (each checked before hashing)."""
    err = InvalidRequestError
    if isinstance(excluded, (str, bytes)) or not hasattr(excluded, "__iter__"):
        raise err(f"JobRequest.exclude_node_ids must be a set of node ids, got {excluded!r:.200}")
    if isinstance(excluded, frozenset):
        ids = excluded
    else:
        _check_input_size(excluded, MAX_EXCLUDED_NODES, "JobRequest.exclude_node_ids")
        ids = tuple(excluded)
    check_size(len(ids), MAX_EXCLUDED_NODES, "JobRequest.exclude_node_ids", err, "node ids")
    for node_id in ids:
        check_id(node_id, "JobRequest.exclude_node_ids", err)
    return ids if isinstance(ids, frozenset) else frozenset(ids)


class Reason(str, enum.Enum):
    """Why a candidate node (or a whole job) was rejected.

    The first twelve members are the node checks in the order they run
    (docs/DESIGN.md §5); the order is also the tie-break of ``Breakdown.top_reason``
    and must match the reason codes of the compiled kernels.
    """

    EXCLUDED = "excluded"
    OFFLINE = "offline"
    STATUS_NOT_READY = "status_not_ready"
    HEARTBEAT_STALE = "heartbeat_stale"
    GPU_UNAVAILABLE = "gpu_unavailable"
    NOT_IN_PUBLIC_POOL = "not_in_public_pool"
    MODEL_NOT_AVAILABLE = "model_not_available"
    ASR_LANG_UNSUPPORTED = "asr_lang_unsupported"
    LANG_PAIR_UNSUPPORTED = "lang_pair_unsupported"
    TTS_LANG_UNSUPPORTED = "tts_lang_unsupported"
    CAPACITY_EXCEEDED = "capacity_exceeded"
    RESOURCE_THRESHOLD_EXCEEDED = "resource_threshold_exceeded"
    NO_ELIGIBLE_POOL = "no_eligible_pool"
    NO_NODES = "no_nodes"

    def __str__(self) -> str:
        return self.value


CHECK_REASONS: tuple[Reason, ...] = tuple(Reason)[:12]
"""The per-node check reasons, in check order (index = kernel reason code)."""


class Breakdown(Mapping[Reason, int]):
    """Per-reason rejection counts of one pool scan: a read-only mapping ``Reason -> int``.

    Only reasons with a non-zero count are keys. ``total`` is the number of
    candidates examined; the counts sum to ``total`` minus the survivors.
    """

    __slots__ = ("_counts", "_total", "_empty_reason")

    def __init__(
        self,
        counts: Any = (),
        total: int = 0,
        empty_reason: Reason = Reason.NO_NODES,
    ) -> None:
        """``counts``: one int per CHECK_REASONS entry (a sequence), or a Reason mapping."""
        if isinstance(counts, Mapping):
            values = tuple(int(counts.get(r, 0)) for r in CHECK_REASONS)
        else:
            values = tuple(int(c) for c in counts) or (0,) * len(CHECK_REASONS)
        if len(values) != len(CHECK_REASONS) or min(values) < 0:
            raise ValueError(f"Breakdown needs {len(CHECK_REASONS)} non-negative counts")
        if sum(values) > total:
            raise ValueError(f"Breakdown counts {sum(values)} exceed total {total}")
        self._counts = values
        self._total = int(total)
        self._empty_reason = empty_reason

    def __getitem__(self, reason: Reason) -> int:
        try:
            count = self._counts[CHECK_REASONS.index(Reason(reason))]
        except ValueError:
            raise KeyError(reason) from None
        if count == 0:
            raise KeyError(reason)
        return count

    def __iter__(self) -> Iterator[Reason]:
        return (r for r, c in zip(CHECK_REASONS, self._counts) if c)

    def __len__(self) -> int:
        return sum(1 for c in self._counts if c)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Breakdown):
            return self._counts == other._counts and self._total == other._total
        return Mapping.__eq__(self, other)

    def __hash__(self) -> int:
        return hash((self._counts, self._total))

    def __repr__(self) -> str:
        items = ", ".join(f"{r.value}={c}" for r, c in self.items())
        return f"Breakdown(total={self._total}{', ' if items else ''}{items})"

    @property
    def counts(self) -> tuple[int, ...]:
        """All counts in CHECK_REASONS order, zeros included."""
        return self._counts

    @property
    def total(self) -> int:
        """Candidates examined."""
        return self._total

    @property
    def rejected(self) -> int:
        return sum(self._counts)

    @property
    def available(self) -> int:
        """Candidates that passed every check."""
        return self._total - sum(self._counts)

    @property
    def top_reason(self) -> Reason | None:
        """The most frequent reason (earlier check wins ties); ``None`` if nothing was rejected.

        When nothing was examined it is the reason the breakdown was made
        empty with: ``NO_NODES`` or ``NO_ELIGIBLE_POOL``.
        """
        if self._total == 0:
            return self._empty_reason
        best = max(self._counts)
        if best == 0:
            return None
        return CHECK_REASONS[self._counts.index(best)]

    def describe(self) -> str:
        """``"2 status_not_ready, 1 excluded"``: reasons by count, most frequent first."""
        ranked = sorted(self.items(), key=lambda rc: (-rc[1], CHECK_REASONS.index(rc[0])))
        return ", ".join(f"{c} {r.value}" for r, c in ranked)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One pool tried by a selection: its id and name, and the breakdown of its scan.

    ``skipped`` is set, and the breakdown empty, when the pool was not scanned
    because no member can pass one of the job's static checks (that reason):
    past the first pool tried, a pool whose members together lack the GPU,
    public access, services or languages the job needs is listed, not scanned
    (docs/DESIGN.md §5, "Pool coverage").
    """

    pool_id: int | None
    pool_name: str
    breakdown: Breakdown
    skipped: Reason | None = None

    @property
    def top_reason(self) -> Reason | None:
        return self.skipped if self.skipped is not None else self.breakdown.top_reason

    @property
    def candidates(self) -> int:
        return self.breakdown.total


class Selection:
    """The answer to one job: the node picked (or ``None``) and exactly why.

    ``pool_id`` is the pool the node came from (``None`` in single-level mode
    or when nothing was picked); ``preferred_pool`` the first pool tried;
    ``fallback_used`` is true when a pool other than the preferred one was
    tried, or when no pool was eligible and all pools were used instead.
    ``breakdown`` is the picked pool's scan, or the first pool's on failure;
    ``attempts`` holds every pool tried. ``reservation`` is the token to
    ``commit`` or ``release`` (``None`` when nothing was picked).

    Immutable. The fast path hands its per-pool counts over undecoded: they
    become ``Attempt``/``Breakdown`` objects only when first read.
    """

    __slots__ = (
        "_node_id",
        "_pool_id",
        "_preferred_pool",
        "_fallback_used",
        "_path",
        "_reservation",
        "_breakdown",
        "_attempts",
        "_decode",
    )

    def __init__(
        self,
        node_id: str | None,
        pool_id: int | None,
        preferred_pool: int | None,
        fallback_used: bool,
        breakdown: Breakdown | None,
        attempts: tuple[Attempt, ...] | None,
        path: str,
        reservation: int | None = None,
        *,
        decode: Any = None,
    ) -> None:
        """``decode``, when given, is a callable returning ``(attempts, breakdown)``;
        it replaces ``attempts`` and ``breakdown`` (pass ``None`` for both)."""
        self._node_id = node_id
        self._pool_id = pool_id
        self._preferred_pool = preferred_pool
        self._fallback_used = fallback_used
        self._path = path
        self._reservation = reservation
        self._breakdown = breakdown
        self._attempts = None if attempts is None else tuple(attempts)
        self._decode = decode
        if decode is None and (breakdown is None or attempts is None):
            raise ValueError("Selection needs breakdown and attempts, or decode")

    @classmethod
    def _lazy(
        cls,
        node_id: str | None,
        pool_id: int | None,
        preferred_pool: int | None,
        fallback_used: bool,
        path: str,
        reservation: int | None,
        decode: Any,
    ) -> Selection:
        """The fast path's constructor: no checks, attempts decoded on first read."""
        self = object.__new__(cls)
        self._node_id = node_id
        self._pool_id = pool_id
        self._preferred_pool = preferred_pool
        self._fallback_used = fallback_used
        self._path = path
        self._reservation = reservation
        self._breakdown = None
        self._attempts = None
        self._decode = decode
        return self

    def _materialise(self) -> None:
        attempts, breakdown = self._decode()
        self._attempts = tuple(attempts)
        self._breakdown = breakdown
        self._decode = None

    @property
    def node_id(self) -> str | None:
        return self._node_id

    @property
    def pool_id(self) -> int | None:
        return self._pool_id

    @property
    def preferred_pool(self) -> int | None:
        return self._preferred_pool

    @property
    def fallback_used(self) -> bool:
        return self._fallback_used

    @property
    def path(self) -> str:
        """``"fast"`` (compiled kernels over the snapshot) or ``"legacy"``."""
        return self._path

    @property
    def reservation(self) -> int | None:
        return self._reservation

    @property
    def breakdown(self) -> Breakdown:
        if self._decode is not None:
            self._materialise()
        return self._breakdown  # type: ignore[return-value]

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        if self._decode is not None:
            self._materialise()
        return self._attempts  # type: ignore[return-value]

    @property
    def ok(self) -> bool:
        return self._node_id is not None

    def with_reservation(self, token: int | None) -> Selection:
        """A copy carrying ``token`` (the registry adds it after reserving)."""
        copy = Selection.__new__(Selection)
        for name in Selection.__slots__:
            object.__setattr__(copy, name, getattr(self, name))
        copy._reservation = token
        return copy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (
            self.decision() == other.decision()
            and self.path == other.path
            and self.reservation == other.reservation
            and self.attempts == other.attempts
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Selection(node_id={self.node_id!r}, pool_id={self.pool_id!r}, "
            f"preferred_pool={self.preferred_pool!r}, fallback_used={self.fallback_used!r}, "
            f"breakdown={self.breakdown!r}, attempts={self.attempts!r}, path={self.path!r}, "
            f"reservation={self.reservation!r})"
        )

    def decision(self) -> tuple[Any, ...]:
        """What two paths must agree on: node, pools, fallback and every attempt's counts."""
        return (
            self.node_id,
            self.pool_id,
            self.preferred_pool,
            self.fallback_used,
            tuple((a.pool_id, a.breakdown.counts, a.breakdown.total, a.skipped) for a in self.attempts),
            self.breakdown.counts,
            self.breakdown.total,
            self.breakdown.top_reason,
        )

    def explain(self) -> str:
        """One line a person can read, in kube-scheduler's "0/N nodes available" style.

        ``"node n-3 selected from pool 1 (en-zh): 9/12 nodes available in pool 1
        (en-zh): 2 status_not_ready, 1 excluded"``; a failure lists every pool tried.
        """
        if not self.attempts:
            return f"no node selected: {self.breakdown.top_reason}"
        parts = []
        for attempt in self.attempts:
            b = attempt.breakdown
            where = "all nodes" if attempt.pool_id is None else f"pool {attempt.pool_id} ({attempt.pool_name})"
            if attempt.skipped is not None:
                parts.append(f"{where} skipped: no member passes {attempt.skipped}")
                continue
            detail = b.describe() if b.total else str(b.top_reason)
            text = f"{b.available}/{b.total} nodes available in {where}"
            parts.append(f"{text}: {detail}" if detail else text)
        if self.ok:
            return f"node {self.node_id} selected; {parts[-1]}" + (
                f" (after {'; '.join(parts[:-1])})" if len(parts) > 1 else ""
            )
        return "no node selected; " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A read-only copy of one node's registry state, as of the call that made it."""

    node_id: str
    status: NodeStatus
    pool_ids: tuple[int, ...]
    cpu_usage: float
    memory_usage: float
    gpu_usage: float | None
    running_jobs: int
    reserved_jobs: int
    max_concurrent_jobs: int
    last_heartbeat: float
    registered_at: float
    draining: bool
    info: NodeInfo
