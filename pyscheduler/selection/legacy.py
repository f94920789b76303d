"""The reference scheduler: docs/DESIGN.md §5 written as plainly as possible.

Stages, each one function: eligible pools → pool order → (skip the pools
whose coverage cannot serve the job) → window → node checks → pick. (Reserving is the registry's: it owns the counters.) The
compiled fast path must return exactly what these functions return; the
tests hold it to that.

Every function reads a :class:`~pyscheduler.fleet.Fleet` that the caller
keeps still (the registry holds its lock around a selection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..domain.config import Phase3Config, PoolConfig
from ..domain.hashing import fnv1a64, pool_hash, tiebreak_hash
from ..domain.model import (
    CHECK_REASONS,
    Attempt,
    Breakdown,
    JobRequest,
    NodeStatus,
    Reason,
    Selection,
    ServiceType,
)
from ..state.fleet import Fleet
from ..state.nodes import NodeRecord, provides
from ..state.pools import eligible_pools
from .coverage import cannot_serve, pool_coverage

__all__ = [
    "PoolPlan",
    "plan_pools",
    "candidate_pools",
    "order_pools",
    "sample_window",
    "check_node",
    "pick",
    "scan_pool",
    "skip_reason",
    "select",
    "select_from_pool",
    "pick_and_reserve",
]

_NOT_READY = (NodeStatus.REGISTERING, NodeStatus.DEGRADED, NodeStatus.DRAINING)
_KINDS = tuple(int(k) for k in ServiceType)  # each single service type, as ints
_ASR, _NMT, _TTS = int(ServiceType.ASR), int(ServiceType.NMT), int(ServiceType.TTS)


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """The pools one job will try, in order.

    ``pools`` holds ``None`` for the single-level candidate set (all nodes).
    ``empty_reason`` is set when there is nothing to try at all.
    """

    pools: tuple[PoolConfig | None, ...]
    preferred: int | None
    all_pools_fallback: bool = False
    empty_reason: Reason | None = None


def plan_pools(fleet: Fleet, job: JobRequest, bound_pool: int | None = None) -> PoolPlan:
    """Stages 1–2: the eligible pools of the job, then their order (docs/DESIGN.md §5)."""
    cfg = fleet.cfg
    if not cfg.two_level or not fleet.pools:
        return PoolPlan((None,), None)
    eligible, fallback = candidate_pools(fleet, job)
    if not eligible:
        return PoolPlan((), None, empty_reason=Reason.NO_ELIGIBLE_POOL)
    ordered = order_pools(eligible, job, cfg, bound_pool)
    return PoolPlan(tuple(ordered), ordered[0].pool_id, fallback)


def candidate_pools(fleet: Fleet, job: JobRequest) -> tuple[list[PoolConfig], bool]:
    """Stage 1: the eligible pools in eligible order; when there are none and
    eligibility is not strict, every pool by id (and ``True``)."""
    cfg = fleet.cfg
    eligible = eligible_pools(fleet.ordered_pools(), job.src_lang, job.tgt_lang, job.required_types, cfg)
    if eligible or cfg.strict_pool_eligibility:
        return eligible, False
    return fleet.ordered_pools(), True


def order_pools(
    eligible: Sequence[PoolConfig],
    job: JobRequest,
    cfg: Phase3Config,
    bound_pool: int | None = None,
) -> list[PoolConfig]:
    """Stage 2: the preferred pool, then the others in ring order from it.

    Preferred: the tenant override if eligible; else the session's bound pool
    if still eligible; else, with affinity on, the hashed index
    ``FNV-1a-64(key + seed) mod n``; else the first eligible pool.
    """
    ids = [p.pool_id for p in eligible]
    start = 0
    override = cfg.tenant_overrides.get(job.tenant_id) if job.tenant_id is not None else None
    if override is not None and override in ids:
        start = ids.index(override)
    elif bound_pool is not None and bound_pool in ids:
        start = ids.index(bound_pool)
    elif cfg.enable_session_affinity:
        start = pool_hash(job.key, cfg.hash_seed) % len(ids)
    if not cfg.fallback_scan_all_pools:
        return [eligible[start]]
    return [eligible[(start + k) % len(eligible)] for k in range(len(eligible))]


def sample_window(members: Sequence[str], key: str, size: int) -> Sequence[str]:
    """Stage 3: with ``size > 0`` and more members than that, ``size`` members from
    index ``FNV-1a-64(key) mod n``, wrapping; otherwise all members."""
    n = len(members)
    if size <= 0 or n <= size:
        return members
    start = fnv1a64(key.encode("utf-8")) % n
    return [members[(start + k) % n] for k in range(size)]


def check_node(node: NodeRecord, job: JobRequest, fleet: Fleet, now: float) -> Reason | None:
    """Stage 4: the first check the node fails, in docs/DESIGN.md §5 order, or ``None``."""
    cfg = fleet.cfg
    if node.node_id in job.exclude_node_ids:
        return Reason.EXCLUDED
    if node.status is NodeStatus.OFFLINE:
        return Reason.OFFLINE
    if node.status in _NOT_READY:
        return Reason.STATUS_NOT_READY
    running, reserved, cpu, memory, gpu, last_heartbeat = node.load()
    if now - last_heartbeat > cfg.heartbeat_timeout_s:
        return Reason.HEARTBEAT_STALE
    if not node.info.has_gpu:
        return Reason.GPU_UNAVAILABLE
    if job.public and not node.info.accept_public_jobs:
        return Reason.NOT_IN_PUBLIC_POOL
    wanted = int(job.required_types)
    for kind in _KINDS:
        if kind & wanted and not provides(node.services, kind, fleet.core):
            return Reason.MODEL_NOT_AVAILABLE
    reason = _language_reason(node, job)
    if reason is not None:
        return reason
    if running + reserved >= node.info.max_concurrent_jobs:
        return Reason.CAPACITY_EXCEEDED
    limit = cfg.resource_threshold
    if cpu >= limit or memory >= limit or (gpu is not None and gpu >= limit):
        return Reason.RESOURCE_THRESHOLD_EXCEEDED
    return None


def _language_reason(node: NodeRecord, job: JobRequest) -> Reason | None:
    caps = node.capabilities
    types = int(job.required_types)
    if types & _ASR and not caps.supports_asr(job.src_lang):
        return Reason.ASR_LANG_UNSUPPORTED
    if types & _NMT and not caps.supports_nmt(job.src_lang, job.tgt_lang):
        return Reason.LANG_PAIR_UNSUPPORTED
    if types & _TTS and not caps.supports_tts(job.tgt_lang):
        return Reason.TTS_LANG_UNSUPPORTED
    return None


def pick(survivors: Sequence[NodeRecord], job: JobRequest) -> NodeRecord | None:
    """Stage 5: the job's preferred node if it survived; else the lowest load ratio
    (by cross-multiplication), then the fewest jobs, then the lowest
    ``FNV-1a-64(key + node_id)``, then the node id."""
    if not survivors:
        return None
    if job.preferred_node_id is not None:
        for node in survivors:
            if node.node_id == job.preferred_node_id:
                return node
    key = job.key
    best = survivors[0]
    best_rank = (tiebreak_hash(key, best.node_id), best.node_id)
    for node in survivors[1:]:
        load, cap = node.running + node.reserved, node.info.max_concurrent_jobs
        best_load, best_cap = best.running + best.reserved, best.info.max_concurrent_jobs
        if load * best_cap != best_load * cap:
            better = load * best_cap < best_load * cap
        elif load != best_load:
            better = load < best_load
        else:
            rank = (tiebreak_hash(key, node.node_id), node.node_id)
            better = rank < best_rank
        if better:
            best = node
            best_rank = (tiebreak_hash(key, node.node_id), node.node_id)
    return best


def scan_pool(
    fleet: Fleet, pool: PoolConfig | None, job: JobRequest, now: float
) -> tuple[Attempt, list[NodeRecord]]:
    """Stages 3–4 over one pool (``None``: all nodes): its attempt and its survivors."""
    if pool is None:
        members: Sequence[str] = fleet.live_nodes()
        pool_id, name = None, "all nodes"
    else:
        members = fleet.members.get(pool.pool_id, [])
        pool_id, name = pool.pool_id, pool.name
    window = sample_window(members, job.key, fleet.cfg.random_sample_size)
    counts = dict.fromkeys(CHECK_REASONS, 0)
    survivors = []
    for node_id in window:
        node = fleet.nodes[node_id]
        reason = check_node(node, job, fleet, now)
        if reason is None:
            survivors.append(node)
        else:
            counts[reason] += 1
    return Attempt(pool_id, name, Breakdown(counts, len(window))), survivors


def skip_reason(fleet: Fleet, pool: PoolConfig | None, job: JobRequest) -> Reason | None:
    """Why ``pool`` need not be scanned for ``job``: the static check its
    coverage proves every member fails (``None``: scan it). Applies to every
    pool after the first one tried (docs/DESIGN.md §5, pool coverage)."""
    if pool is None:
        return None
    return cannot_serve(pool_coverage(fleet, pool), job)


def select(
    fleet: Fleet,
    job: JobRequest,
    now: float,
    bound_pool: int | None = None,
    reserve: Callable[[NodeRecord], bool] | None = None,
) -> tuple[Selection, NodeRecord | None]:
    """The whole two-level selection; stage 6 (reserve) through ``reserve``.

    Tries the planned pools in order and stops at the first whose pick could
    be reserved. ``reserve(node)`` returns False when a concurrent reservation
    took the node's last place: the next survivor is tried (the breakdown is
    not changed by that race). ``None`` reserves nothing. Returns the
    selection and the picked node (``None`` if none).
    """
    plan = plan_pools(fleet, job, bound_pool)
    if not plan.pools:
        empty = Breakdown(total=0, empty_reason=plan.empty_reason or Reason.NO_NODES)
        return Selection(None, None, None, False, empty, (), "legacy"), None
    attempts: list[Attempt] = []
    for index, pool in enumerate(plan.pools):
        skipped = skip_reason(fleet, pool, job) if index and pool is not None else None
        if skipped is not None and pool is not None:
            attempts.append(Attempt(pool.pool_id, pool.name, Breakdown(), skipped))
            continue
        attempt, survivors = scan_pool(fleet, pool, job, now)
        attempts.append(attempt)
        node = pick_and_reserve(survivors, job, reserve)
        if node is not None:
            return _result(plan, attempts, attempt, node.node_id), node
    return _result(plan, attempts, attempts[0], None), None


def select_from_pool(
    fleet: Fleet,
    pool: PoolConfig,
    job: JobRequest,
    now: float,
    reserve: Callable[[NodeRecord], bool] | None = None,
) -> tuple[Selection, NodeRecord | None]:
    """Stages 3-6 in one given pool only (eligible or not)."""
    attempt, survivors = scan_pool(fleet, pool, job, now)
    node = pick_and_reserve(survivors, job, reserve)
    plan = PoolPlan((pool,), pool.pool_id)
    return _result(plan, [attempt], attempt, None if node is None else node.node_id), node


def pick_and_reserve(
    survivors: list[NodeRecord], job: JobRequest, reserve: Callable[[NodeRecord], bool] | None
) -> NodeRecord | None:
    """Stages 5-6: pick; if the reservation loses a race, pick again without that node."""
    while survivors:
        node = pick(survivors, job)
        assert node is not None
        if reserve is None or reserve(node):
            return node
        survivors.remove(node)
    return None


def _result(plan: PoolPlan, attempts: list[Attempt], chosen: Attempt, node_id: str | None) -> Selection:
    return Selection(
        node_id=node_id,
        pool_id=chosen.pool_id if node_id is not None else None,
        preferred_pool=plan.preferred,
        fallback_used=plan.all_pools_fallback or len(attempts) > 1,
        breakdown=chosen.breakdown,
        attempts=tuple(attempts),
        path="legacy",
    )
