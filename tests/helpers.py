"""Shared builders for the registry and selection tests.

Plain builders (services, capabilities, nodes, pools, configs, a fake clock,
``make_registry``) keep each test short; the hypothesis strategies at the end
describe random fleets, configs and jobs as plain data (:class:`NodeSpec`,
:class:`Scenario`) that :func:`build_registry` turns into a registry through
the public API only. The compiled fast path is tested for equivalence with
the legacy path over these same strategies, so nothing here may depend on
which path serves a selection.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from pyscheduler import (
    AutoPoolConfig,
    CoreServicesConfig,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    Phase3Config,
    PoolConfig,
    ServiceState,
    ServiceType,
)

__all__ = [
    "CORE",
    "CORE_SERVICES",
    "LANGS",
    "NODE_KINDS",
    "FakeClock",
    "NodeSpec",
    "Scenario",
    "beat",
    "build_registry",
    "capabilities",
    "caps",
    "core_services_configs",
    "fleet_of",
    "fleets",
    "installed_services",
    "jobs",
    "lang_sets",
    "make_registry",
    "membership_state",
    "node_info",
    "node_infos",
    "node_specs",
    "phase3",
    "phase3_configs",
    "pool",
    "pool_configs",
    "populate",
    "registry_state",
    "scenarios",
    "services",
    "stopped",
    "svc",
    "unhealthy_beat",
    "weighted",
]

# ``ben`` is there so that substring matching (``en`` in ``ben``) would show.
LANGS: tuple[str, ...] = ("en", "zh", "ja", "de", "ben")
CORE = ServiceType.ASR | ServiceType.NMT | ServiceType.TTS


class FakeClock:
    """A settable monotonic clock for ``NodeRegistry(clock=...)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, now: float) -> float:
        self.now = float(now)
        return self.now


# -- plain builders ------------------------------------------------------------------------


def svc(
    kind: ServiceType | str,
    service_id: str | None = None,
    state: ServiceState = ServiceState.RUNNING,
) -> InstalledService:
    """One installed service; the id defaults to the lower-case type name plus ``-main``."""
    if isinstance(kind, str):
        kind = ServiceType[kind.upper()]
    return InstalledService(service_id or f"{kind.name.lower()}-main", kind, state)


def services(
    *kinds: ServiceType | str, state: ServiceState = ServiceState.RUNNING
) -> tuple[InstalledService, ...]:
    """``services("ASR", "NMT")``: one RUNNING (or ``state``) service per type, default ids."""
    return tuple(svc(k, state=state) for k in kinds)


CORE_SERVICES = services("ASR", "NMT", "TTS")


def stopped(
    svcs: Iterable[InstalledService], *kinds: ServiceType | str
) -> tuple[InstalledService, ...]:
    """``svcs`` with the services of ``kinds`` (default: every core type) STOPPED."""
    wanted = ServiceType(0)
    for k in kinds or (CORE,):
        wanted |= ServiceType[k.upper()] if isinstance(k, str) else k
    return tuple(
        dataclasses.replace(s, state=ServiceState.STOPPED) if s.type & wanted else s for s in svcs
    )


def caps(
    langs: Sequence[str] = ("en", "zh"),
    *,
    asr: Sequence[str] | None = None,
    tts: Sequence[str] | None = None,
    nmt: Sequence[str] | None = None,
    semantic: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
    nmt_languages: Sequence[str] | None = None,
    nmt_pairs: Sequence[tuple[str, str]] = (),
) -> LanguageCapabilities:
    """Capabilities where ASR, TTS and NMT each default to every language of ``langs``.

    ``nmt_languages`` / ``nmt_pairs`` are accepted as the model's spellings of
    ``nmt`` / ``pairs``.
    """
    if nmt_languages is not None:
        nmt = nmt_languages
    return LanguageCapabilities(
        asr=tuple(langs if asr is None else asr),
        tts=tuple(langs if tts is None else tts),
        semantic=tuple(semantic),
        nmt_languages=tuple(langs if nmt is None else nmt),
        nmt_pairs=tuple(pairs) + tuple(nmt_pairs),
    )


def node_info(
    node_id: str | None = "n1",
    langs: Sequence[str] = ("en", "zh"),
    *,
    svcs: Sequence[InstalledService] = CORE_SERVICES,
    capabilities: LanguageCapabilities | None = None,
    semantic: Sequence[str] = (),
    language_capabilities: LanguageCapabilities | None = None,
    installed_services: Sequence[InstalledService] | None = None,
    **kw,
) -> NodeInfo:
    """A node serving ``langs`` for every core type, with every core service RUNNING.

    The NodeInfo field names ``language_capabilities`` / ``installed_services``
    are accepted as spellings of ``capabilities`` / ``svcs``.
    """
    capabilities = language_capabilities or capabilities
    return NodeInfo(
        node_id,
        installed_services=tuple(svcs if installed_services is None else installed_services),
        language_capabilities=capabilities or caps(langs, semantic=semantic),
        **kw,
    )


def beat(
    cpu: float = 10.0, mem: float = 10.0, gpu: float | None = 10.0, jobs: int = 0, **kw
) -> Heartbeat:
    """A heartbeat; healthy when the node's own services are (the default changes nothing else)."""
    return Heartbeat(cpu, mem, gpu, jobs, **kw)


def unhealthy_beat(svcs: Sequence[InstalledService] = CORE_SERVICES, **kw) -> Heartbeat:
    """A heartbeat reporting every core service of ``svcs`` STOPPED (an unhealthy beat)."""
    return beat(installed_services=stopped(svcs), **kw)


def pool(pool_id: int, langs: Sequence[str], name: str | None = None, **kw) -> PoolConfig:
    """A pool named like a generated one (``en-zh``) unless ``name`` is given."""
    return PoolConfig(pool_id, name or "-".join(sorted(langs)), tuple(langs), **kw)


def phase3(*pools: PoolConfig, **kw) -> Phase3Config:
    return Phase3Config(pools=tuple(pools), **kw)


def make_registry(
    nodes: Iterable[NodeInfo | str] = (),
    *,
    pools: Iterable[PoolConfig] = (),
    cfg: Phase3Config | None = None,
    core: CoreServicesConfig | None = None,
    flags: MigrationFlags | None = None,
    clock: FakeClock | None = None,
    ready: bool = True,
    **cfg_kw,
) -> NodeRegistry:
    """A registry on a :class:`FakeClock` (pass ``clock`` to keep a handle on it).

    ``nodes`` are NodeInfos or bare ids (:func:`node_info` defaults). With
    ``ready`` each node gets one default heartbeat, which makes a node with
    healthy services READY. ``cfg`` wins over ``pools`` / ``cfg_kw``.
    """
    if cfg is None:
        cfg = Phase3Config(pools=tuple(pools), **cfg_kw)
    reg = NodeRegistry(cfg, core, flags=flags, clock=clock if clock is not None else FakeClock())
    for node in nodes:
        info = node_info(node) if isinstance(node, str) else node
        node_id = reg.register_node_with_policy(info)
        if ready:
            reg.update_node_heartbeat(node_id, beat())
    return reg


def membership_state(reg: NodeRegistry) -> tuple:
    """Every pool's members and every node's pool ids: what "membership" means."""
    pools = tuple((p.pool_id, p, tuple(reg.pool_members(p.pool_id))) for p in reg.pools())
    nodes = tuple((nid, reg.get_node(nid).pool_ids) for nid in reg.node_ids())
    return pools, nodes


def registry_state(reg: NodeRegistry) -> tuple:
    """Everything observable about a registry except counters and histograms."""
    views = tuple(reg.get_node(nid) for nid in reg.node_ids())
    return (
        membership_state(reg),
        views,
        reg.phase3_config,
        reg.core_services_config,
        counts(reg),
    )


COUNT_GAUGES = ("nodes", "nodes_ready", "pools", "generated_pools", "reservations")


def counts(reg: NodeRegistry) -> dict[str, int]:
    """The registry's size gauges (versions and session counts left out: they move
    on reads and on no-op config swaps)."""
    gauges = reg.metrics()["gauges"]
    return {k: gauges[k] for k in COUNT_GAUGES}


def fleet_of(reg: NodeRegistry):
    """The legacy path's :class:`~pyscheduler.state.fleet.Fleet` (for re-checking with
    ``selection.legacy`` functions; only valid while no other thread writes)."""
    return reg._fleet


# -- random fleets, configs and jobs -------------------------------------------------------

NODE_KINDS = ("ready", "registering", "degraded", "draining", "offline", "stale", "disconnected")
"""How :func:`populate` drives a node: the status it ends in when its services are healthy.

``offline`` timed out and was swept; ``stale`` is READY (if healthy) with a last
heartbeat older than ``heartbeat_timeout_s`` and no sweep since; ``degraded``
got a healthy beat then three unhealthy ones (its core services end STOPPED);
``registering`` never sent a beat. A node whose services are unhealthy stays
REGISTERING where a healthy one would be READY.
"""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a random fleet: what it registers with, how it is driven, its load."""

    info: NodeInfo
    kind: str = "ready"
    cpu: float = 10.0
    mem: float = 10.0
    gpu: float | None = 10.0
    jobs: int = 0

    @property
    def node_id(self) -> str:
        assert self.info.node_id is not None
        return self.info.node_id

    def heartbeat(self, **kw) -> Heartbeat:
        return Heartbeat(self.cpu, self.mem, self.gpu, self.jobs, **kw)


@dataclass(frozen=True)
class Scenario:
    """A config, a fleet and jobs to place on it."""

    cfg: Phase3Config
    core: CoreServicesConfig
    nodes: tuple[NodeSpec, ...]
    jobs: tuple[JobRequest, ...]

    @property
    def node_ids(self) -> list[str]:
        return [n.node_id for n in self.nodes]


def populate(reg: NodeRegistry, clock: FakeClock, specs: Iterable[NodeSpec]) -> None:
    """Register and drive ``specs`` through the public API (see :data:`NODE_KINDS`).

    Deterministic: the same specs on equal registries give equal registries.
    Expects a registry without nodes (it sweeps, which would touch others).
    The clock ends at the time of the last beats, where jobs should be placed.
    """
    specs = list(specs)
    step = reg.phase3_config.heartbeat_timeout_s + 1

    def register(spec: NodeSpec, beat_it: bool = True) -> None:
        reg.register_node_with_policy(spec.info)
        if beat_it:
            reg.update_node_heartbeat(spec.node_id, spec.heartbeat())

    for spec in specs:
        if spec.kind == "offline":
            register(spec)
    clock.advance(step)
    reg.sweep()  # only the "offline" nodes exist yet, and they are all stale
    for spec in specs:
        if spec.kind == "stale":
            register(spec)
    clock.advance(step)  # the "stale" nodes are now older than the timeout
    for spec in specs:
        if spec.kind in ("offline", "stale"):
            continue
        register(spec, beat_it=spec.kind != "registering")
        if spec.kind == "draining":
            reg.mark_node_draining(spec.node_id)
        elif spec.kind == "disconnected":
            reg.disconnect_node(spec.node_id)
        elif spec.kind == "degraded":
            bad = stopped(spec.info.installed_services)
            for _ in range(3):
                reg.update_node_heartbeat(spec.node_id, spec.heartbeat(installed_services=bad))


def build_registry(
    scenario: Scenario, *, flags: MigrationFlags | None = None, clock: FakeClock | None = None
) -> tuple[NodeRegistry, FakeClock]:
    """A fresh registry holding ``scenario``'s config and fleet, and its clock.

    ``flags`` defaults to the legacy path, chosen explicitly (``NodeRegistry()``
    itself defaults to the fast path when the extension is built): the
    properties here compare other paths against it."""
    clock = clock if clock is not None else FakeClock()
    flags = MigrationFlags.legacy() if flags is None else flags
    reg = NodeRegistry(scenario.cfg, scenario.core, flags=flags, clock=clock)
    populate(reg, clock, scenario.nodes)
    return reg, clock


# Strategy factories are cached (strategies are immutable): building and validating
# a fresh strategy object on every draw would dominate the run time.


def weighted(*choices: tuple[int, object]) -> st.SearchStrategy:
    """``weighted((8, "common"), (1, "rare"), ...)``: a value by integer weight.

    Hypothesis leans towards the first choice (it shrinks towards it), so put
    the common case first. The weights keep random fleets mostly healthy:
    every fault is present in some examples, but most jobs can be placed.
    """
    # the cache key carries the types: 0, 0.0 and False are equal as keys
    return _weighted(tuple((weight, type(value), value) for weight, value in choices))


@functools.cache
def _weighted(choices: tuple[tuple[int, type, object], ...]) -> st.SearchStrategy:
    table = [value for weight, _, value in choices for _ in range(weight)]
    table.append(choices[0][2])  # integers() also favour their upper bound
    return st.integers(0, len(table) - 1).map(table.__getitem__)


@functools.cache
def lang_sets(min_size: int = 0, max_size: int = len(LANGS)) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(LANGS), min_size=min_size, max_size=max_size, unique=True).map(
        lambda xs: tuple(sorted(xs))
    )


@functools.cache
@st.composite
def _common_sets(draw) -> tuple[str, ...]:
    """2-5 languages, often including en and zh (the pair most jobs ask for)."""
    base = draw(weighted((2, ("en", "zh")), (1, ("en",)), (1, ("zh",)), (1, ())))
    langs = set(base) | set(draw(lang_sets(0, 3)))
    if len(langs) < 2:
        langs |= {"en", "zh"} if draw(st.booleans()) else {"ja", "ben"}
    return tuple(sorted(langs))


@functools.cache
def _pairs(
    langs: Sequence[str] = LANGS, max_size: int = 4
) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    pair = st.tuples(st.sampled_from(langs), st.sampled_from(langs)).filter(lambda p: p[0] != p[1])
    return st.lists(pair, max_size=max_size, unique=True).map(tuple)


@functools.cache
@st.composite
def capabilities(draw) -> LanguageCapabilities:
    """Mostly coherent (one set of 2-4 languages for every type, so jobs succeed),
    sometimes ragged. (Hypothesis favours the first choice of each draw: the
    common case comes first throughout these strategies.)"""
    if draw(weighted((5, True), (1, False))):
        langs = draw(_common_sets())
        semantic = () if draw(st.booleans()) else langs
        return caps(langs, semantic=semantic)
    return LanguageCapabilities(
        asr=draw(lang_sets()),
        tts=draw(lang_sets()),
        semantic=draw(st.one_of(st.just(()), lang_sets(1, 4))),
        nmt_languages=draw(lang_sets()),
        nmt_pairs=draw(_pairs()),
    )


_SERVICE_KINDS = tuple(ServiceType)


@functools.cache
@st.composite
def installed_services(draw) -> tuple[InstalledService, ...]:
    """Usually every core type RUNNING (ids ``<type>-main``); sometimes a random mix
    of types, ids (``-main`` / ``-alt``) and states."""
    if draw(weighted((7, True), (1, False))):
        base = list(CORE_SERVICES)
        if draw(st.booleans()):
            base.append(svc(ServiceType.SEMANTIC))
        return tuple(base)
    kinds = draw(st.lists(st.sampled_from(_SERVICE_KINDS), max_size=5, unique=True))
    out = []
    for kind in kinds:
        sid = f"{kind.name.lower()}-{draw(st.sampled_from(('main', 'alt')))}"
        state = draw(
            weighted((3, ServiceState.RUNNING), (1, ServiceState.STOPPED), (1, ServiceState.ERROR))
        )
        out.append(InstalledService(sid, kind, state))
    return tuple(out)


@functools.cache
@st.composite
def heartbeats(draw, load_only: bool = False) -> Heartbeat:
    """A heartbeat with usages from a few levels; unless ``load_only``, it may also
    report new services and/or languages."""
    services = st.none() if load_only else st.one_of(st.none(), installed_services())
    languages = st.none() if load_only else st.one_of(st.none(), capabilities())
    return Heartbeat(
        draw(st.sampled_from([0.0, 20.0, 90.0])),
        draw(st.sampled_from([0.0, 20.0, 90.0])),
        draw(st.sampled_from([None, 10.0, 95.0])),
        draw(st.integers(0, 5)),
        installed_services=draw(services),
        language_capabilities=draw(languages),
    )


@functools.cache
@st.composite
def node_infos(draw, node_id: str | None = None) -> NodeInfo:
    return NodeInfo(
        node_id if node_id is not None else draw(st.sampled_from([f"n{i:02d}" for i in range(16)])),
        has_gpu=draw(weighted((9, True), (1, False))),
        accept_public_jobs=draw(weighted((9, True), (1, False))),
        max_concurrent_jobs=draw(st.integers(1, 4)),
        installed_services=draw(installed_services()),
        language_capabilities=draw(capabilities()),
    )


_USAGE = weighted((1, 10.0), (1, 0.0), (1, 50.0), (1, 84.9), (1, 85.0), (1, 99.0), (1, 100.0))
_LOW_USAGE = weighted((1, 10.0), (1, 0.0), (1, 50.0), (1, 84.9))


@functools.cache
@st.composite
def node_specs(draw, node_id: str) -> NodeSpec:
    info = draw(node_infos(node_id))
    kind = draw(weighted((24, "ready"), *((1, k) for k in NODE_KINDS[1:])))
    cap = info.max_concurrent_jobs
    usage = _USAGE if draw(weighted((6, False), (1, True))) else _LOW_USAGE  # loaded?
    return NodeSpec(
        info,
        kind,
        cpu=draw(usage),
        mem=draw(usage),
        gpu=draw(st.one_of(usage, st.none())),
        jobs=draw(weighted((6, 0), (3, max(cap - 1, 0)), (1, cap), (1, cap + 1))),
    )


@st.composite
def fleets(draw, min_nodes: int = 0, max_nodes: int = 10) -> tuple[NodeSpec, ...]:
    """Nodes with unique ids ``n00``... (ids drawn sparsely so their order varies)."""
    ids = draw(st.lists(st.integers(0, 40), min_size=min_nodes, max_size=max_nodes, unique=True))
    return tuple(draw(node_specs(f"n{i:02d}")) for i in ids)


@functools.cache
@st.composite
def pool_configs(draw, pool_id: int) -> PoolConfig:
    langs = draw(_common_sets()) if draw(weighted((7, True), (1, False))) else draw(lang_sets(1, 1))
    rule = draw(
        weighted((5, "any_to_any"), (1, "any_to_en"), (1, "en_to_any"), (1, "specific_pairs"))
    )
    nmt_pairs: tuple[tuple[str, str], ...] = ()
    if rule == "specific_pairs" or draw(weighted((3, False), (1, True))):
        nmt_pairs = draw(_pairs(langs if len(langs) >= 2 else LANGS, 4))
        if rule == "specific_pairs" and not nmt_pairs:
            nmt_pairs = (("en", "zh"),)
    blocked = draw(weighted((3, ()), (1, None)))
    if blocked is None:
        blocked = draw(_pairs(langs if len(langs) >= 2 else LANGS, 2))
    required = draw(
        weighted(
            (8, ServiceType(0)),
            (2, CORE),
            (1, ServiceType.ASR | ServiceType.NMT),
            (1, CORE | ServiceType.SEMANTIC),
            (1, ServiceType.SEMANTIC),
        )
    )
    return PoolConfig(pool_id, f"p{pool_id}", langs, rule, nmt_pairs, blocked, required)


@functools.cache
@st.composite
def phase3_configs(draw, max_pools: int = 6) -> Phase3Config:
    """Mostly two-level with a few pools; every selection switch exercised.

    Timing fields keep their defaults (:func:`populate` reads them).
    """
    ids = draw(st.lists(st.integers(0, 9), min_size=1, max_size=max_pools, unique=True))
    pools = (
        tuple(draw(pool_configs(i)) for i in ids) if draw(weighted((7, True), (1, False))) else ()
    )
    overrides = draw(st.dictionaries(st.sampled_from(("t0", "t1")), st.integers(0, 9), max_size=2))
    return Phase3Config(
        enabled=draw(weighted((12, True), (1, False))),
        mode=draw(weighted((12, "two_level"), (1, "single_level"))),
        pools=pools,
        hash_seed=draw(st.one_of(st.just(0), st.integers(0, 2**63 - 1))),
        fallback_scan_all_pools=draw(weighted((3, True), (1, False))),
        tenant_overrides=overrides,
        pool_match_scope=draw(st.sampled_from(("core_only", "all_required"))),
        pool_match_mode=draw(weighted((3, "contains"), (1, "exact"))),
        strict_pool_eligibility=draw(weighted((2, False), (1, True))),
        auto_generate_language_pools=draw(st.booleans()),
        auto_pool=AutoPoolConfig(
            min_nodes_per_pool=draw(st.integers(1, 2)),
            max_pools=draw(st.integers(0, 5)),
            require_semantic=draw(st.booleans()),
        ),
        enable_session_affinity=draw(st.booleans()),
        random_sample_size=draw(weighted((6, 0), (1, 1), (1, 2), (1, 3))),
        resource_threshold=draw(weighted((4, 85.0), (1, 50.0), (1, 100.0))),
        membership=draw(weighted((3, "all_matching"), (1, "most_specific"))),
    )


@functools.cache
def core_services_configs() -> st.SearchStrategy[CoreServicesConfig]:
    def ids(kind: str) -> st.SearchStrategy:
        return weighted((12, None), (1, f"{kind}-main"), (1, f"{kind}-alt"))

    return st.builds(CoreServicesConfig, ids("asr"), ids("nmt"), ids("tts"))


_SOMETIMES = weighted((3, False), (1, True))
_RARELY = weighted((4, False), (1, True))
_JOB_TYPES = weighted(
    (12, CORE),
    (2, ServiceType.ASR | ServiceType.NMT),
    (2, ServiceType.NMT),
    (1, ServiceType.ASR),
    (2, CORE | ServiceType.SEMANTIC),
    (1, ServiceType.TTS | ServiceType.TONE),
)


@st.composite
def jobs(draw, node_ids: Sequence[str] = ()) -> JobRequest:
    """A job over :data:`LANGS` (``auto`` sources too); exclusions and the preferred
    node come from ``node_ids`` (plus an unknown id)."""
    known = list(node_ids) + ["ghost"]
    excluded = draw(st.lists(st.sampled_from(known), max_size=2)) if draw(_SOMETIMES) else ()
    preferred = draw(st.sampled_from(known)) if draw(_RARELY) else None
    return JobRequest(
        src_lang=draw(
            weighted((3, "en"), (3, "zh"), (1, "ja"), (1, "de"), (1, "ben"), (1, "auto"))
        ),
        tgt_lang=draw(weighted((3, "zh"), (3, "en"), (1, "ja"), (1, "de"), (1, "ben"))),
        required_types=draw(_JOB_TYPES),
        session_id=draw(weighted((2, None), (1, "s1"), (1, "s2"), (1, "s3"), (1, "session-ü"))),
        tenant_id=draw(weighted((4, None), (1, "t0"), (1, "t1"), (1, "t2"))),
        routing_key=draw(st.one_of(st.none(), st.text(max_size=6))),
        exclude_node_ids=frozenset(excluded),
        public=draw(weighted((3, True), (1, False))),
        preferred_node_id=preferred,
    )


@st.composite
def scenarios(draw, min_nodes: int = 0, max_nodes: int = 10, max_jobs: int = 8) -> Scenario:
    nodes = draw(fleets(min_nodes, max_nodes))
    ids = [n.node_id for n in nodes]
    return Scenario(
        cfg=draw(phase3_configs()),
        core=draw(core_services_configs()),
        nodes=nodes,
        jobs=tuple(draw(st.lists(jobs(ids), min_size=1, max_size=max_jobs))),
    )


def decisions(report) -> tuple:
    """Everything a simulation run decides (not what it measures in real time)."""
    return (
        report.successes,
        dict(report.rejections),
        report.fallbacks,
        report.heartbeats,
        report.completions,
        report.sweeps,
        report.nodes_marked_by_sweep,
        report.simulated_time_s,
        report.pool_usage,
    )
