"""One node's mutable registry state and its lifecycle (docs/DESIGN.md §6).

:class:`NodeRecord` is owned by whichever structure holds the node (the
legacy registry, later the management state) and is only touched under that
owner's lock. The transition functions here are the single definition of the
lifecycle; the registry calls them, never re-implements them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .. import _compat
from ..domain.config import CoreServicesConfig
from ..domain.model import (
    CORE_TYPES,
    Heartbeat,
    InstalledService,
    LanguageCapabilities,
    NodeInfo,
    NodeStatus,
    NodeView,
    ServiceState,
    ServiceType,
)
from .loads import LoadTableLike

__all__ = [
    "Membership", "NodeRecord", "STATUS_CODES", "SteadyGate", "UNHEALTHY_BEATS_TO_DEGRADE", "is_healthy",
    "provides",
]

UNHEALTHY_BEATS_TO_DEGRADE = 3
_READY = NodeStatus.READY
_RUNNING = ServiceState.RUNNING
_CORE_MASK = CORE_TYPES.value

_CODES = _compat.KERNEL_CODES
STATUS_CODES = {
    NodeStatus.READY: _CODES["ST_READY"],
    NodeStatus.REGISTERING: _CODES["ST_NOT_READY"],
    NodeStatus.DEGRADED: _CODES["ST_NOT_READY"],
    NodeStatus.DRAINING: _CODES["ST_NOT_READY"],
    NodeStatus.OFFLINE: _CODES["ST_OFFLINE"],
}


def installed_types(services: tuple[InstalledService, ...]) -> ServiceType:
    """The types of all installed services, whatever their state."""
    mask = 0
    for s in services:
        mask |= s.type.value  # int arithmetic: an enum ``|`` per service costs ~1 µs
    return ServiceType(mask)


def is_healthy(services: tuple[InstalledService, ...]) -> bool:
    """Whether a beat reporting ``services`` is healthy: its usages are finite in
    [0, 100] (every Heartbeat guarantees it), at least one core type is
    installed, and every installed core *type* is RUNNING — some service of
    that type runs (a stopped spare beside a running one is fine)."""
    installed = running = 0  # int arithmetic: an enum ``|`` per service costs ~1 µs
    for s in services:
        kind = s.type.value & _CORE_MASK
        if kind:
            installed |= kind
            if s.state is _RUNNING:
                running |= kind
    return bool(installed) and running == installed


def provides(services: tuple[InstalledService, ...], kind: ServiceType, core: CoreServicesConfig) -> bool:
    """Whether a RUNNING service of ``kind`` is installed (with the configured core id, if any)."""
    wanted_id = core.service_id_for(kind)
    for s in services:
        if s.type == kind and s.state is ServiceState.RUNNING and (wanted_id is None or s.service_id == wanted_id):
            return True
    return False


class SteadyGate(Protocol):
    """Where a record announces that it is (or stops being) *steady*: a
    load-only, healthy beat would change nothing but its load record. With the
    extension built this is ``_hotpath.SteadyBeats``, which then applies such
    beats in one compiled call (docs/HOTPATH.md, "Heartbeats in one call")."""

    def admit(self, node_id: str, slot: int) -> None: ...
    def evict(self, node_id: str, slot: int) -> None: ...


class Membership:
    """Every node's pool ids, by node id: one table for a whole fleet.

    The records of a fleet share it (``NodeRecord.pool_ids`` reads and writes
    it), so a config change installs every node's new membership by swapping
    :attr:`by_node` — one reference assignment under the owner's lock instead
    of a write per node. A node in no pool has no entry.
    """

    __slots__ = ("by_node",)

    def __init__(self, by_node: dict[str, tuple[int, ...]] | None = None) -> None:
        self.by_node: dict[str, tuple[int, ...]] = {} if by_node is None else by_node


@dataclass(eq=False, slots=True)
class NodeRecord:
    """Everything the registry knows about one node.

    The load figures (running, reserved, usages, last heartbeat) live in the
    shared load table at ``slot``, where both selection paths read them;
    ``serial`` tells this registration apart from any later one of the same id.
    """

    info: NodeInfo
    registered_at: float
    slot: int
    serial: int
    loads: LoadTableLike
    _status: NodeStatus = NodeStatus.REGISTERING
    warmup_since: float = 0.0  # when the node last entered REGISTERING
    unhealthy_streak: int = 0
    draining: bool = False
    disconnected: bool = False
    membership: Membership | None = None  # the owning fleet's table (see Membership)
    services: tuple[InstalledService, ...] = field(default=())
    services_healthy: bool = False  # is_healthy(services), kept with services
    capabilities: LanguageCapabilities = field(default_factory=LanguageCapabilities)
    gate: SteadyGate | None = field(default=None, repr=False)  # told when the record enters or leaves the steady state
    in_gate: bool = field(default=False, repr=False)  # admitted to ``gate`` (== self.steady when there is a gate)

    @classmethod
    def new(
        cls, info: NodeInfo, now: float, slot: int, serial: int, loads: LoadTableLike,
        gate: SteadyGate | None = None,
    ) -> NodeRecord:
        """A REGISTERING record; registration time counts as the first heartbeat."""
        loads.ensure(slot)
        loads.reset(slot, now)
        return cls(
            gate=gate,
            info=info,
            registered_at=now,
            warmup_since=now,
            slot=slot,
            serial=serial,
            loads=loads,
            services=info.installed_services,
            services_healthy=is_healthy(info.installed_services),
            capabilities=info.language_capabilities,
        )

    @property
    def node_id(self) -> str:
        assert self.info.node_id is not None
        return self.info.node_id

    @property
    def pool_ids(self) -> tuple[int, ...]:
        """The pools this node belongs to, sorted (read from its fleet's membership table)."""
        membership = self.membership
        return () if membership is None else membership.by_node.get(self.node_id, ())

    @pool_ids.setter
    def pool_ids(self, pool_ids: tuple[int, ...]) -> None:
        membership = self.membership
        if membership is None:  # a record no fleet holds keeps a table of its own
            membership = self.membership = Membership()
        if pool_ids:
            membership.by_node[self.node_id] = pool_ids
        else:
            membership.by_node.pop(self.node_id, None)

    @property
    def installed(self) -> ServiceType:
        return installed_types(self.services)

    @property
    def status(self) -> NodeStatus:
        return self._status

    @status.setter
    def status(self, status: NodeStatus) -> None:
        """Set the status and publish its code in the load table, where every
        snapshot generation reads it: a status change needs no new snapshot."""
        self._status = status
        self.loads.set_status(self.slot, STATUS_CODES[status])
        if self.gate is not None:
            self.sync_gate()

    @property
    def steady(self) -> bool:
        """Whether a load-only, healthy beat would change nothing but the load
        record: READY after a healthy beat, with healthy services, neither
        draining nor disconnected. Only such a node's beats may be applied
        without the registry lock (``SteadyGate``)."""
        return (
            self._status is _READY
            and self.unhealthy_streak == 0
            and self.services_healthy
            and not self.draining
            and not self.disconnected
        )

    def sync_gate(self) -> None:
        """Tell the gate when the record entered or left the steady state (the
        owner calls this, under its lock, after changing ``draining`` or
        ``disconnected``; status changes and beats call it themselves)."""
        gate = self.gate
        if gate is None:
            return
        steady = self.steady
        if steady is not self.in_gate:
            if steady:
                gate.admit(self.node_id, self.slot)
            else:
                gate.evict(self.node_id, self.slot)
            self.in_gate = steady

    def load(self) -> tuple[int, int, float, float, float | None, float]:
        """``(running, reserved, cpu, memory, gpu or None, last_heartbeat)`` now."""
        return self.loads.get(self.slot)

    @property
    def running(self) -> int:
        return self.loads.running(self.slot)

    @property
    def reserved(self) -> int:
        return self.loads.reserved(self.slot)

    @property
    def last_heartbeat(self) -> float:
        return self.loads.get(self.slot)[5]

    def apply_heartbeat(self, hb: Heartbeat, now: float) -> bool:
        """Apply a beat; return True when services or languages changed (topology)."""
        changed = False
        if hb.installed_services is not None and hb.installed_services != self.services:
            self.services = hb.installed_services
            changed = True
        if hb.language_capabilities is not None and hb.language_capabilities != self.capabilities:
            self.capabilities = hb.language_capabilities
            changed = True
        self.loads.set_load(self.slot, hb.cpu_usage, hb.memory_usage, hb.gpu_usage, hb.current_jobs, now)
        if changed:
            self.services_healthy = is_healthy(self.services)
        self._transition(self.services_healthy, now)
        if self.gate is not None:
            self.sync_gate()
        return changed

    def _transition(self, healthy: bool, now: float) -> None:
        """The heartbeat edges of the lifecycle."""
        self.unhealthy_streak = 0 if healthy else self.unhealthy_streak + 1
        status = self._status
        if healthy and status is _READY:
            return  # the steady state, first: nothing else can change
        if status is NodeStatus.OFFLINE:
            # re-admission of a node that timed out (disconnected nodes never get here)
            if self.draining:
                self.status = NodeStatus.DRAINING
            elif healthy:
                self.status = NodeStatus.READY
            else:  # back to warm-up: it gets a full warmup_s again
                self.status = NodeStatus.REGISTERING
                self.warmup_since = now
        elif status in (NodeStatus.REGISTERING, NodeStatus.DEGRADED):
            if healthy:
                self.status = NodeStatus.READY
        elif status is NodeStatus.READY:
            if self.unhealthy_streak >= UNHEALTHY_BEATS_TO_DEGRADE:
                self.status = NodeStatus.DEGRADED
        # DRAINING stays DRAINING: only the operator sets it, only removal ends it

    def sweep(self, now: float, timeout_s: float, warmup_s: float) -> bool:
        """Time-based edges; return True when the status changed."""
        if self.status is NodeStatus.OFFLINE or self.disconnected:
            return False
        if now - self.last_heartbeat > timeout_s:
            self.status = NodeStatus.OFFLINE
            return True
        if self.status is NodeStatus.REGISTERING and now - self.warmup_since > warmup_s:
            self.status = NodeStatus.DEGRADED
            return True
        return False

    def view(self) -> NodeView:
        running, reserved, cpu, memory, gpu, last_heartbeat = self.load()
        return NodeView(
            node_id=self.node_id,
            status=self.status,
            pool_ids=self.pool_ids,
            cpu_usage=cpu,
            memory_usage=memory,
            gpu_usage=gpu,
            running_jobs=running,
            reserved_jobs=reserved,
            max_concurrent_jobs=self.info.max_concurrent_jobs,
            last_heartbeat=last_heartbeat,
            registered_at=self.registered_at,
            draining=self.draining,
            info=self.current_info(),
        )

    def current_info(self) -> NodeInfo:
        """The registration info with the services and languages of the latest beats."""
        info = self.info
        if info.installed_services == self.services and info.language_capabilities == self.capabilities:
            return info
        return NodeInfo(
            info.node_id,
            info.has_gpu,
            info.accept_public_jobs,
            info.max_concurrent_jobs,
            self.services,
            self.capabilities,
            info.labels,
        )
