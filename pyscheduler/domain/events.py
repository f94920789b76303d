"""Change events: what a registry tells its subscribers after each local change.

``NodeRegistry.subscribe(listener)`` calls ``listener(event)`` after the
change is applied and every registry lock is released, in the thread that made
the change — so a listener may do I/O or enqueue work, but should be quick.
Cluster sync (``pyscheduler.cluster``) publishes them; tests and metrics
exporters can watch them too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .config import CoreServicesConfig, Phase3Config
from .model import Heartbeat, NodeInfo, NodeStatus

__all__ = ["ChangeKind", "RegistryEvent"]


class ChangeKind(str, enum.Enum):
    """What changed."""

    REGISTERED = "registered"  # info: the node as registered (id filled in)
    HEARTBEAT = "heartbeat"  # heartbeat: the beat applied; status: the status after it
    STATUS = "status"  # status: a time-based change made by sweep()
    DRAINING = "draining"
    DISCONNECTED = "disconnected"
    REMOVED = "removed"
    PHASE3_CONFIG = "phase3_config"  # phase3: the new config
    CORE_SERVICES_CONFIG = "core_services_config"  # core_services: the new config


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One local change of a registry."""

    kind: ChangeKind
    node_id: str | None = None
    info: NodeInfo | None = None
    heartbeat: Heartbeat | None = None
    status: NodeStatus | None = None
    phase3: Phase3Config | None = None
    core_services: CoreServicesConfig | None = None
