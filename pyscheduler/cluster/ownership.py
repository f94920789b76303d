"""The nodes this instance owns: the ones it publishes to Redis."""

from __future__ import annotations

import threading
import time

__all__ = ["Ownership"]


class Ownership:
    """Owned node ids, the ones disconnected locally, and when each last beat.

    Membership tests (``node_id in ownership``) take no lock: dispatcher threads
    make them on every heartbeat. Changes take the lock.
    """

    def __init__(self) -> None:
        self._owned: set[str] = set()
        self._disconnected: set[str] = set()
        self._beats: dict[str, float] = {}  # node id -> monotonic time of its last local beat
        self._lock = threading.Lock()

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._owned

    def __len__(self) -> int:
        return len(self._owned)

    def ids(self) -> list[str]:
        """The owned node ids, sorted."""
        with self._lock:
            return sorted(self._owned)

    def claim(self, node_id: str) -> None:
        """The node registered here (or was here when sync started): own it."""
        with self._lock:
            self._owned.add(node_id)
            self._disconnected.discard(node_id)
            self._beats[node_id] = time.monotonic()

    def beat(self, node_id: str) -> None:
        """An owned node beat just now."""
        self._beats[node_id] = time.monotonic()

    def disconnected(self, node_id: str) -> None:
        """An owned node was disconnected (it stays owned, but is not republished)."""
        with self._lock:
            if node_id in self._owned:
                self._disconnected.add(node_id)

    def drop(self, node_id: str) -> bool:
        """Stop owning the node; whether it was owned."""
        with self._lock:
            if node_id not in self._owned:
                return False
            self._owned.discard(node_id)
            self._disconnected.discard(node_id)
            self._beats.pop(node_id, None)
            return True

    def alive(self, node_id: str, timeout_s: float) -> bool:
        """Whether an owned node is connected and beat within ``timeout_s``."""
        if node_id in self._disconnected:
            return False
        last = self._beats.get(node_id)
        return last is not None and time.monotonic() - last < timeout_s
