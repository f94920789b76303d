"""Pool coverage: what some member of a pool has, and the jobs it proves the pool cannot serve.

A pool's coverage is the union over its members of what the static node
checks read (docs/DESIGN.md §5): has a GPU, accepts public jobs, the service
types it runs, and its ASR, TTS, NMT, pair-source and pair-target languages.
When the coverage fails one of a job's static checks, every member fails a
check at or before it, whatever the loads say, so no member can be picked:
past the first pool tried, the selection lists such a pool as skipped instead
of scanning its window. The test is an over-approximation (a "maybe" is
scanned), never an under-approximation, and the compiled kernel computes the
same union over the same members, so both paths skip the same pools.

Coverage is cached per fleet and per topology version: any change of members,
capabilities, services or node info bumps the version.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from ..domain.config import PoolConfig
from ..domain.languages import AUTO
from ..domain.model import JobRequest, Reason, ServiceType
from ..state.fleet import Fleet
from ..state.nodes import provides

__all__ = ["PoolCoverage", "pool_coverage", "cannot_serve"]

_ASR, _NMT, _TTS = int(ServiceType.ASR), int(ServiceType.NMT), int(ServiceType.TTS)


@dataclass(frozen=True, slots=True)
class PoolCoverage:
    """The union of what one pool's members have (see the module docstring)."""

    members: int
    any_gpu: bool
    any_public: bool
    provides: int  # OR of the members' ServiceType masks of RUNNING services
    asr: frozenset[str]
    tts: frozenset[str]
    nmt: frozenset[str]  # nmt_languages
    pair_sources: frozenset[str]
    pair_targets: frozenset[str]


def _cover(fleet: Fleet, pool: PoolConfig) -> PoolCoverage:
    any_gpu = any_public = False
    mask = 0
    asr: set[str] = set()
    tts: set[str] = set()
    nmt: set[str] = set()
    sources: set[str] = set()
    targets: set[str] = set()
    members = fleet.members.get(pool.pool_id, [])
    for node_id in members:
        node = fleet.nodes[node_id]
        any_gpu = any_gpu or node.info.has_gpu
        any_public = any_public or node.info.accept_public_jobs
        mask |= sum(int(kind) for kind in ServiceType if provides(node.services, kind, fleet.core))
        caps = node.capabilities
        asr.update(caps.asr)
        tts.update(caps.tts)
        nmt.update(caps.nmt_languages)
        for src, tgt in caps.nmt_pairs:
            sources.add(src)
            targets.add(tgt)
    return PoolCoverage(
        len(members), any_gpu, any_public, mask,
        frozenset(asr), frozenset(tts), frozenset(nmt), frozenset(sources), frozenset(targets),
    )


_CACHE: weakref.WeakKeyDictionary[Fleet, tuple[int, dict[int, PoolCoverage]]] = weakref.WeakKeyDictionary()


def pool_coverage(fleet: Fleet, pool: PoolConfig) -> PoolCoverage:
    """The coverage of ``pool`` in ``fleet`` now (cached until the topology changes).
    The caller keeps the fleet still (the registry lock)."""
    version, table = _CACHE.get(fleet, (-1, {}))
    if version != fleet.topology_version:
        table = {}
        _CACHE[fleet] = (fleet.topology_version, table)
    found = table.get(pool.pool_id)
    if found is None:
        found = table[pool.pool_id] = _cover(fleet, pool)
    return found


def cannot_serve(coverage: PoolCoverage, job: JobRequest) -> Reason | None:
    """The first static check, in docs/DESIGN.md §5 order, that ``coverage``
    proves every member fails for ``job``; ``None`` when some member might
    pass. An empty pool is never proven (its scan is free and exact)."""
    if coverage.members == 0:
        return None
    if not coverage.any_gpu:
        return Reason.GPU_UNAVAILABLE
    if job.public and not coverage.any_public:
        return Reason.NOT_IN_PUBLIC_POOL
    types = int(job.required_types)
    if coverage.provides & types != types:
        return Reason.MODEL_NOT_AVAILABLE
    src, tgt = job.src_lang, job.tgt_lang
    if types & _ASR and not (coverage.asr if src == AUTO else src in coverage.asr):
        return Reason.ASR_LANG_UNSUPPORTED
    if types & _NMT and not _may_translate(coverage, src, tgt):
        return Reason.LANG_PAIR_UNSUPPORTED
    if types & _TTS and tgt not in coverage.tts:
        return Reason.TTS_LANG_UNSUPPORTED
    return None


def _may_translate(coverage: PoolCoverage, src: str, tgt: str) -> bool:
    """Some member might translate src → tgt (LanguageCapabilities.supports_nmt, over the union)."""
    if src == AUTO:
        return tgt in coverage.pair_targets or tgt in coverage.nmt
    if src == tgt:
        return False
    return (src in coverage.pair_sources and tgt in coverage.pair_targets) or (
        src in coverage.nmt and tgt in coverage.nmt
    )
