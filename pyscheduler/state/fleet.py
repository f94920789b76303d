"""The fleet as the registry keeps it: nodes, pools, membership and generated pools.

:class:`Fleet` is plain state with no lock of its own: its owner (the
registry) serialises every call. Each public method either completes or
raises before it changes anything, so bad input leaves the fleet as it was.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..domain.config import CoreServicesConfig, Phase3Config, PoolConfig
from ..domain.errors import UnknownPoolError
from ..domain.model import ServiceType
from .changes import ChangeLog
from .nodes import Membership, NodeRecord, installed_types
from .pools import PoolGenerator, PoolLookup, membership_of, node_pools

__all__ = ["ConfigPlan", "Fleet", "FleetCapture", "counted_set", "plan_config"]


class Fleet:
    """Nodes by id, pools by id (configured, then generated), members by pool."""

    def __init__(self, cfg: Phase3Config, core: CoreServicesConfig) -> None:
        self.cfg = cfg
        self.core = core
        self.nodes: dict[str, NodeRecord] = {}
        self.generator = PoolGenerator()
        self.generated: tuple[PoolConfig, ...] = ()
        self._generated_sets: set[frozenset[str]] = set()
        self.pools: dict[int, PoolConfig] = {}
        self.members: dict[int, list[str]] = {}
        self.membership = Membership()  # every record's pool ids, shared by the records
        self.set_counts: Counter[frozenset[str]] = Counter()
        self._lang_nodes: dict[str, set[str]] = {}
        self._lookup = PoolLookup(())
        self.topology_version = 0
        # what changed since the owner last looked (for syncing a copy elsewhere)
        self.touched: set[str] = set()
        # the open captures' journals: the nodes whose topology changed since each
        self._journals: tuple[set[str], ...] = ()
        self.pools_changed = False
        # what changed, by topology version, for delta snapshot publishing
        self.changes = ChangeLog()
        self._pending: list[str] = []  # nodes changed by the operation in progress
        self._pending_full = False  # ... or a change not described node by node
        self._install_pools(cfg.pools)

    # -- reading ---------------------------------------------------------------------

    def live_nodes(self) -> list[str]:
        """Ids of every node not disconnected, sorted (the single-level candidate set)."""
        return sorted(nid for nid, rec in self.nodes.items() if not rec.disconnected)

    def pool(self, pool_id: int) -> PoolConfig:
        try:
            return self.pools[pool_id]
        except KeyError:
            raise UnknownPoolError(f"unknown pool id {pool_id!r}") from None

    def ordered_pools(self) -> list[PoolConfig]:
        """All pools (configured and generated) by id."""
        return [self.pools[pid] for pid in sorted(self.pools)]

    # -- node changes ------------------------------------------------------------------

    def add(self, record: NodeRecord) -> None:
        """Add a new node (replacing none: call :meth:`discard` first)."""
        self.nodes[record.node_id] = record
        record.membership = self.membership
        self.touched.add(record.node_id)
        self._note(record.node_id)
        self._pending.append(record.node_id)
        self._index_node(record)
        self._assign(record)
        self._grow_generated([self._counted_set(record)])
        self._bump()

    def discard(self, node_id: str) -> NodeRecord | None:
        """Forget a node entirely; its generated pool stays (no flapping)."""
        record = self.nodes.pop(node_id, None)
        self.touched.add(node_id)
        self._note(node_id)
        if record is not None:
            self._unindex_node(record)
            self._set_pools(record, ())
            record.membership = None  # a record of the same id may come: this one reads no pools
            self._pending.append(node_id)
            self._bump()
        return record

    def disconnect(self, record: NodeRecord) -> None:
        """Take a node out of every pool; it stays known (OFFLINE) until it registers again."""
        if record.disconnected:
            return
        self.touched.add(record.node_id)
        self._note(record.node_id)
        self._unindex_node(record)
        self._set_pools(record, ())
        record.disconnected = True
        record.sync_gate()
        self._pending.append(record.node_id)
        self._bump()

    def capabilities_changed(self, record: NodeRecord, old_langs: frozenset[str], old_counted) -> None:
        """Refresh a node's membership after its services or languages changed."""
        self.touched.add(record.node_id)
        self._note(record.node_id)
        self._pending.append(record.node_id)
        self._unindex(record.node_id, old_langs, old_counted)
        self._index_node(record)
        self._assign(record)
        self._grow_generated([self._counted_set(record)])
        self._bump()

    def node_sets(self, record: NodeRecord) -> tuple[frozenset[str], frozenset[str] | None]:
        """(language set, set counted for generation or None) — what to pass back on change."""
        return record.capabilities.language_set(), self._counted_set(record)

    # -- config changes ------------------------------------------------------------------

    def set_config(self, cfg: Phase3Config) -> None:
        """Swap the config: regenerate pools from scratch and recompute every membership.

        The one-step form (everything under the caller's lock); a registry that
        wants the heavy part off its lock calls :meth:`capture`, :func:`plan_config`
        outside the lock, then :meth:`apply_config`.
        """
        applied = self.apply_config(plan_config(cfg, self.capture()))
        assert applied, "nothing can change the fleet between capture and apply here"

    def capture(self) -> FleetCapture:
        """What :func:`plan_config` needs, taken under the owner's lock: reference
        copies (one C-level pass over the records) and a journal, opened here,
        of the nodes whose topology changes from now on. Close it with
        :meth:`apply_config` or :meth:`end_capture`."""
        journal: set[str] = set()
        self._journals = (*self._journals, journal)
        return FleetCapture(
            version=self.topology_version,
            records=tuple(self.nodes.values()),
            generator=self.generator.copy(),
            generated=self.generated,
            lookup=self._lookup,
            journal=journal,
            ids_handed_out=self.generator.handed_out,
        )

    def end_capture(self, capture: FleetCapture) -> None:
        """Close a capture's journal (a plan abandoned)."""
        self._end_journal(capture.journal)

    def apply_config(self, plan: ConfigPlan) -> bool:
        """Install a plan computed from :meth:`capture` (and close its journal).

        Every structure was prepared by the plan and is swapped in by reference
        (the nodes' pool ids with the membership table). The nodes whose
        topology changed since the capture (registered, removed, disconnected,
        new services or languages: the journal) are then replayed on the new
        config as the incremental changes they are — O(those nodes), as if they
        had happened just after the config change. False (nothing changed) only
        when a concurrent change had pools generated by the generator the plan
        copied (its ids must stay unique): plan again then.
        ``pools_changed`` is set; replayed nodes are ``touched``."""
        journal = plan.journal
        self._end_journal(journal)
        if plan.version != self.topology_version and self.generator.handed_out != plan.ids_handed_out:
            return False
        # what is replaced is freed with the plan, after the caller's lock is released
        plan.retired.extend((self.members, self.membership.by_node, self._lookup, self.set_counts))
        self.cfg = plan.cfg
        self.generator = plan.generator
        self.set_counts = plan.set_counts
        self.generated = plan.generated
        self._generated_sets = plan.generated_sets
        self.pools = plan.pools
        self._lookup = plan.lookup
        self.members = plan.members
        self.membership.by_node = plan.pool_ids
        self.pools_changed = True
        if plan.version != self.topology_version:
            self._replay(plan, journal)
        self._pending_full = True
        self._bump()
        return True

    def _end_journal(self, journal: set[str]) -> None:
        self._journals = tuple(j for j in self._journals if j is not journal)

    def _replay(self, plan: ConfigPlan, journal: set[str]) -> None:
        """Bring the nodes changed since the capture from what the plan saw to what they are."""
        grown: list[frozenset[str] | None] = []
        # the membership table is plan.pool_ids itself: note what the plan gave them first
        plan.replayed.update({node_id: plan.pool_ids.get(node_id, ()) for node_id in journal})
        for node_id in sorted(journal):
            counted = plan.counted.get(node_id)
            if counted is not None:  # take back what the plan counted for it
                self.set_counts[counted] -= 1
                if self.set_counts[counted] <= 0:
                    del self.set_counts[counted]
            self._drop_members(node_id, plan.replayed[node_id])
            self.membership.by_node.pop(node_id, None)
            self.touched.add(node_id)
            record = self.nodes.get(node_id)
            if record is None or record.disconnected:
                continue
            now_counted = self._counted_set(record)
            if now_counted is not None:
                self.set_counts[now_counted] += 1
            grown.append(now_counted)
            self._assign(record)
        self._grow_generated(grown)

    def _drop_members(self, node_id: str, pool_ids: tuple[int, ...]) -> None:
        for pid in pool_ids:
            members = self.members.get(pid)
            if members is not None:
                i = bisect.bisect_left(members, node_id)
                if i < len(members) and members[i] == node_id:
                    del members[i]

    def _note(self, node_id: str) -> None:
        for journal in self._journals:
            journal.add(node_id)

    def set_core(self, core: CoreServicesConfig) -> None:
        self.core = core
        self.pools_changed = True  # every node's "provides" mask may change
        self._pending_full = True
        self._bump()

    def take_changes(self) -> tuple[set[str], bool]:
        """The node ids touched and whether pools/configs changed since the last call."""
        touched, pools_changed = self.touched, self.pools_changed
        self.touched, self.pools_changed = set(), False
        return touched, pools_changed

    # -- internals -----------------------------------------------------------------------

    def _bump(self) -> None:
        """Count one topology change and record what it changed in :attr:`changes`."""
        self.topology_version += 1
        if self._pending_full:
            self.changes.reset(self.topology_version)
        else:
            self.changes.nodes(self.topology_version, dict.fromkeys(self._pending))
        self._pending.clear()
        self._pending_full = False

    def _counted_set(self, record: NodeRecord) -> frozenset[str] | None:
        return counted_set(record, self.cfg)

    def _index_node(self, record: NodeRecord) -> None:
        for lang in record.capabilities.language_set():
            self._lang_nodes.setdefault(lang, set()).add(record.node_id)
        counted = self._counted_set(record)
        if counted is not None:
            self.set_counts[counted] += 1

    def _unindex_node(self, record: NodeRecord) -> None:
        self._unindex(record.node_id, record.capabilities.language_set(), self._counted_set(record))

    def _unindex(self, node_id: str, langs: frozenset[str], counted: frozenset[str] | None) -> None:
        for lang in langs:
            holders = self._lang_nodes.get(lang)
            if holders is not None:
                holders.discard(node_id)
                if not holders:
                    del self._lang_nodes[lang]
        if counted is not None:
            self.set_counts[counted] -= 1
            if self.set_counts[counted] <= 0:
                del self.set_counts[counted]

    def _install_pools(self, pools: Iterable[PoolConfig]) -> None:
        self.pools = {p.pool_id: p for p in pools}
        self._lookup = PoolLookup(self.pools.values())
        self.members = {pid: [] for pid in self.pools}
        self.membership.by_node = {}

    def _assign(self, record: NodeRecord) -> None:
        pools = node_pools(
            record.node_id,
            record.capabilities.language_set(),
            record.installed,
            self._lookup,
            self.cfg.membership,
        )
        self._set_pools(record, pools)

    def _set_pools(self, record: NodeRecord, pool_ids: tuple[int, ...]) -> None:
        if pool_ids == record.pool_ids:
            return
        node_id = record.node_id
        self.touched.add(node_id)
        self._pending.append(node_id)
        for pid in set(record.pool_ids) - set(pool_ids):
            members = self.members.get(pid)
            if members is not None:
                i = bisect.bisect_left(members, node_id)
                if i < len(members) and members[i] == node_id:
                    del members[i]
        for pid in set(pool_ids) - set(record.pool_ids):
            bisect.insort(self.members[pid], node_id)
        record.pool_ids = pool_ids

    def _grow_generated(self, candidates: list[frozenset[str] | None]) -> None:
        """Add generated pools for sets that just qualified, and place the nodes they cover."""
        if not self.cfg.auto_generate_language_pools:
            return
        sets = [s for s in candidates if s is not None]
        if not sets:
            return
        grown = self.generator.generate(
            self.set_counts, self.cfg.auto_pool, self.cfg.pools, self.generated, sets, self._generated_sets
        )
        if len(grown) == len(self.generated):
            return
        new = [p for p in grown if p.pool_id not in self.pools]
        self._set_generated(grown)
        for p in new:
            self.pools[p.pool_id] = p
            self.members[p.pool_id] = []
        self._lookup = PoolLookup(self.pools.values())
        self.pools_changed = True
        self._pending_full = True  # a new pool: the pool set changed
        for p in new:
            for node_id in sorted(self._covering_nodes(p.language_set)):
                self._assign(self.nodes[node_id])

    def _set_generated(self, pools: tuple[PoolConfig, ...]) -> None:
        self.generated = pools
        self._generated_sets = {p.language_set for p in pools}

    def _covering_nodes(self, langs: frozenset[str]) -> set[str]:
        holders = [self._lang_nodes.get(lang, set()) for lang in langs]
        if not holders:
            return set()
        holders.sort(key=len)
        return set(holders[0]).intersection(*holders[1:])


def counted_set(record: NodeRecord, cfg: Phase3Config) -> frozenset[str] | None:
    """The language set a node contributes to pool generation, if it contributes one."""
    if record.disconnected:
        return None
    caps = record.capabilities
    if cfg.auto_pool.require_semantic and not caps.semantic:
        return None
    return caps.language_set()


@dataclass(frozen=True)
class FleetCapture:
    """The inputs of a config change, captured under the owner's lock."""

    version: int  # the fleet's topology version at capture
    records: tuple[NodeRecord, ...]
    generator: PoolGenerator  # a private copy: planning may hand out new ids
    generated: tuple[PoolConfig, ...]
    lookup: PoolLookup  # the current pools' lookup: its answers carry over to equal pools
    journal: set[str]  # the nodes whose topology changed since the capture (the fleet adds them)
    ids_handed_out: int  # the generator's ids at the capture


@dataclass(frozen=True)
class ConfigPlan:
    """Everything a config change installs, computed without the owner's lock."""

    version: int
    cfg: Phase3Config
    generator: PoolGenerator
    set_counts: Counter[frozenset[str]]
    generated: tuple[PoolConfig, ...]
    generated_sets: set[frozenset[str]]
    pools: dict[int, PoolConfig]
    lookup: PoolLookup
    members: dict[int, list[str]]
    pool_ids: dict[str, tuple[int, ...]]  # per connected node in some pool: the new membership table
    counted: dict[str, frozenset[str] | None]  # per captured connected node: the set counted for generation
    journal: set[str]
    ids_handed_out: int
    retired: list[Any] = field(default_factory=list)  # what apply_config replaced, freed with the plan
    replayed: dict[str, tuple[int, ...]] = field(default_factory=dict)  # journaled nodes: the plan's pools


def plan_config(cfg: Phase3Config, capture: FleetCapture) -> ConfigPlan:
    """The pools, generated pools and memberships ``cfg`` gives the captured fleet.

    Raises :class:`~pyscheduler.domain.errors.ConfigError` (nothing changed) when a
    configured pool id is held by a generated pool. Reads node records without a
    lock: a record whose languages or services change meanwhile bumps the fleet's
    topology version, which makes :meth:`Fleet.apply_config` refuse the plan.

    Nodes are grouped by the capability and service values they hold (shared
    objects, so one dict step per node), and everything derived from those —
    the language set, the set counted for generation, the installed services,
    the pools covered — is computed once per group.
    """
    generator = capture.generator
    generator.check_configured(cfg.pools)
    sets = _capability_groups(capture.records)  # (language set, installed, node ids, semantic)
    set_counts: Counter[frozenset[str]] = Counter()
    counted: dict[str, frozenset[str] | None] = {}
    require_semantic = cfg.auto_pool.require_semantic
    for langs, _, node_ids, semantic in sets:
        if semantic or not require_semantic:
            set_counts[langs] += len(node_ids)
            counted.update(dict.fromkeys(node_ids, langs))
    generated: tuple[PoolConfig, ...] = ()
    if cfg.auto_generate_language_pools:
        generated = generator.generate(set_counts, cfg.auto_pool, cfg.pools, ())
        if not generated:
            # a generation that finds no sets changes nothing (docs/DESIGN.md §6, §7.2):
            # keep the pools generated before (their ids cannot collide, see above)
            generated = capture.generated[: cfg.auto_pool.max_pools]
    pools = {p.pool_id: p for p in (*cfg.pools, *generated)}
    lookup = capture.lookup.carried_to(pools)
    pool_ids = membership_of([g[:3] for g in sets], lookup, cfg.membership)
    gathered: dict[int, list[str]] = {pid: [] for pid in pools}
    if cfg.membership == "all_matching":  # a group's nodes share their pools
        for _, _, node_ids, _ in sets:
            first = pool_ids.get(node_ids[0], ())
            for pid in first:
                gathered[pid].extend(node_ids)
    else:
        for node_id, ids in pool_ids.items():
            for pid in ids:
                gathered[pid].append(node_id)
    members = {pid: sorted(ids) for pid, ids in gathered.items()}
    return ConfigPlan(
        capture.version, cfg, generator, set_counts, generated, {p.language_set for p in generated},
        pools, lookup, members, pool_ids, counted, capture.journal, capture.ids_handed_out,
    )  # fmt: skip


def _capability_groups(
    records: Iterable[NodeRecord],
) -> list[tuple[frozenset[str], ServiceType, list[str], bool]]:
    """The connected records grouped by what membership and generation read:
    ``(language set, installed services, node ids, semantic?)`` per group.

    The per-node reads are C-level passes (``map`` over attribute getters);
    the language set and the installed services are computed once per
    distinct capabilities / services object (records share them), and nodes
    are grouped by those values with numpy.
    """
    live = list(itertools.compress(records, map(operator.not_, map(_DISCONNECTED, records))))
    if not live:
        return []
    caps = list(map(_CAPS, live))  # the lists hold the objects: no id is reused meanwhile
    services = list(map(_SERVICES, live))
    caps_first, caps_of = _distinct(caps)
    services_first, services_of = _distinct(services)
    sets: dict[tuple[frozenset[str], bool], int] = {}  # (language set, semantic) -> number
    caps_set = np.array(
        [sets.setdefault((caps[i].language_set(), bool(caps[i].semantic)), len(sets)) for i in caps_first],
        dtype=np.int64,
    )
    kinds: dict[ServiceType, int] = {}
    services_kind = np.array(
        [kinds.setdefault(installed_types(services[i]), len(kinds)) for i in services_first], dtype=np.int64
    )
    key = caps_set[caps_of] * len(kinds) + services_kind[services_of]
    keys, group_of, counts = np.unique(key, return_inverse=True, return_counts=True)
    order = np.argsort(group_of.reshape(-1), kind="stable")
    node_ids = list(map(_NODE_ID, live))
    ordered = [node_ids[i] for i in order.tolist()]
    set_of = {number: value for value, number in sets.items()}
    kind_of = {number: value for value, number in kinds.items()}
    out = []
    start = 0
    for k, count in zip(keys.tolist(), counts.tolist()):
        langs, semantic = set_of[k // len(kinds)]
        out.append((langs, kind_of[k % len(kinds)], ordered[start : start + count], semantic))
        start += count
    return out


_DISCONNECTED = operator.attrgetter("disconnected")
_CAPS = operator.attrgetter("capabilities")
_SERVICES = operator.attrgetter("services")
_NODE_ID = operator.attrgetter("info.node_id")


def _distinct(objects: list[Any]) -> tuple[list[int], np.ndarray]:
    """The distinct objects of ``objects`` by identity: the index of each one's
    first occurrence, and for every element the number of its object."""
    ids = np.fromiter(map(id, objects), dtype=np.uint64, count=len(objects))
    _, first, of = np.unique(ids, return_index=True, return_inverse=True)
    return first.tolist(), of.reshape(-1)
