"""Pools as sets of nodes (docs/DESIGN.md §5, §6): which pools a job may use, which pools a
node belongs to, and the language pools generated from the fleet.

Everything here is a pure function of plain data (or, for
:class:`PoolGenerator`, of its own id table): no locks, no registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from itertools import combinations

from ..domain.config import AutoPoolConfig, Phase3Config, PoolConfig
from ..domain.errors import ConfigError
from ..domain.hashing import node_hash
from ..domain.languages import pool_admits
from ..domain.model import CORE_TYPES, ServiceType

__all__ = [
    "services_match",
    "eligible_pools",
    "pool_sort_key",
    "node_pools",
    "PoolLookup",
    "PoolGenerator",
    "generated_pool_name",
]


def services_match(required: ServiceType, job_types: ServiceType, scope: str, mode: str) -> bool:
    """Whether a pool's ``required_services`` accepts a job's service types.

    An empty requirement is a wildcard. Otherwise it must contain (``contains``)
    or equal (``exact``) the job's core types (``core_only``) or all its types
    (``all_required``).
    """
    if not required:
        return True
    wanted = job_types & CORE_TYPES if scope == "core_only" else job_types
    if mode == "contains":
        return (required & wanted) == wanted
    return required == wanted


def pool_sort_key(pool: PoolConfig) -> tuple[int, int]:
    """Eligible pools are ordered by the size of their language set, then by id."""
    return (len(pool.languages), pool.pool_id)


def eligible_pools(
    pools: Iterable[PoolConfig],
    src: str,
    tgt: str,
    job_types: ServiceType,
    cfg: Phase3Config,
) -> list[PoolConfig]:
    """The O(pools) scan: every pool that admits the job, in eligible order.

    This is the reference the compiled language index is tested against.
    """
    found = [
        p
        for p in pools
        if pool_admits(p.language_set, p.nmt_rule, p.nmt_pairs, p.blocked_pairs, src, tgt)
        and services_match(p.required_services, job_types, cfg.pool_match_scope, cfg.pool_match_mode)
    ]
    found.sort(key=pool_sort_key)
    return found


class PoolLookup:
    """Pools grouped by language set, to find the pools a node's set covers quickly.

    Answers are memoized per language set; :meth:`carried_to` hands the memo
    to the lookup of an equal pool set (a config change that keeps its pools
    looks nothing up again).
    """

    _SUBSET_COST = 5  # building one subset costs about as much as this many set tests

    def __init__(self, pools: Iterable[PoolConfig]) -> None:
        self.pools: dict[int, PoolConfig] = {p.pool_id: p for p in pools}
        self._by_set: dict[frozenset[str], list[PoolConfig]] = {}
        for p in self.pools.values():
            self._by_set.setdefault(p.language_set, []).append(p)
        self._memo: dict[frozenset[str], list[PoolConfig]] = {}
        self._matching: dict[tuple[frozenset[str], ServiceType], tuple[PoolConfig, ...]] = {}

    def carried_to(self, pools: dict[int, PoolConfig]) -> PoolLookup:
        """A lookup of ``pools`` that starts with this one's answers when the pools
        are the same (equal configs under the same ids), else a fresh one."""
        fresh = PoolLookup(pools.values())
        if pools == self.pools:
            fresh._memo = dict(self._memo)
            fresh._matching = dict(self._matching)
        return fresh

    def matching(self, langs: frozenset[str], installed: ServiceType) -> tuple[PoolConfig, ...]:
        """Pools ``langs`` covers whose required services ``installed`` has, by id."""
        key = (langs, installed)
        found = self._matching.get(key)
        if found is None:
            want = int(installed)
            found = self._matching[key] = tuple(
                p for p in self.covered(langs)
                if int(p.required_services) & want == int(p.required_services)
            )
        return found

    def covered(self, langs: frozenset[str]) -> list[PoolConfig]:
        """Pools whose language set is a subset of ``langs``, by id (a new list)."""
        found = self._memo.get(langs)
        if found is None:
            found = self._memo[langs] = self._covered(langs)
        return list(found)

    def _covered(self, langs: frozenset[str]) -> list[PoolConfig]:
        # enumerate the subsets of a small set; test every pool set against a large one
        if (1 << min(len(langs), 30)) * self._SUBSET_COST >= len(self._by_set):
            found = [p for s, group in self._by_set.items() if s <= langs for p in group]
        else:
            found = []
            ordered = sorted(langs)
            for size in range(1, len(ordered) + 1):
                for combo in combinations(ordered, size):
                    found.extend(self._by_set.get(frozenset(combo), ()))
        found.sort(key=lambda p: p.pool_id)
        return found


def node_pools(
    node_id: str,
    langs: frozenset[str],
    installed: ServiceType,
    lookup: PoolLookup,
    membership: str,
) -> tuple[int, ...]:
    """The pools a node belongs to (docs/DESIGN.md §6, membership), sorted by id.

    ``all_matching``: every pool whose languages the node's set covers and whose
    required services the node has installed. ``most_specific``: of those, only
    the one with the most languages; ties go to index ``FNV-1a-64(node_id) mod k``
    among the ``k`` tied pools by id.
    """
    return _chosen(node_id, lookup.matching(langs, installed), membership)


def membership_of(
    groups: Iterable[tuple[frozenset[str], ServiceType, Sequence[str]]], lookup: PoolLookup, membership: str
) -> dict[str, tuple[int, ...]]:
    """:func:`node_pools` for many nodes, given in groups of nodes that share a
    language set and installed services: ``(language set, installed, node ids)``.
    Returns the pools by node id; a node in no pool is left out.

    The pools a set covers are looked up once per distinct ``(set, services)``
    (a fleet of 10,000 nodes over a few hundred language sets costs a few
    hundred lookups); with ``all_matching`` every node of a group gets the same
    tuple, stored without a per-node Python step.
    """
    out: dict[str, tuple[int, ...]] = {}
    for langs, installed, node_ids in groups:
        matching = lookup.matching(langs, installed)
        if not matching:
            continue
        if membership == "all_matching":
            out.update(dict.fromkeys(node_ids, tuple(p.pool_id for p in matching)))
        else:
            for node_id in node_ids:
                out[node_id] = _chosen(node_id, matching, membership)
    return out


def _chosen(node_id: str, matching: Sequence[PoolConfig], membership: str) -> tuple[int, ...]:
    """The membership rule applied to the pools a node's set covers (by id)."""
    if membership == "all_matching" or not matching:
        return tuple(p.pool_id for p in matching)
    widest = max(len(p.languages) for p in matching)
    tied = [p.pool_id for p in matching if len(p.languages) == widest]
    return (tied[node_hash(node_id) % len(tied)],)


def generated_pool_name(langs: Iterable[str]) -> str:
    """A generated pool is named by its sorted language set joined with ``-``."""
    return "-".join(sorted(langs))


class PoolGenerator:
    """Generated language pools with ids stable for the generator's lifetime.

    A language set keeps the id it was first given, and an id is never given
    to another set. New ids start above the largest configured id and above
    every id handed out before.
    """

    def __init__(self) -> None:
        self._ids: dict[frozenset[str], int] = {}
        self._pools: dict[frozenset[str], PoolConfig] = {}  # the config of each id, built once
        self._next_id = 0

    def copy(self) -> PoolGenerator:
        """An independent copy (ids handed out by one are unknown to the other)."""
        other = PoolGenerator()
        other._ids = dict(self._ids)
        other._pools = dict(self._pools)
        other._next_id = self._next_id
        return other

    @property
    def handed_out(self) -> int:
        """How many ids this generator has given out (it never takes one back)."""
        return len(self._ids)

    def id_owners(self) -> Mapping[int, frozenset[str]]:
        return {pid: s for s, pid in self._ids.items()}

    def check_configured(self, configured: Sequence[PoolConfig]) -> None:
        """Refuse a configuration whose pool ids collide with generated ids."""
        owners = self.id_owners()
        for pool in configured:
            if pool.pool_id in owners:
                name = generated_pool_name(owners[pool.pool_id])
                raise ConfigError(
                    f"pool {pool.pool_id}: id is held by generated pool {name!r} for the "
                    "registry's lifetime; choose another pool_id"
                )

    def generate(
        self,
        set_counts: Mapping[frozenset[str], int],
        auto: AutoPoolConfig,
        configured: Sequence[PoolConfig],
        current: Sequence[PoolConfig],
        candidates: Iterable[frozenset[str]] | None = None,
        generated_sets: Set[frozenset[str]] | None = None,
    ) -> tuple[PoolConfig, ...]:
        """Return ``current`` plus a pool for each newly qualifying language set.

        A set qualifies when at least ``min_nodes_per_pool`` nodes have it as
        their exact set and it has two or more languages (a one-language pool
        admits no pair). New sets are taken most populous first, ties by the
        sorted set, while fewer than ``max_pools`` generated pools exist.
        Existing generated pools are kept (membership never flaps); call with
        ``current=()`` to start afresh. ``candidates`` limits the sets looked
        at (the sets whose counts just grew); ``generated_sets``, the language
        sets of ``current``, saves recomputing them on every registration.
        """
        pool_sets = set(set_counts) if candidates is None else set(candidates)
        big_enough = [
            s for s in pool_sets if len(s) >= 2 and set_counts.get(s, 0) >= auto.min_nodes_per_pool
        ]
        room = max(auto.max_pools - len(current), 0)
        if not big_enough or room == 0:
            return tuple(current)
        have = {p.language_set for p in current} if generated_sets is None else generated_sets
        qualifying = sorted(
            (s for s in big_enough if s not in have), key=lambda s: (-set_counts[s], sorted(s))
        )
        if not qualifying:
            return tuple(current)
        floor = max((p.pool_id for p in configured), default=-1) + 1
        added = [self._pool_for(s, floor) for s in qualifying[:room]]
        return tuple(sorted([*current, *added], key=lambda p: p.pool_id))

    def _pool_for(self, langs: frozenset[str], floor: int) -> PoolConfig:
        pool = self._pools.get(langs)
        if pool is not None:
            return pool
        pool_id = self._ids.get(langs)
        if pool_id is None:
            pool_id = max(self._next_id, floor)
            self._ids[langs] = pool_id
            self._next_id = pool_id + 1
        pool = self._pools[langs] = PoolConfig(pool_id, generated_pool_name(langs), tuple(sorted(langs)))
        return pool
