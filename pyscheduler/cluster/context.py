"""What the listener, the writer and the reader of one sync share."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..registry.node_registry import NodeRegistry
from .changes import ChangeQueue
from .counters import Counters
from .keys import RedisKeys
from .ownership import Ownership

__all__ = ["SyncContext", "log", "text"]

log = logging.getLogger("pyscheduler.cluster")


def text(value: Any) -> str:
    """A value from Redis (bytes, usually) as a log field: a plain string."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(errors="replace")
    return str(value)


@dataclass(eq=False)
class SyncContext:
    """One instance's registry, identity and key names, and the state its
    threads share: the change queue, the owned nodes, the counters.

    ``echo_guard.applying_remote`` is set for the whole life of the writer and
    reader threads: the listener ignores changes made in such a thread (the
    registry calls listeners synchronously, in the thread that made the
    change), so nothing applied from Redis is ever published again.
    """

    registry: NodeRegistry
    instance_id: str
    keys: RedisKeys
    stream_maxlen: str
    queue: ChangeQueue
    counters: Counters
    owned: Ownership = field(default_factory=Ownership)
    echo_guard: threading.local = field(default_factory=threading.local)

    @property
    def id_bytes(self) -> bytes:
        """``instance_id`` as Redis returns it."""
        return self.instance_id.encode()

    def heartbeat_timeout_s(self) -> float:
        """The registry's current heartbeat timeout."""
        return self.registry.phase3_config.heartbeat_timeout_s

    def ttl_ms(self) -> str:
        """A node hash's time to live after its owner's last write, as a script argument."""
        return str(max(1, int(self.heartbeat_timeout_s() * 1000)))

    def disown(self, node_id: str, why: str) -> None:
        """Stop publishing an owned node (another instance owns it now)."""
        if not self.owned.drop(node_id):
            return
        self.queue.cut(node_id)
        self.counters.count("disowned")
        log.warning("cluster sync %s: node %s is no longer published from here: %s",
                    self.instance_id, node_id, why,
                    extra={"event": "cluster.node_disowned", "instance_id": self.instance_id,
                           "node_id": node_id, "reason": why})

    def mark_applying_remote(self) -> None:
        """Called first in the writer and reader threads (see ``echo_guard``)."""
        self.echo_guard.applying_remote = True

    def applying_remote(self) -> bool:
        """Whether the current thread is this sync's writer or reader."""
        return getattr(self.echo_guard, "applying_remote", False)
