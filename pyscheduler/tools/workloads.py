"""The standard workloads of docs/DESIGN.md §8, built reproducibly from a seed.

A :class:`Workload` is a fleet (nodes and the heartbeat each sends first), the
Phase3 config it runs under, and the demand model its jobs are drawn from:

- ``small``: 100 nodes, 10 configured pools over 6 languages (every ``nmt_rule``,
  blocked pairs, required services, tenant overrides).
- ``10k``: 10,000 nodes; about 500 pools generated from the nodes' language sets
  (40 languages, 2–4 per node).
- ``100k``: 100,000 nodes; about 2,000 generated pools.

Everything is drawn with :class:`random.Random` seeded from the workload name and
seed (never numpy, never the process hash seed), so the same ``(name, seed)``
gives the same workload and the same job stream on every machine and version.

Realism knobs shared by all workloads: ~3 % of nodes have no GPU or refuse
public jobs, ~3 % have a core service STOPPED or ERROR (they never become
READY), ~8 % translate only listed ``nmt_pairs`` (through a hub language),
~4 % lack TTS for one of their languages; loads are random with ~2 % above the
85 % resource threshold; ``current_jobs`` is random in ``[0, max]`` with ``max``
in 2..8.

Jobs (:class:`JobStream`, :func:`make_jobs`): sessions from a bounded pool,
each bound to one language pair; pairs are Zipf-distributed over the pairs the
fleet serves (ranked by how many nodes serve them), with ~2 % unservable pairs
and ~3 % ``auto`` sources; 5 % of jobs exclude one node (one that serves their
pair, when there is one); a few tenants.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import accumulate, islice

from ..domain.config import AutoPoolConfig, Phase3Config, PoolConfig
from ..domain.flags import MigrationFlags
from ..domain.languages import AUTO
from ..domain.model import (
    CORE_TYPES,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    NodeInfo,
    ServiceState,
    ServiceType,
)
from ..registry.node_registry import NodeRegistry

__all__ = [
    "EXCLUDE_SHARE",
    "LANGUAGES",
    "WORKLOADS",
    "JobStream",
    "Workload",
    "build_registry",
    "make_jobs",
    "make_workload",
]

#: The workload names :func:`make_workload` knows.
WORKLOADS: tuple[str, ...] = ("small", "10k", "100k")

#: Forty language codes, most requested first (their rank drives the skew).
LANGUAGES: tuple[str, ...] = (
    "en", "zh", "es", "fr", "de", "ja", "ko", "ru", "pt", "it",
    "ar", "hi", "tr", "vi", "th", "id", "nl", "pl", "sv", "uk",
    "fa", "he", "ms", "bn", "ta", "ur", "el", "cs", "ro", "hu",
    "da", "fi", "nb", "sk", "bg", "hr", "sr", "ca", "tl", "sw",
)  # fmt: skip

# Codes no node serves: the source of unservable job pairs when every pair of
# fleet languages happens to be served by some set.
_FOREIGN_LANGUAGES: tuple[str, ...] = ("eo", "la", "cy", "is")

# Node realism (shares of the fleet).
_NO_GPU = 0.015
_PRIVATE = 0.015
_FAULTY = 0.03
_PAIRS_ONLY = 0.08
_TTS_GAP = 0.04
_SEMANTIC = 0.5
_TONE = 0.2
_HOT = 0.02  # a usage above the 85 % threshold

# Job realism (shares of sessions / jobs).
EXCLUDE_SHARE = 0.05
_UNSERVABLE = 0.02
_AUTO_SOURCE = 0.03
_NO_TENANT = 0.8
_PAIR_ZIPF_S = 1.1
_SET_ZIPF_S = 1.0
_LANG_ZIPF_S = 0.8
_WITH_EN = 0.6  # share of generated language sets that include "en"

_ASR = InstalledService("asr-whisper", ServiceType.ASR)
_NMT = InstalledService("nmt-nllb", ServiceType.NMT)
_TTS = InstalledService("tts-vits", ServiceType.TTS)
_SEM = InstalledService("semantic-splitter", ServiceType.SEMANTIC)
_TONE_SVC = InstalledService("tone-prosody", ServiceType.TONE)
_CORE_SERVICES = (_ASR, _NMT, _TTS)
_BROKEN_STATES = (ServiceState.STOPPED, ServiceState.ERROR)

# Job service mixes: (types, cumulative share).
_JOB_TYPES: tuple[tuple[ServiceType, float], ...] = (
    (CORE_TYPES, 0.87),  # speech to speech
    (ServiceType.ASR | ServiceType.NMT, 0.95),  # live subtitles
    (ServiceType.NMT, 1.0),  # text only
)


@dataclass(frozen=True)
class _Spec:
    nodes: int
    sets: int  # language sets in the catalogue (= generated pools, for 10k / 100k)
    languages: int
    min_nodes_per_pool: int
    sessions: int
    tenants: tuple[str, ...]
    sample_size: int = 0  # Phase3Config.random_sample_size


# The generated fleets scan at most 64 members of a pool per job (Nomad-style
# scan limit): with all_matching membership and Zipf-popular language sets the
# largest 10k pool has ~2,800 members, and a full scan of it is what a
# dispatcher must not pay on every call. small scans whole pools.
_SPECS: dict[str, _Spec] = {
    "small": _Spec(100, 9, 6, 1, 200, ("acme", "globex")),
    "10k": _Spec(10_000, 500, 40, 3, 5_000, ("acme", "globex", "initech"), sample_size=64),
    "100k": _Spec(
        100_000, 2_000, 40, 5, 20_000, ("acme", "globex", "initech", "umbrella"), sample_size=64
    ),
}


@dataclass(frozen=True)
class Workload:
    """A reproducible fleet, its config and its demand model (docs/DESIGN.md §8).

    ``nodes[i]`` sends ``initial_heartbeats[i]`` first. ``language_sets[k]`` is
    the language set that ``set_node_counts[k]`` nodes were given.
    ``pairs`` are the job pairs the fleet serves, most requested first, with
    their (unnormalised) Zipf ``pair_weights``; ``unservable_pairs`` are pairs
    no node serves. Jobs come from ``sessions`` sessions and carry one of
    ``tenants`` (or none).
    """

    name: str
    seed: int
    phase3: Phase3Config
    nodes: tuple[NodeInfo, ...]
    initial_heartbeats: tuple[Heartbeat, ...]
    languages: tuple[str, ...]
    language_sets: tuple[tuple[str, ...], ...]
    set_node_counts: tuple[int, ...]
    pairs: tuple[tuple[str, str], ...]
    pair_weights: tuple[float, ...]
    unservable_pairs: tuple[tuple[str, str], ...]
    sessions: int
    tenants: tuple[str, ...]

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(info.node_id for info in self.nodes)  # type: ignore[misc]

    @property
    def capacity(self) -> int:
        """Job slots in the whole fleet (sum of ``max_concurrent_jobs``)."""
        return sum(info.max_concurrent_jobs for info in self.nodes)

    @property
    def expected_pools(self) -> int:
        """Configured pools plus the language sets that will become generated pools."""
        configured = len(self.phase3.pools)
        if not self.phase3.auto_generate_language_pools:
            return configured
        auto = self.phase3.auto_pool
        qualifying = sum(
            1
            for langs, n in zip(self.language_sets, self.set_node_counts)
            if len(langs) >= 2 and n >= auto.min_nodes_per_pool
        )
        return configured + min(qualifying, auto.max_pools)

    def summary(self) -> str:
        about = "~" if self.phase3.auto_generate_language_pools else ""
        return (
            f"workload {self.name} (seed {self.seed}): {len(self.nodes)} nodes, "
            f"{about}{self.expected_pools} pools, {len(self.languages)} languages"
        )


def _rng(*parts: object) -> random.Random:
    """A generator seeded from a string: stable across runs, machines and Python versions."""
    return random.Random(":".join(["pyscheduler-workload", *map(str, parts)]))


def _zipf(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def make_workload(name: str, seed: int = 1) -> Workload:
    """Build the standard workload ``name`` (one of :data:`WORKLOADS`) from ``seed``.

    Raises ``ValueError`` for an unknown name (listing the known ones) or a
    seed that is not a non-negative integer.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown workload {name!r}; known workloads: {', '.join(WORKLOADS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"workload seed must be a non-negative integer, got {seed!r}")
    spec = _SPECS[name]
    rng = _rng(name, seed)
    if name == "small":
        phase3, languages, sets, counts = _small_layout(rng, spec)
    else:
        phase3, languages, sets, counts = _generated_layout(rng, spec)
    node_sets = [langs for langs, n in zip(sets, counts) for _ in range(n)]
    rng.shuffle(node_sets)
    nodes, beats = _make_nodes(rng, node_sets)
    pairs, weights, unservable = _demand(sets, counts)
    return Workload(
        name=name,
        seed=seed,
        phase3=phase3,
        nodes=nodes,
        initial_heartbeats=beats,
        languages=languages,
        language_sets=tuple(sets),
        set_node_counts=tuple(counts),
        pairs=pairs,
        pair_weights=weights,
        unservable_pairs=unservable,
        sessions=spec.sessions,
        tenants=spec.tenants,
    )


# -- layouts: config + language-set catalogue ------------------------------------------


def _small_layout(
    rng: random.Random, spec: _Spec
) -> tuple[Phase3Config, tuple[str, ...], list[tuple[str, ...]], list[int]]:
    """Ten hand-written pools over six languages; nine node language sets."""
    langs = ("de", "en", "es", "fr", "ja", "zh")
    every = list(langs)
    core_tone = ServiceType.ASR | ServiceType.NMT | ServiceType.TTS | ServiceType.TONE
    pools = (
        PoolConfig(1, "en-zh", ["en", "zh"]),
        PoolConfig(2, "en-ja", ["en", "ja"]),
        PoolConfig(3, "en-es-fr", ["en", "es", "fr"], blocked_pairs=[("es", "fr"), ("fr", "es")]),
        PoolConfig(4, "en-de", ["en", "de"]),
        PoolConfig(
            5,
            "ja-zh-direct",
            ["en", "ja", "zh"],
            nmt_rule="specific_pairs",
            nmt_pairs=[("zh", "ja"), ("ja", "zh")],
        ),
        PoolConfig(6, "all-to-en", every, nmt_rule="any_to_en"),
        PoolConfig(7, "en-to-all", every, nmt_rule="en_to_any"),
        PoolConfig(8, "en-zh-premium", ["en", "zh"], required_services=core_tone),
        PoolConfig(9, "en-de-fr", ["en", "de", "fr"]),
        PoolConfig(10, "de-es-fr", ["de", "es", "fr"]),
    )
    phase3 = Phase3Config(
        pools=pools,
        hash_seed=_seed_from(rng),
        tenant_overrides={"acme": 8, "globex": 3},
        enable_session_affinity=True,
    )
    # 100 nodes over nine sets; the counts are fixed, which node gets which is drawn.
    sets = [
        ("en", "zh"), ("en", "ja"), ("en", "es", "fr"), ("de", "en"), ("en", "ja", "zh"),
        ("de", "en", "fr"), ("de", "es", "fr"), tuple(every), ("en", "es"),
    ]  # fmt: skip
    counts = [22, 12, 12, 10, 10, 10, 8, 12, 4]
    assert sum(counts) == spec.nodes and len(sets) == spec.sets
    return phase3, langs, sets, counts


def _seed_from(rng: random.Random) -> int:
    """A hash seed for the config, drawn from the workload's generator."""
    return rng.getrandbits(32)


def _generated_layout(
    rng: random.Random, spec: _Spec
) -> tuple[Phase3Config, tuple[str, ...], list[tuple[str, ...]], list[int]]:
    """A catalogue of distinct 2–4-language sets, each with at least
    ``min_nodes_per_pool`` nodes, the rest of the fleet spread over them by Zipf."""
    languages = LANGUAGES[: spec.languages]
    lang_cum = list(accumulate(_zipf(len(languages) - 1, _LANG_ZIPF_S)))
    others = languages[1:]
    seen: set[tuple[str, ...]] = set()
    sets: list[tuple[str, ...]] = []
    while len(sets) < spec.sets:
        size = rng.randint(2, 4)
        chosen = {"en"} if rng.random() < _WITH_EN else set()
        while len(chosen) < size:
            chosen.add(others[bisect.bisect_left(lang_cum, rng.random() * lang_cum[-1])])
        langs = tuple(sorted(chosen))
        if langs not in seen:
            seen.add(langs)
            sets.append(langs)
    base = spec.min_nodes_per_pool
    counts = [base] * spec.sets
    extra = spec.nodes - base * spec.sets
    for k in rng.choices(range(spec.sets), weights=_zipf(spec.sets, _SET_ZIPF_S), k=extra):
        counts[k] += 1
    phase3 = Phase3Config(
        hash_seed=_seed_from(rng),
        random_sample_size=spec.sample_size,
        auto_generate_language_pools=True,
        auto_pool=AutoPoolConfig(
            min_nodes_per_pool=spec.min_nodes_per_pool,
            max_pools=2 * spec.sets,
            require_semantic=False,
        ),
    )
    return phase3, languages, sets, counts


# -- nodes ---------------------------------------------------------------------------------


def _hub(langs: tuple[str, ...]) -> str:
    """The most requested language of a set: pairs-only nodes translate through it."""
    rank = {lang: i for i, lang in enumerate(LANGUAGES)}
    return min(langs, key=lambda lang: (rank.get(lang, len(rank)), lang))


def _make_nodes(
    rng: random.Random, node_sets: list[tuple[str, ...]]
) -> tuple[tuple[NodeInfo, ...], tuple[Heartbeat, ...]]:
    """One NodeInfo and one first heartbeat per node; draws are in a fixed order."""
    width = len(str(len(node_sets) - 1))
    caps_cache: dict[tuple, LanguageCapabilities] = {}
    services_cache: dict[tuple, tuple[InstalledService, ...]] = {}
    nodes: list[NodeInfo] = []
    beats: list[Heartbeat] = []
    for i, langs in enumerate(node_sets):
        max_jobs = rng.randint(2, 8)
        access = rng.random()
        has_gpu = access >= _NO_GPU
        public = not (_NO_GPU <= access < _NO_GPU + _PRIVATE)
        broken = rng.randrange(3) if rng.random() < _FAULTY else None
        broken_state = rng.choice(_BROKEN_STATES) if broken is not None else None
        pairs_only = rng.random() < _PAIRS_ONLY
        tts_gap = rng.choice(langs) if rng.random() < _TTS_GAP and len(langs) > 2 else None
        semantic = rng.random() < _SEMANTIC
        tone = rng.random() < _TONE

        caps_key = (langs, pairs_only, tts_gap, semantic)
        caps = caps_cache.get(caps_key)
        if caps is None:
            nmt_pairs: list[tuple[str, str]] = []
            if pairs_only:
                hub = _hub(langs)
                nmt_pairs = [p for x in langs if x != hub for p in ((hub, x), (x, hub))]
            caps = caps_cache[caps_key] = LanguageCapabilities(
                asr=langs,
                tts=[x for x in langs if x != tts_gap],
                semantic=langs if semantic else (),
                nmt_languages=() if pairs_only else langs,
                nmt_pairs=nmt_pairs,
            )
        services_key = (broken, broken_state, semantic, tone)
        services = services_cache.get(services_key)
        if services is None:
            core = list(_CORE_SERVICES)
            if broken is not None:
                s = core[broken]
                core[broken] = InstalledService(s.service_id, s.type, broken_state)
            extra = ([_SEM] if semantic else []) + ([_TONE_SVC] if tone else [])
            services = services_cache[services_key] = tuple(core + extra)

        node_id = f"node-{i:0{width}d}"
        nodes.append(
            NodeInfo(
                node_id=node_id,
                has_gpu=has_gpu,
                accept_public_jobs=public,
                max_concurrent_jobs=max_jobs,
                installed_services=services,
                language_capabilities=caps,
                labels={"zone": f"zone-{rng.randrange(4)}"},
            )
        )
        cpu = rng.uniform(86.0, 99.0) if rng.random() < _HOT else rng.uniform(5.0, 80.0)
        memory = rng.uniform(20.0, 80.0)
        gpu = None
        if has_gpu:
            gpu = rng.uniform(86.0, 99.0) if rng.random() < _HOT / 2 else rng.uniform(0.0, 80.0)
        beats.append(
            Heartbeat(
                cpu_usage=round(cpu, 1),
                memory_usage=round(memory, 1),
                gpu_usage=None if gpu is None else round(gpu, 1),
                current_jobs=rng.randint(0, max_jobs),
            )
        )
    return tuple(nodes), tuple(beats)


# -- demand ---------------------------------------------------------------------------------


def _demand(
    sets: list[tuple[str, ...]], counts: list[int]
) -> tuple[tuple[tuple[str, str], ...], tuple[float, ...], tuple[tuple[str, str], ...]]:
    """Servable pairs ranked by the nodes whose set holds both languages (most first,
    then by pair), their Zipf weights, and a list of unservable pairs."""
    coverage: dict[tuple[str, str], int] = {}
    for langs, n in zip(sets, counts):
        for a, b in itertools.permutations(langs, 2):
            coverage[(a, b)] = coverage.get((a, b), 0) + n
    pairs = tuple(sorted(coverage, key=lambda p: (-coverage[p], p)))
    weights = tuple(_zipf(len(pairs), _PAIR_ZIPF_S))
    fleet_langs = sorted({lang for langs in sets for lang in langs})
    unservable = [p for p in itertools.permutations(fleet_langs, 2) if p not in coverage]
    if not unservable:
        unservable = [(src, tgt) for src in _FOREIGN_LANGUAGES[:2] for tgt in fleet_langs[:2]]
    return pairs, weights, tuple(unservable)


@dataclass(frozen=True)
class _Session:
    session_id: str
    src: str
    tgt: str
    tenant_id: str | None
    types: ServiceType


class JobStream:
    """An endless, reproducible stream of :class:`JobRequest` for a workload.

    The session pool (``workload.sessions`` sessions, each bound to one pair,
    service mix and tenant) is drawn first, then jobs one by one, so the first
    ``n`` jobs of a stream do not depend on how many are taken.
    """

    def __init__(self, workload: Workload, seed: int | None = None) -> None:
        self.workload = workload
        self.seed = workload.seed if seed is None else seed
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"job stream seed must be an integer, got {seed!r}")
        self._rng = _rng("jobs", workload.name, workload.seed, self.seed)
        self._sessions = self._draw_sessions()
        self._node_ids = workload.node_ids
        self._by_set: dict[frozenset[str], list[str]] = {}
        for info in workload.nodes:
            key = info.language_capabilities.language_set()
            self._by_set.setdefault(key, []).append(info.node_id)  # type: ignore[arg-type]
        self._serving: dict[tuple[str, str], list[frozenset[str]]] = {}

    def _draw_sessions(self) -> list[_Session]:
        w, rng = self.workload, self._rng
        cum = list(accumulate(w.pair_weights))
        out = []
        width = len(str(w.sessions - 1))
        for k in range(w.sessions):
            kind = rng.random()
            src, tgt = w.pairs[bisect.bisect_left(cum, rng.random() * cum[-1])]
            if kind < _UNSERVABLE:
                src, tgt = rng.choice(w.unservable_pairs)
            elif kind < _UNSERVABLE + _AUTO_SOURCE:
                src = AUTO
            mix = rng.random()
            types = next(t for t, share in _JOB_TYPES if mix < share)
            tenant = None if rng.random() < _NO_TENANT else rng.choice(w.tenants)
            out.append(_Session(f"sess-{k:0{width}d}", src, tgt, tenant, types))
        return out

    def _serving_node(self, src: str, tgt: str) -> str:
        """A random node whose language set holds both languages (any node if none)."""
        rng = self._rng
        if src == AUTO:
            return rng.choice(self._node_ids)
        sets = self._serving.get((src, tgt))
        if sets is None:
            sets = self._serving[(src, tgt)] = sorted(
                (s for s in self._by_set if src in s and tgt in s), key=sorted
            )
        if not sets:
            return rng.choice(self._node_ids)
        return rng.choice(self._by_set[rng.choice(sets)])

    def __iter__(self) -> Iterator[JobRequest]:
        return self

    def __next__(self) -> JobRequest:
        rng = self._rng
        session = self._sessions[rng.randrange(len(self._sessions))]
        excluded: frozenset[str] = frozenset()
        if rng.random() < EXCLUDE_SHARE:
            excluded = frozenset((self._serving_node(session.src, session.tgt),))
        return JobRequest(
            session.src,
            session.tgt,
            required_types=session.types,
            session_id=session.session_id,
            tenant_id=session.tenant_id,
            exclude_node_ids=excluded,
        )

    def take(self, count: int) -> list[JobRequest]:
        """The next ``count`` jobs."""
        return list(islice(self, count))


def make_jobs(workload: Workload, count: int, seed: int | None = None) -> list[JobRequest]:
    """The first ``count`` jobs of ``JobStream(workload, seed)`` (seed defaults to the workload's)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"job count must be a non-negative integer, got {count!r}")
    return JobStream(workload, seed).take(count)


# -- registry --------------------------------------------------------------------------------


def build_registry(
    workload: Workload,
    clock: Callable[[], float] | None = None,
    *,
    flags: MigrationFlags | None = None,
    heartbeats: bool = True,
    generate_once: bool = True,
) -> NodeRegistry:
    """A registry with every node of ``workload`` registered and (by default) its
    first heartbeat applied, so all healthy nodes are READY.

    ``clock`` defaults to ``time.monotonic``; simulations pass a virtual clock.

    With ``generate_once`` (the default) and a config that generates pools, the
    nodes are registered under the same config with generation off, and the
    workload's config is then installed with ``set_phase3_config``: pools are
    generated once, from the whole fleet (ids by popularity), instead of on
    every registration. ``generate_once=False`` registers under the final
    config from the start, as a fleet connecting node by node would.

    With the management registry on, the nodes are registered (and beat) with
    it off and it is then switched on, which copies the fleet in one resync
    instead of one entry per registration and status change (the state is the
    same either way).
    """
    phase3 = workload.phase3
    staged = generate_once and phase3.auto_generate_language_pools
    first = replace(phase3, auto_generate_language_pools=False) if staged else phase3
    registry = NodeRegistry(first, clock=time.monotonic if clock is None else clock, flags=flags)
    final_flags = registry.flags
    if final_flags.use_management_registry:  # copy the fleet once, not node by node
        registry.set_flags(replace(final_flags, use_management_registry=False))
    for info in workload.nodes:
        registry.register_node_with_policy(info)
    if staged:
        registry.set_phase3_config(phase3)
    if heartbeats:
        ids = [info.node_id for info in workload.nodes]
        registry.update_node_heartbeats(zip(ids, workload.initial_heartbeats))  # type: ignore[arg-type]
    if final_flags.use_management_registry:
        registry.set_flags(final_flags)  # one full resync of the management copy
    return registry
