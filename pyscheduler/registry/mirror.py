"""``ManagementMirror``: the management registry kept in step with the legacy fleet.

The legacy :class:`~pyscheduler.state.fleet.Fleet` is the source of truth while a
dispatcher migrates; the :class:`~pyscheduler.state.management.ManagementRegistry`
is its copy that snapshots are captured from (outside the registry lock). The
mirror has two states:

- **in sync**: every change is copied as it happens (:meth:`after_change`);
- **stale**: it does not exist yet, or it missed changes while its flag was off;
  it is resynced in full the next time it is switched on or a pool change
  forces a full copy.

Every method runs under the registry lock (the caller's); the management
registry takes its own lock inside, so the order is registry → management.
"""

from __future__ import annotations

from ..domain.flags import MigrationFlags
from ..state.fleet import Fleet
from ..state.management import ChangeCapture, ManagementRegistry, ManagementState, NodeEntry
from ..state.metrics import Metrics

__all__ = ["ManagementMirror"]


class ManagementMirror:
    """The management registry (created on demand) and whether it missed changes."""

    def __init__(self, fleet: Fleet, metrics: Metrics) -> None:
        self._fleet = fleet
        self._metrics = metrics
        self._management: ManagementRegistry | None = None
        self._stale = True

    @property
    def exists(self) -> bool:
        return self._management is not None

    @property
    def stale(self) -> bool:
        """True when the copy missed changes (or does not exist yet)."""
        return self._stale

    def serving(self, flags: MigrationFlags) -> bool:
        """Whether snapshots can be captured from the management side right now."""
        return self._management is not None and flags.use_management_registry and not self._stale

    def ensure(self) -> ManagementRegistry:
        """The management registry, created (stale) on first use."""
        if self._management is None:
            self._management = ManagementRegistry(self._fleet.cfg, self._fleet.core, self._metrics)
            self._stale = True
        return self._management

    def capture(self) -> ManagementState:
        """A consistent copy of the management state (its own lock, briefly)."""
        return self.ensure().capture()

    def capture_changes(self, since: int) -> ChangeCapture | None:
        """The nodes changed at versions ``>= since`` (``None``: capture in full)."""
        return self.ensure().capture_changes(since)

    def resync(self) -> None:
        """Copy everything: core config, pools, every node and membership."""
        management, fleet = self.ensure(), self._fleet
        fleet.take_changes()
        # The new version becomes visible only with the new pools (sync_pools swaps
        # both in at once): a snapshot built from a capture taken between these two
        # steps, by a reader outside the registry lock, keeps the old version, so
        # it can never pass for the current generation.
        management.set_core(fleet.core, management.version)
        self.sync_pools()
        self._stale = False

    def sync_pools(self) -> None:
        """Copy the Phase3 config, the generated pools and every membership."""
        fleet = self._fleet
        entries = [NodeEntry.of(r) for r in fleet.nodes.values()]
        self.ensure().set_pools(fleet.cfg, fleet.generated, entries, fleet.members, fleet.topology_version)

    def sync_core(self) -> None:
        """Copy the core-services config."""
        self.ensure().set_core(self._fleet.core, self._fleet.topology_version)

    def upsert(self, node_id: str) -> None:
        """Copy one node (it must be registered)."""
        record = self._fleet.nodes[node_id]
        self.ensure().upsert(NodeEntry.of(record), self._fleet.topology_version)

    def remove(self, node_id: str) -> None:
        """Drop one node from the copy."""
        self.ensure().remove(node_id, self._fleet.topology_version)

    def after_change(self, flags: MigrationFlags) -> None:
        """Copy what the fleet's last change touched (or mark the copy stale when off)."""
        touched, pools_changed = self._fleet.take_changes()
        if self._management is None or not flags.use_management_registry:
            if self._management is not None and (touched or pools_changed):
                self._stale = True  # resynced in full when switched on again
            return
        if self._stale or pools_changed:
            self.resync()
            return
        for node_id in touched:
            if node_id in self._fleet.nodes:
                self.upsert(node_id)
            else:
                self.remove(node_id)
