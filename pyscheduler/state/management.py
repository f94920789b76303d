"""The management domain (docs/DESIGN.md §1): the node and pool state snapshots are built from.

``ManagementRegistry`` keeps ``ManagementState`` behind one lock that is held
only for one node's update (its entry, and a new member list for each pool it
joins or leaves) or a reference swap (a whole new pool set). Entries are
immutable ``NodeEntry`` values and member lists are replaced, never edited,
so capturing the state for a snapshot build is a shallow copy (references
only) taken under the lock; the build itself runs outside it (two-phase).

During a migration the registry keeps its legacy structures (``Fleet``) and
copies each change here (``NodeRegistry.sync_*_to_management``); the
consistency check compares the two field by field. Nothing here imports
selection code.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ..domain.config import CoreServicesConfig, Phase3Config, PoolConfig
from ..domain.errors import UnknownPoolError
from ..domain.model import InstalledService, LanguageCapabilities, NodeInfo, NodeStatus
from .changes import ChangeLog
from .locks import TimedLock
from .metrics import Metrics
from .nodes import NodeRecord

__all__ = ["ChangeCapture", "NodeEntry", "ManagementState", "ManagementRegistry", "entry_differences"]


class NodeEntry(NamedTuple):
    """One node as the management domain holds it: an immutable value.

    A named tuple rather than a frozen dataclass: a full resync builds one per
    node under the registry lock, and a tuple is built several times faster.
    """

    info: NodeInfo
    status: NodeStatus
    services: tuple[InstalledService, ...]
    capabilities: LanguageCapabilities
    pool_ids: tuple[int, ...]
    slot: int
    serial: int
    draining: bool
    disconnected: bool

    @classmethod
    def of(cls, record: NodeRecord) -> NodeEntry:
        return cls(
            record.info,
            record.status,
            record.services,
            record.capabilities,
            record.pool_ids,
            record.slot,
            record.serial,
            record.draining,
            record.disconnected,
        )

    @property
    def node_id(self) -> str:
        assert self.info.node_id is not None
        return self.info.node_id


_ENTRY_FIELDS = NodeEntry._fields


def _row_fields(entry: NodeEntry) -> tuple:
    """What a snapshot generation holds of an entry (its status lives in the load table)."""
    return (entry.info, entry.services, entry.capabilities, entry.pool_ids, entry.slot, entry.serial,
            entry.disconnected)


class ChangeCapture(NamedTuple):
    """What a delta publish needs of the management state (:meth:`ManagementRegistry.capture_changes`):
    the configs and pools (by reference: they are replaced, never changed in place)
    and the entries of the nodes changed since a version (``None``: the node is gone)."""

    version: int
    cfg: Phase3Config
    core: CoreServicesConfig
    pools: Mapping[int, PoolConfig]
    nodes: Mapping[str, NodeEntry | None]


def entry_differences(a: NodeEntry, b: NodeEntry) -> list[str]:
    """The fields in which two entries differ."""
    return [name for name in _ENTRY_FIELDS if getattr(a, name) != getattr(b, name)]


class ManagementState:
    """Nodes, pools (configured and generated), members and configs at one version.

    Offers the read interface snapshot building needs (``cfg``, ``core``,
    ``nodes``, ``pools``, ``members``, ``live_nodes()``, ``ordered_pools()``),
    like the legacy ``Fleet``.
    """

    def __init__(self, cfg: Phase3Config, core: CoreServicesConfig) -> None:
        self.cfg = cfg
        self.core = core
        self.nodes: dict[str, NodeEntry] = {}
        self.pools: dict[int, PoolConfig] = {p.pool_id: p for p in cfg.pools}
        self.generated: tuple[PoolConfig, ...] = ()
        self.members: dict[int, list[str]] = {pid: [] for pid in self.pools}
        self.version = 0
        self.changes = ChangeLog()  # node changes by version (kept by the registry, not copied)

    def live_nodes(self) -> list[str]:
        return sorted(nid for nid, e in self.nodes.items() if not e.disconnected)

    def ordered_pools(self) -> list[PoolConfig]:
        return [self.pools[pid] for pid in sorted(self.pools)]

    def pool(self, pool_id: int) -> PoolConfig:
        try:
            return self.pools[pool_id]
        except KeyError:
            raise UnknownPoolError(f"unknown pool id {pool_id!r}") from None

    def put(self, entry: NodeEntry, old_pool_ids: tuple[int, ...]) -> None:
        """Store a node's entry; its memberships move from ``old_pool_ids`` (what
        the member lists hold for it now) to the entry's. No lock: the caller
        owns this state (one not installed yet)."""
        _move(self, entry.node_id, old_pool_ids, entry.pool_ids)
        self.nodes[entry.node_id] = entry

    def drop(self, node_id: str, old_pool_ids: tuple[int, ...]) -> None:
        """Forget a node's entry and its memberships (``old_pool_ids``: what the
        member lists hold for it now). The caller owns this state."""
        self.nodes.pop(node_id, None)
        _move(self, node_id, old_pool_ids, ())

    def copy(self) -> ManagementState:
        """A shallow copy that later updates cannot touch (entries are immutable,
        member lists are replaced, never edited): O(nodes + pools) reference
        copies, no member list copied."""
        other = ManagementState.__new__(ManagementState)
        other.cfg, other.core, other.version = self.cfg, self.core, self.version
        other.nodes = dict(self.nodes)
        other.pools = dict(self.pools)
        other.generated = self.generated
        other.members = dict(self.members)  # the lists are shared: a write replaces a list (_move)
        other.changes = ChangeLog(self.version + 1)  # a copy records no changes (it never changes)
        return other


class ManagementRegistry:
    """``ManagementState`` behind one instrumented lock (``management_lock_*_s``)."""

    def __init__(self, cfg: Phase3Config, core: CoreServicesConfig, metrics: Metrics) -> None:
        self.lock = TimedLock("management", metrics)
        self._state = ManagementState(cfg, core)

    @property
    def version(self) -> int:
        return self._state.version

    # -- writes: O(1) per node, or a swap ---------------------------------------------

    def upsert(self, entry: NodeEntry, version: int) -> None:
        """Store a node's entry and apply its membership diff."""
        with self.lock.at("upsert_node"):
            state = self._state
            old = state.nodes.get(entry.node_id)
            _move(state, entry.node_id, () if old is None else old.pool_ids, entry.pool_ids)
            state.nodes[entry.node_id] = entry
            state.version = version
            if old is None or _row_fields(old) != _row_fields(entry):  # not a status-only change
                state.changes.node(version, entry.node_id)

    def remove(self, node_id: str, version: int) -> None:
        with self.lock.at("remove_node"):
            state = self._state
            old = state.nodes.pop(node_id, None)
            if old is not None:
                _move(state, node_id, old.pool_ids, ())
                state.changes.node(version, node_id)
            state.version = version

    def set_pools(
        self,
        cfg: Phase3Config,
        generated: tuple[PoolConfig, ...],
        entries: Iterable[NodeEntry],
        members: Mapping[int, Sequence[str]],
        version: int,
    ) -> None:
        """Swap in a new pool set with every node's entry and every pool's sorted
        members (copied here, built outside the lock, installed with one swap)."""
        fresh = ManagementState(cfg, self._state.core)
        fresh.generated = generated
        fresh.pools = {p.pool_id: p for p in (*cfg.pools, *generated)}
        fresh.members = {pid: list(members.get(pid, ())) for pid in fresh.pools}
        fresh.nodes = {entry.node_id: entry for entry in entries}
        fresh.version = version
        fresh.changes = ChangeLog(version)  # nothing before the new pool set is delta material
        with self.lock.at("set_pools"):
            fresh.core = self._state.core
            self._state = fresh

    def install(self, state: ManagementState) -> ManagementState:
        """Swap in a state prepared outside every lock (its core is kept from the
        current one: the core config is not part of what was prepared). Returns
        the state replaced, for the caller to free after its own locks."""
        with self.lock.at("install"):
            state.core = self._state.core
            state.changes = ChangeLog(state.version)  # nothing before the new pool set is delta material
            old, self._state = self._state, state
        return old

    def set_core(self, core: CoreServicesConfig, version: int) -> None:
        with self.lock.at("set_core"):
            self._state.core = core
            self._state.version = version
            self._state.changes.reset(version)

    # -- reads ---------------------------------------------------------------------------

    def capture(self) -> ManagementState:
        """A consistent copy of the state, for a snapshot build outside the lock."""
        with self.lock.at("capture"):
            return self._state.copy()

    def entries(self) -> dict[str, NodeEntry]:
        """A copy of the node entries (one C-level dict copy under the lock)."""
        with self.lock.at("entries"):
            return dict(self._state.nodes)

    def capture_changes(self, since: int) -> ChangeCapture | None:
        """The entries of the nodes changed at versions ``>= since``, with the
        configs and pools; ``None`` when the record of changes does not reach back
        to ``since`` (a full :meth:`capture` is needed then). O(changes) under the lock."""
        with self.lock.at("capture_changes"):
            state = self._state
            changed = state.changes.since(since)
            if changed is None:
                return None
            nodes = {node_id: state.nodes.get(node_id) for node_id in changed}
            return ChangeCapture(state.version, state.cfg, state.core, state.pools, nodes)


def _move(state: ManagementState, node_id: str, old: tuple[int, ...], new: tuple[int, ...]) -> None:
    """Apply a node's membership change to the sorted member lists.

    Copy on write: a changed pool gets a new list, never an edit of its old
    one, which captures (:meth:`ManagementState.copy`) share without copying."""
    if old == new:
        return
    for pid in set(old) - set(new):
        members = state.members.get(pid)
        if members is not None:
            i = bisect.bisect_left(members, node_id)
            if i < len(members) and members[i] == node_id:
                state.members[pid] = members[:i] + members[i + 1 :]
    for pid in set(new) - set(old):
        members = list(state.members.get(pid, ()))
        bisect.insort(members, node_id)
        state.members[pid] = members
