"""``NodeRegistry``: the API dispatchers call (docs/DESIGN.md §4), a facade over

- the legacy fleet (``state.fleet``) behind one registry lock — the source of truth;
- :class:`~.mirror.ManagementMirror`, the management registry kept in step with it;
- :class:`~.publish.SnapshotPublisher`, the runtime snapshot generations dispatch reads;
- :mod:`.consistency`, the cross-checks behind ``verify_consistency``;
- the two selection paths: ``selection.legacy`` under the lock, ``selection.fast``
  (compiled kernels over the current snapshot, no registry lock).

Each method validates its input before it takes the lock, and either completes
or raises with nothing changed. Lock order: registry lock → management lock →
reservation-table lock → snapshot version-count lock; nothing is called under a
lock that could block (no I/O, no user callbacks but the clock).
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import _compat
from ..domain.columns import JobColumns
from ..domain.config import CoreServicesConfig, Phase3Config, PoolConfig
from ..domain.errors import (
    ConfigError,
    DuplicateNodeError,
    InvalidHeartbeatError,
    InvalidRequestError,
    UnknownNodeError,
    UnknownPoolError,
)
from ..domain.events import ChangeKind, RegistryEvent
from ..domain.flags import MigrationFlags
from ..domain.languages import normalize_lang
from ..domain.model import (
    CORE_TYPES,
    Heartbeat,
    JobRequest,
    NodeInfo,
    NodeStatus,
    NodeView,
    Reason,
    Selection,
    ServiceType,
    parse_service_types,
)
from ..runtime.delta import derive_snapshot
from ..runtime.lang_index import PoolLanguageIndex
from ..runtime.snapshot import RuntimeSnapshot, build_snapshot
from ..selection import fast, legacy
from ..selection.batch import SelectionBatch
from ..state import logs
from ..state.fleet import Fleet, plan_config
from ..state.loads import SlotAllocator, new_load_table
from ..state.locks import TimedLock
from ..state.metrics import Metrics
from ..state.nodes import NodeRecord
from ..state.pools import eligible_pools
from ..state.reservations import Reservations
from ..state.sessions import SessionEntry, SessionRuntimeManager, log_rebind
from .consistency import fleet_problems, management_problems, snapshot_problems, steady_problems
from .mirror import ManagementMirror
from .publish import SnapshotPublisher

__all__ = ["NodeRegistry", "REGISTER_POLICIES"]

REGISTER_POLICIES = ("reject_duplicate", "replace")
_READY = NodeStatus.READY
_CONFIG_PLAN_TRIES = 3  # plans a config change may lose to concurrent topology changes

#: The fast path times one ``select_node`` call in this many (histogram
#: ``select_fast_sampled_s``): two clock reads and a histogram update cost about
#: a third of a fast decision. The legacy path times every call (``select_s``).
FAST_TIMING_SAMPLE = 64


class NodeRegistry:
    """The registry of worker nodes and the scheduler over them.

    ``clock`` returns seconds (monotonic); it is injectable so tests and
    simulations can drive time. All methods are thread safe.
    """

    def __init__(
        self,
        phase3: Phase3Config | None = None,
        core_services: CoreServicesConfig | None = None,
        *,
        flags: MigrationFlags | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        phase3 = Phase3Config() if phase3 is None else phase3
        core_services = CoreServicesConfig() if core_services is None else core_services
        _require(phase3, Phase3Config, "phase3", ConfigError)
        _require(core_services, CoreServicesConfig, "core_services", ConfigError)
        flags = _default_flags() if flags is None else flags
        _require(flags, MigrationFlags, "flags", ConfigError)
        if not callable(clock):
            raise ConfigError(f"clock must be callable, got {clock!r}")
        self._clock = clock
        self._metrics = Metrics()
        self._lock = TimedLock("registry", self._metrics)
        self._heartbeat_guard = self._lock.at("heartbeat")  # the hottest writer, bound once
        self._heartbeats = self._metrics.count("heartbeats")  # updated under the registry lock
        self._fleet = Fleet(phase3, core_services)
        self._flags = flags
        self._loads = new_load_table()
        self._slots = SlotAllocator()
        self._serials = itertools.count(1)
        # the compiled dispatcher (fast path: one call per decision, its own
        # reservation table and counters), or None without the extension
        self._dispatch = fast.new_dispatcher(self._loads) if _compat.HAVE_HOTPATH else None
        self._reservations = Reservations(self._loads, self._dispatch)
        # load-only beats of steady nodes in one compiled call (docs/HOTPATH.md,
        # "Heartbeats in one call"); records admit and evict themselves
        self._steady = (
            _compat.hotpath.SteadyBeats(self._loads, self._lock.probe, clock, Heartbeat)
            if _compat.HAVE_HOTPATH else None
        )
        self._steady_beat = None if self._steady is None else self._steady.beat
        self._token_ends = 0  # legacy tokens ended (a change stamp for shadow compare)
        self._publisher = SnapshotPublisher(self._metrics)
        self._listeners: tuple[Callable[[RegistryEvent], None], ...] = ()
        self._sessions = SessionRuntimeManager(clock=clock)
        if self._dispatch is not None:  # the fast path's sessions live in the dispatcher
            self._dispatch.configure_sessions(self._sessions.max_sessions, self._sessions.idle_ttl_s, log_rebind)
            self._sessions.attach_compiled(self._dispatch.sessions)
        self._mirror = ManagementMirror(self._fleet, self._metrics)
        self._select_ticks = itertools.count()  # picks the fast-path calls that are timed
        self._use_flags(flags)
        if flags.use_management_registry:
            with self._locked("init"):
                self._mirror.resync()

    # -- locking -----------------------------------------------------------------------

    def _locked(self, site: str):
        """The registry lock for ``site``: waits and hold times are recorded
        (``registry_lock_wait_s`` / ``_hold_s``), waits over 10 ms logged."""
        return self._lock.at(site)

    # -- configuration -------------------------------------------------------------------

    @property
    def phase3_config(self) -> Phase3Config:
        return self._fleet.cfg

    @property
    def core_services_config(self) -> CoreServicesConfig:
        return self._fleet.core

    def set_phase3_config(self, cfg: Phase3Config) -> None:
        """Replace the Phase3 config; pools, generated pools and membership are
        refreshed before this returns (docs/DESIGN.md §7 behaviour 3)."""
        _require(cfg, Phase3Config, "cfg", ConfigError)
        pools, generated = self._apply_config(cfg)
        self._metrics.inc("config_changes")
        logs.phase3_config_changed(pools, generated)
        if self._fast():
            self.snapshot()  # publish now: the next dispatch finds the new pools ready
        self._emit(RegistryEvent(ChangeKind.PHASE3_CONFIG, phase3=cfg))

    def _apply_config(self, cfg: Phase3Config) -> tuple[int, int]:
        """Install ``cfg`` two-phase: capture under the lock; plan pools and
        memberships, and the management state they give, outside it; swap both
        in under the lock, then replay the nodes whose topology changed since
        the capture (registrations, removals, capability changes: O(those
        nodes), for the fleet and the management copy alike). A plan is
        planned again only when such a change had pools generated meanwhile;
        after a few such races the change is made in one step under the lock.
        Returns the number of pools and of generated pools installed."""
        for _ in range(_CONFIG_PLAN_TRIES):
            with self._locked("set_phase3_config_capture"):
                capture = self._fleet.capture()
                prep = self._mirror.begin_config(self._flags)
            try:  # no lock held; ConfigError changes nothing
                plan = plan_config(cfg, capture)
                self._mirror.prepare_config(prep, plan)
            except BaseException:
                with self._locked("set_phase3_config_abandon"):
                    self._fleet.end_capture(capture)
                    self._mirror.end_config(prep)
                raise
            with self._locked("set_phase3_config"):
                if self._fleet.apply_config(plan):
                    self._mirror.install_config(prep, plan, self._flags)
                    return len(self._fleet.pools), len(self._fleet.generated)
                self._mirror.end_config(prep)
        with self._locked("set_phase3_config"):
            self._fleet.set_config(cfg)
            self._mirror.after_change(self._flags)
            return len(self._fleet.pools), len(self._fleet.generated)

    def set_core_services_config(self, cfg: CoreServicesConfig) -> None:
        """Replace the core-services config (which service ids count as ASR/NMT/TTS)."""
        _require(cfg, CoreServicesConfig, "cfg", ConfigError)
        with self._locked("set_core_services_config"):
            self._fleet.set_core(cfg)
            self._mirror.after_change(self._flags)
        self._emit(RegistryEvent(ChangeKind.CORE_SERVICES_CONFIG, core_services=cfg))

    @property
    def flags(self) -> MigrationFlags:
        return self._flags

    def set_flags(self, flags: MigrationFlags) -> None:
        """Switch migration flags at run time. Turning ``use_management_registry``
        on creates the management registry if needed and resyncs it in full."""
        _require(flags, MigrationFlags, "flags", ConfigError)
        with self._locked("set_flags"):
            if flags.use_management_registry and self._mirror.stale:
                self._mirror.resync()
            self._use_flags(flags)

    def _use_flags(self, flags: MigrationFlags) -> None:
        """Install ``flags``, and what select_node's shortcut reads from them:
        ``_direct`` when every job takes the fast path with nothing else to do
        (extension built, full rollout, no shadow compare)."""
        self._flags = flags
        self._bind_sessions = flags.use_session_runtime
        self._direct = (
            self._dispatch is not None
            and flags.use_runtime_snapshot
            and flags.rollout_percent >= 100
            and not flags.shadow_compare
        )

    # -- node lifecycle ----------------------------------------------------------------

    def register_node_with_policy(self, info: NodeInfo, policy: str = "reject_duplicate") -> str:
        """Add a node (REGISTERING until its first healthy heartbeat); return its id.

        ``policy="reject_duplicate"`` raises :class:`DuplicateNodeError` for a
        known id; ``"replace"`` drops the old node (and its reservations) first.
        A disconnected node may always register again. ``node_id=None`` gets a
        generated id.
        """
        _require(info, NodeInfo, "info", InvalidRequestError)
        if policy not in REGISTER_POLICIES:
            raise InvalidRequestError(f"policy must be one of {', '.join(REGISTER_POLICIES)}; got {policy!r}")
        with self._locked("register_node"):
            node_id = info.node_id
            if node_id is None:
                node_id = self._new_node_id()
                info = info.with_id(node_id)
            old = self._fleet.nodes.get(node_id)
            if old is not None:
                if policy == "reject_duplicate" and not old.disconnected:
                    raise DuplicateNodeError(f"node {node_id!r} is already registered")
                self._forget(node_id)
            slot = self._slots.allocate(self._publisher.oldest_live_version())
            record = NodeRecord.new(info, self._clock(), slot, next(self._serials), self._loads, self._steady)
            self._reservations.claim_slot(slot, record.serial)
            self._fleet.add(record)
            self._metrics.inc("registrations")
            self._mirror.after_change(self._flags)
        logs.node_registered(node_id, policy, replaced=old is not None)
        self._emit(RegistryEvent(ChangeKind.REGISTERED, node_id, info=info))
        return node_id

    def _new_node_id(self) -> str:
        while True:
            node_id = f"node-{uuid.uuid4().hex[:12]}"
            if node_id not in self._fleet.nodes:
                return node_id

    def update_node_heartbeat(self, node_id: str, hb: Heartbeat) -> NodeStatus:
        """Apply a heartbeat and return the node's status after it (docs/DESIGN.md §6).

        Load figures are O(1); new services or languages refresh the node's
        pool membership (a repeat of the same capabilities changes nothing).
        A load-only, healthy beat of a READY node is one compiled call that
        takes no lock when the registry lock is free (docs/HOTPATH.md).
        """
        now = None
        beat = self._steady_beat
        if beat is not None:
            done = beat(node_id, hb)
            if done is True:
                return _READY
            if done is not None:  # the clock was read, but the registry lock was busy
                now = done[0]
        _require(hb, Heartbeat, "hb", InvalidHeartbeatError)
        with self._heartbeat_guard:
            record = self._live(node_id)
            before = record.status
            status = self._apply_heartbeat_locked(record, hb, self._clock() if now is None else now)
            if self._fleet.touched:  # a load-only beat changes nothing to sync
                self._mirror.after_change(self._flags)
        if status is not before:
            logs.node_status_changed(node_id, before, status, "heartbeat")
        if self._listeners:
            self._emit(RegistryEvent(ChangeKind.HEARTBEAT, node_id, heartbeat=hb, status=status))
        return status

    def update_node_heartbeats(self, beats: Iterable[tuple[str, Heartbeat]]) -> list[NodeStatus]:
        """Apply many ``(node_id, heartbeat)`` pairs, in order, under one
        acquisition of the registry lock; return each node's status after its beat.

        All or nothing: every pair is checked (a known, connected node id and a
        ``Heartbeat``) before the first is applied, so a bad pair raises and
        changes nothing. A receiver that reads beats in bursts (a socket, a
        Redis stream) holds the lock and the GIL once per burst instead of once
        per beat — see ``docs/PERFORMANCE.md`` (contention).
        """
        pairs = _heartbeat_pairs(beats)
        with self._locked("heartbeats"):
            records = [self._live(node_id) for node_id, _ in pairs]  # raises before any change
            now, apply = self._clock(), self._apply_heartbeat_locked
            befores = [record.status for record in records]
            statuses = [apply(record, hb, now) for record, (_, hb) in zip(records, pairs)]
            if self._fleet.touched:
                self._mirror.after_change(self._flags)
        _log_status_changes(pairs, befores, statuses)
        if self._listeners:
            for (node_id, hb), status in zip(pairs, statuses):
                self._emit(RegistryEvent(ChangeKind.HEARTBEAT, node_id, heartbeat=hb, status=status))
        return statuses

    def _apply_heartbeat_locked(self, record: NodeRecord, hb: Heartbeat, now: float) -> NodeStatus:
        """One beat on one record; marks what changed for the management sync."""
        old_sets = None if hb.load_only else self._fleet.node_sets(record)
        old_status = record.status
        if record.apply_heartbeat(hb, now):  # status reaches the load table
            self._fleet.capabilities_changed(record, *old_sets)
        elif record.status is not old_status:
            self._fleet.touched.add(record.node_id)
        self._heartbeats.n += 1
        return record.status

    def mark_node_draining(self, node_id: str) -> None:
        """Stop dispatching to a node (DRAINING); its running jobs are left alone."""
        with self._locked("mark_draining"):
            record = self._live(node_id)
            before = record.status
            record.draining = True
            if record.status is not NodeStatus.OFFLINE:
                record.status = NodeStatus.DRAINING
            status = record.status
            self._fleet.touched.add(node_id)
            self._mirror.after_change(self._flags)
        if status is not before:
            logs.node_status_changed(node_id, before, status, "drain")
        self._emit(RegistryEvent(ChangeKind.DRAINING, node_id, status=status))

    def disconnect_node(self, node_id: str) -> None:
        """Mark a node OFFLINE at once and take it out of every pool; it must
        register again. Its reservations are dropped."""
        with self._locked("disconnect"):
            record = self._live(node_id)
            before, record.status = record.status, NodeStatus.OFFLINE
            self._fleet.disconnect(record)
            self._reservations.free_slot(record.slot)
            self._reservations.claim_slot(record.slot, record.serial)
            self._mirror.after_change(self._flags)
        logs.node_status_changed(node_id, before, NodeStatus.OFFLINE, "disconnect")
        self._emit(RegistryEvent(ChangeKind.DISCONNECTED, node_id, status=NodeStatus.OFFLINE))

    def remove_node(self, node_id: str) -> None:
        """Forget a node (connected or not) and its reservations."""
        _check_node_id(node_id)
        with self._locked("remove"):
            if node_id not in self._fleet.nodes:
                raise UnknownNodeError(f"unknown node id {node_id!r}")
            self._forget(node_id)
            self._mirror.after_change(self._flags)
        logs.node_removed(node_id)
        self._emit(RegistryEvent(ChangeKind.REMOVED, node_id))

    def sweep(self, now: float | None = None) -> list[str]:
        """Apply timeouts: stale nodes go OFFLINE, REGISTERING nodes past warm-up go
        DEGRADED (their ids are returned, sorted); expired reservations are dropped.

        ``now`` (default: the registry's clock) must be a finite number on that clock."""
        if now is not None:
            now = _check_time(now, "sweep: now")
        with self._locked("sweep"):
            now = self._clock() if now is None else now
            cfg = self._fleet.cfg
            befores = {}  # node id -> its status before the sweep changed it
            for nid, rec in self._fleet.nodes.items():
                before = rec.status
                if rec.sweep(now, cfg.heartbeat_timeout_s, cfg.warmup_s):
                    befores[nid] = before
            changed = sorted(befores)
            expired_here, expired_compiled = self._reservations.expire(now, cfg.reservation_ttl_s)
            self._metrics.inc("reservations_expired", expired_here)
            expired = expired_here + expired_compiled
            statuses = [(nid, self._fleet.nodes[nid].status) for nid in changed]
            self._fleet.touched.update(changed)
            self._mirror.after_change(self._flags)
        for nid, status in statuses:
            logs.node_status_changed(nid, befores[nid], status, "sweep")
        if expired:
            logs.reservations_expired(expired)
        for nid, status in statuses:
            self._emit(RegistryEvent(ChangeKind.STATUS, nid, status=status))
        return changed

    def _forget(self, node_id: str) -> None:
        """Drop a node, its reservations and (once unreachable) its load slot."""
        record = self._fleet.discard(node_id)
        if record is not None:
            record.status = NodeStatus.OFFLINE  # what older snapshot generations will read
            self._reservations.free_slot(record.slot)
            self._slots.free(record.slot, self._fleet.topology_version)

    def _live(self, node_id: str) -> NodeRecord:
        record = self._fleet.nodes.get(node_id) if isinstance(node_id, str) else None
        if record is None:
            raise UnknownNodeError(f"unknown node id {node_id!r}")
        if record.disconnected:
            raise UnknownNodeError(f"node {node_id!r} was disconnected; it must register again")
        return record

    # -- change events -------------------------------------------------------------------

    def subscribe(self, listener: Callable[[RegistryEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` after every local change (see :mod:`pyscheduler.events`),
        outside every registry lock. Returns a function that unsubscribes it.
        A listener that raises is logged and does not affect the change."""
        if not callable(listener):
            raise InvalidRequestError(f"listener must be callable, got {listener!r}")
        with self._locked("subscribe"):
            self._listeners = (*self._listeners, listener)
            if self._steady is not None:  # every beat's event is emitted by the Python path
                self._steady.set_quiet(False)

        def unsubscribe() -> None:
            with self._locked("unsubscribe"):
                self._listeners = tuple(x for x in self._listeners if x is not listener)
                if self._steady is not None:
                    self._steady.set_quiet(not self._listeners)

        return unsubscribe

    def _emit(self, event: RegistryEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a subscriber's bug must not undo or block a change
                logs.listener_failed(listener, event.kind.value)

    # -- the management domain (docs/DESIGN.md §1, §4 migration) ------------------------------------

    def enable_lock_optimization(self) -> None:
        """Create the management registry (snapshots are then built from it, outside
        the registry lock) and the session runtime, copy all existing state into
        them, and switch every flag on (``shadow_compare`` and
        ``rollout_percent`` are kept as they are)."""
        with self._locked("enable_lock_optimization"):
            self._mirror.resync()
        flags = self._flags
        self.set_flags(MigrationFlags(True, True, True, True, flags.shadow_compare, flags.rollout_percent))

    def sync_node_to_management(self, node_id: str) -> None:
        """Copy one node's legacy state (status, services, languages, pools) to
        the management registry."""
        _check_node_id(node_id)
        with self._locked("sync_node"):
            if node_id not in self._fleet.nodes:
                raise UnknownNodeError(f"unknown node id {node_id!r}")
            self._mirror.upsert(node_id)

    def remove_node_from_management(self, node_id: str) -> None:
        """Drop a node from the management registry (it must be gone from the legacy side)."""
        _check_node_id(node_id)
        with self._locked("remove_from_management"):
            if node_id in self._fleet.nodes:
                raise InvalidRequestError(f"node {node_id!r} is still registered; remove it first")
            self._mirror.remove(node_id)

    def sync_phase3_config_to_management(self) -> None:
        """Copy the Phase3 config, the generated pools and every membership."""
        with self._locked("sync_phase3_config"):
            self._mirror.sync_pools()

    def sync_core_services_to_management(self) -> None:
        """Copy the core-services config."""
        with self._locked("sync_core_services"):
            self._mirror.sync_core()

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> RuntimeSnapshot:
        """The current read-only snapshot (rebuilt first if the topology changed).

        With the management registry on, the rebuild captures the management
        state under its lock and builds outside every lock (two-phase); a
        reader only waits when it finds the snapshot stale while another
        thread is already rebuilding it.
        """
        snap = self._publisher.current_if(self._fleet.topology_version)
        if snap is not None:
            return snap
        if self._mirror.serving(self._flags):
            return self._publish_from_management()
        with self._locked("publish_snapshot"):
            return self._publish_locked()

    def _publish_from_management(self) -> RuntimeSnapshot:
        publisher = self._publisher
        with publisher.build_lock:
            snap = publisher.current_if(self._fleet.topology_version)
            if snap is not None:
                return snap  # another thread built it while we waited
            prev = publisher.current

            def build() -> RuntimeSnapshot:  # no registry lock held; the management lock only to capture
                if prev is not None:
                    changes = self._mirror.capture_changes(prev.version)
                    if changes is not None:
                        snap = derive_snapshot(prev, changes, self._loads, changes.version, changes.nodes)
                        if snap is not None:
                            self._metrics.inc("snapshot_deltas")
                            return snap
                state = self._mirror.capture()
                return build_snapshot(state, self._loads, state.version)

            return publisher.build(build)

    def _publish_locked(self) -> RuntimeSnapshot:
        version = self._fleet.topology_version
        snap = self._publisher.current_if(version)
        if snap is None:
            snap = self._publisher.build(lambda: self._build_locked(version))
        return snap

    def _build_locked(self, version: int) -> RuntimeSnapshot:
        """The generation of the fleet at ``version`` (registry lock held): derived
        from the current one when the fleet's record of changes reaches back to it."""
        prev = self._publisher.current
        if prev is not None:
            changed = self._fleet.changes.since(prev.version)
            if changed is not None:
                snap = derive_snapshot(prev, self._fleet, self._loads, version, changed)
                if snap is not None:
                    self._metrics.inc("snapshot_deltas")
                    return snap
        return build_snapshot(self._fleet, self._loads, version)

    # -- selection ---------------------------------------------------------------------

    def _fast(self, job: JobRequest | None = None) -> bool:
        """Whether this call runs the compiled kernels (docs/DESIGN.md §4 flags)."""
        flags = self._flags
        if not (flags.use_runtime_snapshot and _compat.HAVE_HOTPATH):
            return False
        return job is None or flags.in_rollout(job.key)

    def select_eligible_pools(
        self,
        src: str,
        tgt: str,
        required_types: ServiceType = CORE_TYPES,
        lang_index: object | None = None,
    ) -> list[int]:
        """The eligible pools for a pair, in eligible order (smallest language set
        first, then id).

        Answered in O(1) by a ``PoolLanguageIndex`` — the one given, or the
        current snapshot's when ``flags.use_lang_index`` — else by scanning
        every pool.
        """
        src = normalize_lang(src, "src", InvalidRequestError, allow_auto=True)
        tgt = normalize_lang(tgt, "tgt", InvalidRequestError)
        types = parse_service_types(required_types, "required_types", InvalidRequestError)
        if not types:
            raise InvalidRequestError("required_types must name at least one service type")
        if lang_index is None and self._flags.use_lang_index:
            lang_index = self.snapshot().index
        if lang_index is not None:
            if not isinstance(lang_index, PoolLanguageIndex):
                raise InvalidRequestError(f"lang_index must be a PoolLanguageIndex, got {lang_index!r}")
            return lang_index.find_pools_for_lang_pair(src, tgt, types)
        with self._locked("select_eligible_pools"):
            pools = self._fleet.ordered_pools()
            return [p.pool_id for p in eligible_pools(pools, src, tgt, types, self._fleet.cfg)]

    def select_node(self, job: JobRequest) -> Selection:
        """Place one job (docs/DESIGN.md §5) and reserve the node picked, if any."""
        if self._direct and type(job) is JobRequest:  # every job takes the fast path
            if next(self._select_ticks) % FAST_TIMING_SAMPLE:
                snap = self._publisher.current
                if snap is not None and snap.version == self._fleet.topology_version:
                    return self._dispatch.select(snap, job, self._clock(), bind_session=self._bind_sessions)
                return self._select_fast(job)
            return self._select_fast_timed(job)
        _require(job, JobRequest, "job", InvalidRequestError)
        fast_path = self._fast(job)
        if self._flags.shadow_compare:
            self._shadow(job, serve_fast=fast_path)
        if fast_path:
            if next(self._select_ticks) % FAST_TIMING_SAMPLE:
                return self._select_fast(job)
            return self._select_fast_timed(job)
        return self._select_legacy(job)

    def _select_fast_timed(self, job: JobRequest) -> Selection:
        start = time.perf_counter()  # one call in FAST_TIMING_SAMPLE is timed
        selection = self._select_fast(job)
        self._metrics.observe("select_fast_sampled_s", time.perf_counter() - start)
        return selection

    select_node_with_types_two_level_excluding_with_breakdown = select_node

    def _select_legacy(self, job: JobRequest) -> Selection:
        start = time.perf_counter()
        with self._locked("select_node"):
            now = self._clock()
            entry, bound = self._bound_pool_legacy(job, now)
            selection, node = legacy.select(self._fleet, job, now, bound, reserve=self._reserve_locked)
            selection = self._finish(selection, node, now)
        self._metrics.observe("select_s", time.perf_counter() - start)
        self._record_session(job, entry, selection.node_id)
        return selection

    def _select_fast(self, job: JobRequest) -> Selection:
        snap = self._publisher.current_if(self._fleet.topology_version)
        if snap is None:
            snap = self.snapshot()
        return self._dispatch.select(snap, job, self._clock(), bind_session=self._flags.use_session_runtime)

    def _count_failure(self, reason: Reason | None) -> None:
        self._metrics.inc("selections")
        self._metrics.inc("selections_failed")
        self._metrics.inc(f"failed.{reason}")

    # -- sessions (docs/DESIGN.md §5, pool order) ---------------------------------------------

    @property
    def sessions(self) -> SessionRuntimeManager:
        """The session runtime manager (used when ``flags.use_session_runtime``)."""
        return self._sessions

    def _bound_pool_legacy(self, job: JobRequest, now: float) -> tuple[SessionEntry | None, int | None]:
        """The session entry and bound pool, found with the legacy scan (registry lock held)."""
        if not (self._flags.use_session_runtime and job.session_id is not None):
            return None, None
        fleet = self._fleet

        def eligible() -> list[int]:
            if not fleet.cfg.two_level or not fleet.pools:
                return []
            return [p.pool_id for p in legacy.candidate_pools(fleet, job)[0]]

        if self._dispatch is not None:  # one session table per registry, whichever path serves
            cfg = fleet.cfg
            bound = self._dispatch.bind_listed(
                job, eligible, cfg.enable_session_affinity, cfg.hash_seed, fleet.topology_version, now
            )
            return None, bound
        return self._sessions.bind(job, eligible, fleet.cfg, fleet.topology_version, now)

    def _record_session(self, job: JobRequest, entry: SessionEntry | None, node_id: str | None) -> None:
        """Remember the node a session's job went to, in the table that holds the session."""
        if self._dispatch is None:
            self._sessions.record(entry, node_id)
        elif node_id is not None and job.session_id is not None and self._flags.use_session_runtime:
            self._dispatch.note_session_node(job.session_id, node_id)

    def _reserve_locked(self, node: NodeRecord) -> bool:
        return self._loads.try_reserve(node.slot, node.info.max_concurrent_jobs)

    def _finish(self, selection: Selection, node: NodeRecord | None, now: float) -> Selection:
        """Count the selection; give a reserved node's selection its token."""
        self._metrics.inc("legacy_selections")  # the fast path's share is the rest
        if node is None:
            self._metrics.inc("legacy_selections_failed")
            self._count_failure(selection.breakdown.top_reason)
            return selection
        self._metrics.inc("selections")
        token = self._reservations.add(node.node_id, node.slot, node.serial, now)
        return selection.with_reservation(token)

    def _shadow(self, job: JobRequest, *, serve_fast: bool) -> None:
        """Compute the path not served, reserving nothing, and count a difference."""
        if not _compat.HAVE_HOTPATH:
            return
        with self._locked("shadow_compare"):
            # the registry lock keeps the topology, heartbeats and the legacy
            # path still; what moves without it (fast-path reservations, token
            # ends) is stamped, so both computations are known to see one moment
            stamp = self._load_stamp()
            now = self._clock()
            _entry, bound = self._bound_pool_legacy(job, now)
            other_legacy, _ = legacy.select(self._fleet, job, now, bound)
            snap = self._publish_locked()
            other_fast, _ = fast.select(snap, job, now, bound_pool=bound, reserve=False)
            moved = self._load_stamp() != stamp or stamp[0] > 0
        if moved:  # not comparable: another thread changed the loads in between
            self._metrics.inc("shadow_skipped")
            return
        self._metrics.inc("shadow_compared")
        if other_legacy.decision() != other_fast.decision():
            self._metrics.inc("shadow_mismatch")
            logs.shadow_mismatch(
                job.src_lang, job.tgt_lang, job.session_id, "fast" if serve_fast else "legacy",
                other_fast.node_id, other_legacy.node_id, other_fast.explain(), other_legacy.explain(),
            )

    def _load_stamp(self) -> tuple[int, int, int]:
        """``(in_flight, changes, legacy token ends)``: what changes the load
        table without the registry lock — fast-path decisions (in flight, and
        begun), their token ends and expiries, and legacy token ends."""
        in_flight, changes = (0, 0) if self._dispatch is None else self._dispatch.activity()
        return (in_flight, changes, self._token_ends)

    def select_node_from_pool(
        self, pool_id: int, job: JobRequest, snapshot: RuntimeSnapshot | None = None
    ) -> Selection:
        """Place a job in one given pool only (eligible or not), and reserve.

        ``snapshot`` (fast path) pins the generation to read; by default the
        current one. It must be a snapshot this registry published.
        """
        _require(job, JobRequest, "job", InvalidRequestError)
        _check_pool_id(pool_id)
        if snapshot is not None:
            _require(snapshot, RuntimeSnapshot, "snapshot", InvalidRequestError)
            if snapshot.loads is not self._loads:  # its reservations would land elsewhere
                raise InvalidRequestError(
                    f"snapshot version {snapshot.version} was published by another registry"
                )
        if snapshot is not None or self._fast(job):
            snap = self.snapshot() if snapshot is None else snapshot
            if not isinstance(snap, RuntimeSnapshot) or snap.loads is not self._loads:
                raise InvalidRequestError("snapshot must be a RuntimeSnapshot of this registry")
            if snap.compiled is None or self._dispatch is None:
                raise fast.FastPathUnavailable("the fast path needs pyscheduler._hotpath (not built or disabled)")
            if pool_id not in snap.pool_index:
                raise UnknownPoolError(f"unknown pool id {pool_id!r}")
            return self._dispatch.select(snap, job, self._clock(), -1, snap.pool_index[pool_id])
        with self._locked("select_node_from_pool"):
            pool = self._fleet.pool(pool_id)
            now = self._clock()
            selection, node = legacy.select_from_pool(self._fleet, pool, job, now, self._reserve_locked)
            return self._finish(selection, node, now)

    def select_nodes_batch(self, jobs: Sequence[JobRequest] | JobColumns) -> SelectionBatch:
        """Place many jobs in order, each seeing the reservations of those before it.

        ``jobs`` is a sequence of ``JobRequest`` or a ``JobColumns``. Returns a
        ``SelectionBatch``: a ``Sequence[Selection]`` (items made when read)
        with numpy columns (node, pool, token, top reason per job). On the fast
        path the whole batch is one compiled call, its kernel run for every
        job with the GIL released.
        """
        columns = jobs if isinstance(jobs, JobColumns) else None
        job_list = None if columns is not None else _job_list(jobs)
        if self._fast():
            snap = self.snapshot()
            answer = self._dispatch.select_batch(
                snap, job_list, None if columns is None else columns.dispatch_columns(), self._clock(),
                self._flags.use_session_runtime,
            )
            return SelectionBatch._from_fast(snap, answer)
        if job_list is None:
            job_list = list(columns)
        with self._locked("select_nodes_batch"):
            now = self._clock()
            out, bindings = [], []
            try:
                for job in job_list:
                    entry, bound_pool = self._bound_pool_legacy(job, now)
                    selection, node = legacy.select(self._fleet, job, now, bound_pool, reserve=self._reserve_locked)
                    out.append(self._finish(selection, node, now))
                    bindings.append((entry, bound_pool))
            except BaseException:  # all or nothing: give back what the batch reserved
                for selection in out:
                    if selection.reservation is not None:
                        self._reservations.end(selection.reservation, commit=False)
                raise
        for job, (entry, _), selection in zip(job_list, bindings, out):
            self._record_session(job, entry, selection.node_id)
        return SelectionBatch.from_selections(out)

    # -- reservations ------------------------------------------------------------------

    def commit(self, selection_or_token: Selection | int) -> bool:
        """The node took the job: its reservation becomes a running job (until the
        node's next heartbeat reports its own count). False if the reservation
        had already ended (released, committed, expired, node removed), or if
        the token is not one this registry gave out (forged, another registry's)."""
        if self._dispatch is not None:
            ended = self._dispatch.end(selection_or_token, True)
            if ended >= 0:
                return ended == 1
        ended = self._reservations.end(_token(selection_or_token), commit=True)
        if ended:
            self._token_ends += 1
            self._metrics.inc("commits")
        return ended

    def release(self, selection_or_token: Selection | int) -> bool:
        """Give a reservation back without running the job. False if it had
        ended, or is not one this registry gave out."""
        if self._dispatch is not None:
            ended = self._dispatch.end(selection_or_token, False)
            if ended >= 0:
                return ended == 1
        ended = self._reservations.end(_token(selection_or_token), commit=False)
        if ended:
            self._token_ends += 1
            self._metrics.inc("releases")
        return ended

    def commit_batch(self, tokens: Any) -> np.ndarray:
        """:meth:`commit` for each token, in order, in one call: a bool array,
        True where the token's reservation became a running job. ``tokens`` is
        an integer array, a sequence of tokens (ints, or ``Selection`` objects)
        or a ``SelectionBatch`` (its ``tokens``). A value that names no live
        reservation (0, forged, reused, another registry's) gives False; a
        value that is not a token at all (a str, a float, None, a bool) raises
        ``InvalidRequestError`` before anything ends."""
        return self._end_batch(tokens, commit=True)

    def release_batch(self, tokens: Any) -> np.ndarray:
        """:meth:`release` for each token, in order, in one call (see :meth:`commit_batch`)."""
        return self._end_batch(tokens, commit=False)

    def _end_batch(self, tokens: Any, *, commit: bool) -> np.ndarray:
        values = _token_array(tokens)
        n = len(values)
        if self._dispatch is not None:
            status = np.empty(n, dtype=np.int8)
            self._dispatch.end_batch(values, commit, status)
            ended = status == 1
            others = np.flatnonzero(status < 0).tolist()  # not the compiled table's: the legacy one's
        else:
            ended = np.zeros(n, dtype=np.bool_)
            others = range(n)
        for i in others:
            token = int(values[i])
            if token and self._reservations.end(token, commit=commit):
                ended[i] = True
                self._token_ends += 1
                self._metrics.inc("commits" if commit else "releases")
        return ended

    # -- reading -------------------------------------------------------------------------

    def get_node(self, node_id: str) -> NodeView:
        """A read-only view of one node (disconnected nodes are still visible, OFFLINE)."""
        with self._locked("get_node"):
            record = self._fleet.nodes.get(node_id) if isinstance(node_id, str) else None
            if record is None:
                raise UnknownNodeError(f"unknown node id {node_id!r}")
            return record.view()

    def node_ids(self) -> list[str]:
        """Every known node id (disconnected ones included), sorted."""
        with self._locked("node_ids"):
            return sorted(self._fleet.nodes)

    def pools(self) -> list[PoolConfig]:
        """Every pool, configured and generated, by id."""
        with self._locked("pools"):
            return self._fleet.ordered_pools()

    def pool_members(self, pool_id: int) -> list[str]:
        """The node ids in a pool, sorted."""
        _check_pool_id(pool_id)
        with self._locked("pool_members"):
            self._fleet.pool(pool_id)
            return list(self._fleet.members[pool_id])

    def verify_consistency(self) -> list[str]:
        """Differences between the legacy structures, the management state and the
        published snapshot, field by field; empty when consistent.

        Checked: membership and reservation counts against a recomputation from
        the nodes; the compiled heartbeat's table of steady nodes against the
        records; with the management registry on, every node entry, pool,
        member list and config against the legacy side; a current snapshot
        against a fresh build from the same state."""
        with self._locked("verify_consistency"):
            problems = fleet_problems(self._fleet, self._reservations)
            if self._steady is not None:
                problems += steady_problems(self._fleet, self._steady)
            if self._mirror.serving(self._flags):
                problems += management_problems(self._fleet, self._mirror.capture())
            snap = self._publisher.current_if(self._fleet.topology_version)
            if snap is not None:
                problems += snapshot_problems(snap, self._fleet)
            return problems

    def metrics(self) -> dict:
        """Counters, histograms (select latency, lock waits) and current sizes.

        Every key is described in ``docs/OPERATIONS.md``. A gauge that the
        path in use does not keep is ``None`` (not 0 or -1): ``snapshot_version``
        before any snapshot was built, ``management_in_sync`` without the
        management registry, ``sessions`` without the session runtime.
        """
        with self._locked("metrics"):
            out = self._metrics.snapshot()
            out["counters"] = _merged_counters(out["counters"], self._dispatch, self._steady)
            snap = self._publisher.current
            connected = [r for r in self._fleet.nodes.values() if not r.disconnected]
            by_status = Counter(r.status.value for r in connected)
            flags = self._flags
            out["gauges"] = {
                "nodes": len(connected),
                "nodes_ready": by_status[NodeStatus.READY.value],
                "nodes_by_status": {s.value: by_status[s.value] for s in NodeStatus},
                "pools": len(self._fleet.pools),
                "generated_pools": len(self._fleet.generated),
                "reservations": len(self._reservations),
                "sessions": len(self._sessions) if flags.use_session_runtime else None,
                "topology_version": self._fleet.topology_version,
                "snapshot_version": None if snap is None else snap.version,
                "management_in_sync": (
                    not self._mirror.stale
                    if self._mirror.exists and flags.use_management_registry
                    else None
                ),
                "path": "fast" if self._fast() else "legacy",
            }
            return out


def _log_status_changes(
    pairs: list[tuple[str, Heartbeat]], befores: list[NodeStatus], statuses: list[NodeStatus]
) -> None:
    """Log each status change of a burst once (a node may beat twice in one burst)."""
    last: dict[str, NodeStatus] = {}
    for (node_id, _), before, status in zip(pairs, befores, statuses):
        before = last.get(node_id, before)
        last[node_id] = status
        if status is not before:
            logs.node_status_changed(node_id, before, status, "heartbeat")


_ALWAYS_COUNTED = (
    "commits", "releases", "reservations_expired", "selections", "selections_failed",
    "shadow_compared", "shadow_mismatch", "shadow_skipped", *(f"failed.{r}" for r in Reason), "failed.None",
)


def _merged_counters(counters: dict[str, int], dispatch: Any, steady: Any = None) -> dict[str, int]:
    """The registry's counters plus the compiled dispatcher's, every dispatch
    counter present (at 0 before its first event), and ``heartbeats`` counting
    the beats applied in one compiled call too (present once one was applied)."""
    merged = dict.fromkeys(_ALWAYS_COUNTED, 0)
    for name, n in counters.items():
        merged[name] = merged.get(name, 0) + n
    if steady is not None and steady.applied:
        merged["heartbeats"] = merged.get("heartbeats", 0) + steady.applied
    if dispatch is not None:
        for name, n in dispatch.counters().items():
            merged[name] = merged.get(name, 0) + n
    return dict(sorted(merged.items()))


_warned_reference_path = False


def _default_flags() -> MigrationFlags:
    """Every flag on when the compiled extension is built; otherwise the
    reference (legacy) path, said once in the log."""
    global _warned_reference_path
    if _compat.HAVE_HOTPATH:
        return MigrationFlags.all_on()
    if not _warned_reference_path:
        _warned_reference_path = True
        reason = "disabled by PYSCHEDULER_NO_EXTENSIONS" if not _compat.USE_EXTENSIONS else "not built"
        logs.reference_path(reason)
    return MigrationFlags.legacy()


def _heartbeat_pairs(beats: Iterable[tuple[str, Heartbeat]]) -> list[tuple[str, Heartbeat]]:
    """``beats`` as a list of ``(node_id, Heartbeat)`` pairs, or InvalidHeartbeatError."""
    try:
        pairs = list(beats)
    except TypeError:
        pairs = None
    if pairs is None or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise InvalidHeartbeatError(
            f"beats must be an iterable of (node_id, Heartbeat) pairs, got {beats!r:.200}"
        )
    for node_id, hb in pairs:
        _require(hb, Heartbeat, f"the heartbeat for {node_id!r}", InvalidHeartbeatError)
    return pairs


def _job_list(jobs: Iterable[JobRequest]) -> list[JobRequest]:
    """``jobs`` as a list of JobRequest, or InvalidRequestError (nothing reserved yet)."""
    if isinstance(jobs, (str, bytes, JobRequest)):
        raise InvalidRequestError(f"jobs must be a sequence of JobRequest, got {jobs!r:.200}")
    try:
        jobs = list(jobs)
    except TypeError:
        raise InvalidRequestError(f"jobs must be a sequence of JobRequest, got {jobs!r:.200}") from None
    for job in jobs:
        _require(job, JobRequest, "job", InvalidRequestError)
    return jobs


def _check_node_id(node_id: object) -> None:
    """A node id is a string; anything else names no node."""
    if not isinstance(node_id, str):
        raise UnknownNodeError(f"unknown node id {node_id!r:.200} (node ids are strings)")


def _check_pool_id(pool_id: object) -> None:
    """A pool id is an int; anything else names no pool."""
    if isinstance(pool_id, bool) or not isinstance(pool_id, int):
        raise UnknownPoolError(f"unknown pool id {pool_id!r:.200} (pool ids are integers)")


def _check_time(value: object, name: str) -> float:
    """A finite number of seconds (a string such as ``"1e12"`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidRequestError(f"{name} must be a number of seconds, got {value!r:.200}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidRequestError(f"{name} must be finite, got {value!r:.200}")
    return seconds


def _require(value: object, cls: type, name: str, error: type[Exception]) -> None:
    if not isinstance(value, cls):
        raise error(f"{name} must be a {cls.__name__}, got {value!r}")


def _token(selection_or_token: Selection | int) -> int | None:
    if isinstance(selection_or_token, Selection):
        return selection_or_token.reservation
    if isinstance(selection_or_token, int) and not isinstance(selection_or_token, bool):
        return selection_or_token
    raise InvalidRequestError(f"expected a Selection or a reservation token, got {selection_or_token!r}")


_TOKEN_MAX = (1 << 64) - 1


def _token_array(tokens: Any) -> np.ndarray:
    """``tokens`` as a contiguous uint64 array for ``commit_batch``/``release_batch``:
    0 (never a token) for ``None`` reservations and for integers no token can
    equal (negative, past 64 bits); InvalidRequestError for anything not a token."""
    if isinstance(tokens, SelectionBatch):
        return np.ascontiguousarray(tokens.tokens, dtype=np.uint64)
    if isinstance(tokens, np.ndarray):
        if tokens.ndim != 1:
            raise InvalidRequestError(f"tokens must be a one-dimensional array, got shape {tokens.shape}")
        if tokens.dtype.kind == "u":
            return np.ascontiguousarray(tokens, dtype=np.uint64)
        if tokens.dtype.kind == "i":
            return np.where(tokens < 0, 0, tokens).astype(np.uint64)
        if tokens.dtype.kind != "O":
            raise InvalidRequestError(f"tokens must be an integer array, got dtype {tokens.dtype}")
        tokens = tokens.tolist()
    if isinstance(tokens, (str, bytes, Selection)) or not isinstance(tokens, Iterable):
        raise InvalidRequestError(f"tokens must be a sequence of reservation tokens, got {tokens!r:.200}")
    values = []
    for i, token in enumerate(tokens):
        if isinstance(token, Selection):
            token = 0 if token.reservation is None else token.reservation
        elif isinstance(token, np.integer):
            token = int(token)
        elif isinstance(token, bool) or not isinstance(token, int):
            raise InvalidRequestError(f"tokens[{i}] must be a reservation token (an int), got {token!r:.200}")
        values.append(token if 0 <= token <= _TOKEN_MAX else 0)
    return np.array(values, dtype=np.uint64)
