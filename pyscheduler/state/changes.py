"""``ChangeLog``: which nodes changed, version by version, for delta snapshot publishing.

A snapshot generation is built from a state at one topology version. The next
generation can be derived from it by re-encoding only the nodes that changed
since (docs/HOTPATH.md, delta publish), if the record of those changes is
complete. The log keeps ``(version, node id)`` for every change of a node's
snapshot row or pool membership; a change it cannot describe node by node (a
config change, a new pool set, the core-services config) resets it, and so
does overflowing its size. :meth:`ChangeLog.since` answers ``None`` whenever the
record does not reach back to the version asked about: the caller then
rebuilds in full.

Plain state with no lock: its owner serialises every call.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["ChangeLog", "CHANGE_LOG_LIMIT"]

#: Node changes kept; beyond that the older half is forgotten (a generation that
#: old is rebuilt in full, which is as fast as a delta of that many nodes).
CHANGE_LOG_LIMIT = 512


class ChangeLog:
    """``(version, node id)`` records, complete for every version ``>= floor``."""

    __slots__ = ("_versions", "_ids", "_floor", "_limit")

    def __init__(self, version: int = 0, limit: int = CHANGE_LOG_LIMIT) -> None:
        self._versions: list[int] = []
        self._ids: list[str] = []
        self._floor = version
        self._limit = max(2, limit)

    @property
    def floor(self) -> int:
        """The oldest version whose changes are all recorded."""
        return self._floor

    def __len__(self) -> int:
        return len(self._ids)

    def node(self, version: int, node_id: str) -> None:
        """Record that ``node_id``'s row or memberships changed at ``version``
        (a version below the last recorded counts as the last: recording a change
        later than it happened only makes more generations rebuild it)."""
        if self._versions and version < self._versions[-1]:
            version = self._versions[-1]
        self._versions.append(version)
        self._ids.append(node_id)
        if len(self._ids) > self._limit:
            cut = len(self._ids) // 2
            self._floor = max(self._floor, self._versions[cut - 1] + 1)
            del self._versions[:cut], self._ids[:cut]

    def nodes(self, version: int, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.node(version, node_id)

    def reset(self, version: int) -> None:
        """A change not described node by node happened at ``version``: forget
        everything before it (a generation older than ``version`` is rebuilt)."""
        self._versions.clear()
        self._ids.clear()
        self._floor = max(self._floor, version)

    def since(self, version: int) -> frozenset[str] | None:
        """Every node changed at a version ``>= version``, or ``None`` when the
        record does not reach back that far."""
        if version < self._floor:
            return None
        start = bisect.bisect_left(self._versions, version)
        return frozenset(self._ids[start:])
