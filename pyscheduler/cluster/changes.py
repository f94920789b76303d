"""The writer's queue: what the listener saw change locally, in order.

Dispatcher threads put items here (through the listener); the writer thread
takes them in batches. Each kind of local change is its own small type, with
fields that mean one thing each. The queue is bounded: an item that does not
fit is dropped and the overflow flag set, and the writer then republishes
every owned node whole, which covers whatever was dropped.

Load-only heartbeats are coalesced per node: while a node's :class:`Beat` is
queued, later beats only replace its figures (under the coalescing lock); any
other change of the node closes the window (:meth:`ChangeQueue.cut`), so the
order of a node's changes is kept.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Literal

from ..domain.model import Heartbeat, NodeInfo, NodeStatus
from .counters import Counters

__all__ = [
    "Beat",
    "BeatWithInfo",
    "ChangeQueue",
    "NodeAction",
    "QueueItem",
    "Registered",
    "Republish",
    "StatusChanged",
]


@dataclass(slots=True)
class Beat:
    """A load-only heartbeat of an owned node. While queued, the listener
    replaces its figures with each later load-only beat of the node."""

    node_id: str
    heartbeat: Heartbeat
    status: NodeStatus
    at: float  # wall-clock time of the latest beat


@dataclass(frozen=True, slots=True)
class BeatWithInfo:
    """A heartbeat of an owned node that changed its services or languages."""

    node_id: str
    heartbeat: Heartbeat
    status: NodeStatus
    at: float


@dataclass(frozen=True, slots=True)
class Registered:
    """A node registered here: this instance owns it from now on."""

    node_id: str
    info: NodeInfo
    at: float


@dataclass(frozen=True, slots=True)
class NodeAction:
    """Drain, disconnect or remove. ``forced``: an operator acted here on a node
    owned elsewhere, so the script skips its owner check."""

    action: Literal["drain", "disc", "rm"]
    node_id: str
    forced: bool
    status: NodeStatus | None
    at: float


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A time-based status change of an owned node (``sweep``): the hash only."""

    node_id: str
    status: NodeStatus
    at: float


@dataclass(frozen=True, slots=True)
class Republish:
    """Write an owned node whole (Redis lost its hash, or it is missing)."""

    node_id: str
    at: float


QueueItem = Beat | BeatWithInfo | Registered | NodeAction | StatusChanged | Republish


class ChangeQueue:
    """A bounded FIFO of :data:`QueueItem` with per-node heartbeat coalescing,
    and the event that wakes the writer."""

    def __init__(self, size: int, counters: Counters) -> None:
        self._items: collections.deque[QueueItem] = collections.deque()
        self._size = size
        self._counters = counters
        self._pending: dict[str, Beat] = {}  # node id -> its queued load-only beat
        self._pending_lock = threading.Lock()
        self.overflow = False
        self.wake = threading.Event()

    def __len__(self) -> int:
        return len(self._items)

    def submit(self, item: QueueItem) -> None:
        """Queue a local change (dispatcher threads); never blocks: a full queue
        sets :attr:`overflow` instead."""
        if len(self._items) >= self._size:
            self.overflow = True
            self._counters.count("queue_overflows")
        else:
            self._items.append(item)
        if not self.wake.is_set():
            self.wake.set()

    def push(self, item: QueueItem) -> None:
        """Queue work of the sync's own threads (a republish, a removal), past the bound."""
        self._items.append(item)
        self.wake.set()

    def beat(self, node_id: str, heartbeat: Heartbeat, status: NodeStatus, at: float) -> None:
        """Queue a load-only beat, or fold it into the node's beat already queued."""
        with self._pending_lock:
            queued = self._pending.get(node_id)
            if queued is not None:
                queued.heartbeat = heartbeat
                queued.status = status
                queued.at = at
                return
            queued = Beat(node_id, heartbeat, status, at)
            self._pending[node_id] = queued
        self.submit(queued)

    def claim(self, beat: Beat) -> tuple[Heartbeat, NodeStatus, float]:
        """Close ``beat``'s coalescing window (the writer took it) and read its
        figures, both under the coalescing lock."""
        with self._pending_lock:
            if self._pending.get(beat.node_id) is beat:
                del self._pending[beat.node_id]
            return beat.heartbeat, beat.status, beat.at

    def cut(self, node_id: str) -> None:
        """Close the node's coalescing window (its next beat is queued anew)."""
        if self._pending:
            with self._pending_lock:
                self._pending.pop(node_id, None)

    def clear_pending(self) -> None:
        """Close every coalescing window (a republish writes every node whole)."""
        with self._pending_lock:
            self._pending.clear()

    def take(self, most: int) -> list[QueueItem]:
        """Up to ``most`` items, oldest first."""
        items = self._items
        out: list[QueueItem] = []
        for _ in range(min(len(items), most)):
            try:
                out.append(items.popleft())
            except IndexError:
                break
        return out
