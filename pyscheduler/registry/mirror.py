"""``ManagementMirror``: the management registry kept in step with the legacy fleet.

The legacy :class:`~pyscheduler.state.fleet.Fleet` is the source of truth while a
dispatcher migrates; the :class:`~pyscheduler.state.management.ManagementRegistry`
is its copy that snapshots are captured from (outside the registry lock). The
mirror has two states:

- **in sync**: every change is copied as it happens (:meth:`after_change`);
- **stale**: it does not exist yet, or it missed changes while its flag was off;
  it is resynced in full the next time it is switched on or a pool change
  forces a full copy.

Every method runs under the registry lock (the caller's) except
:meth:`ManagementMirror.prepare_config`; the management registry takes its own
lock inside, so the order is registry → management.

A config change replaces every pool and membership. With the copy in sync it
is prepared off the registry lock: :meth:`~ManagementMirror.begin_config`
(under the lock, with the fleet's capture) opens a journal of the nodes copied
from then on, :meth:`~ManagementMirror.prepare_config` (no registry lock)
builds the whole new management state from the current entries and the
fleet's plan, and :meth:`~ManagementMirror.install_config` (under the lock,
after the fleet took the plan) copies the journaled nodes again and swaps the
state in: work proportional to the nodes that changed meanwhile, not to the
fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.flags import MigrationFlags
from ..state.fleet import ConfigPlan, Fleet
from ..state.management import ChangeCapture, ManagementRegistry, ManagementState, NodeEntry
from ..state.metrics import Metrics

__all__ = ["ConfigPrep", "ManagementMirror"]


@dataclass(eq=False)
class ConfigPrep:
    """A config change's management state, prepared off the registry lock."""

    epoch: int  # the mirror's epoch at the capture: a resync or staleness since voids the prep
    journal: set[str] = field(default_factory=set)  # nodes copied since the capture
    state: ManagementState | None = None
    retired: ManagementState | None = None  # the state replaced, freed with the prep (off the lock)


class ManagementMirror:
    """The management registry (created on demand) and whether it missed changes."""

    def __init__(self, fleet: Fleet, metrics: Metrics) -> None:
        self._fleet = fleet
        self._metrics = metrics
        self._management: ManagementRegistry | None = None
        self._stale = True
        self._epoch = 0  # bumped by every full resync and every fall out of sync
        self._journals: tuple[set[str], ...] = ()  # open config preps (replaced, never mutated)

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
        self._epoch += 1
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
        for journal in self._journals:
            journal.add(node_id)
        self.ensure().upsert(NodeEntry.of(record), self._fleet.topology_version)

    def remove(self, node_id: str) -> None:
        """Drop one node from the copy."""
        for journal in self._journals:
            journal.add(node_id)
        self.ensure().remove(node_id, self._fleet.topology_version)

    def after_change(self, flags: MigrationFlags) -> None:
        """Copy what the fleet's last change touched (or mark the copy stale when off)."""
        touched, pools_changed = self._fleet.take_changes()
        if self._management is None or not flags.use_management_registry:
            if self._management is not None and (touched or pools_changed):
                self._stale = True  # resynced in full when switched on again
                self._epoch += 1
            return
        if self._stale or pools_changed:
            self.resync()
            return
        for node_id in touched:
            if node_id in self._fleet.nodes:
                self.upsert(node_id)
            else:
                self.remove(node_id)

    # -- config changes, prepared off the registry lock ---------------------------------

    def begin_config(self, flags: MigrationFlags) -> ConfigPrep | None:
        """Open a prep for a config change (registry lock held, with the fleet's
        capture); None when the copy is not in sync (the change then resyncs it
        in full, or marks it stale, as any other change would)."""
        if not self.serving(flags):
            return None
        prep = ConfigPrep(self._epoch)
        self._journals = (*self._journals, prep.journal)
        return prep

    def prepare_config(self, prep: ConfigPrep | None, plan: ConfigPlan) -> None:
        """Build the management state ``plan`` gives (no registry lock held): the
        current entries with their new pool ids, the plan's pools and members."""
        if prep is None or self._management is None:
            return
        entries = self._management.entries()
        pool_ids = plan.pool_ids
        for node_id, entry in entries.items():
            ids = pool_ids.get(node_id, ())
            if entry.pool_ids != ids:
                entries[node_id] = entry._replace(pool_ids=ids)
        state = ManagementState(plan.cfg, self._fleet.core)
        state.generated = plan.generated
        state.pools = dict(plan.pools)
        state.members = {pid: list(members) for pid, members in plan.members.items()}
        state.nodes = entries
        prep.state = state

    def end_config(self, prep: ConfigPrep | None) -> None:
        """Close the prep's journal (registry lock held)."""
        if prep is not None:
            self._journals = tuple(j for j in self._journals if j is not prep.journal)

    def install_config(self, prep: ConfigPrep | None, plan: ConfigPlan, flags: MigrationFlags) -> None:
        """After the fleet installed ``plan`` (registry lock held): swap the
        prepared state in, the nodes copied or replayed since the capture copied
        again (entry and membership); or, when the prep is void or the fleet's
        replay generated pools, the ordinary full path (:meth:`after_change`)."""
        self.end_config(prep)
        fleet = self._fleet
        state = None if prep is None else prep.state
        if (
            state is None or prep.epoch != self._epoch or not self.serving(flags)
            or fleet.generated is not plan.generated
        ):  # fmt: skip
            self.after_change(flags)
            return
        touched, _ = fleet.take_changes()
        for node_id in prep.journal | touched:  # changed since the capture: their entries moved on
            # the prepared member lists hold every node where the plan placed it
            planned = plan.replayed[node_id] if node_id in plan.replayed else plan.pool_ids.get(node_id, ())
            record = fleet.nodes.get(node_id)
            if record is None:
                state.drop(node_id, planned)
            else:
                state.put(NodeEntry.of(record), planned)
        state.version = fleet.topology_version
        prep.retired = self.ensure().install(state)
        prep.state = None
