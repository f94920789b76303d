"""Node load records (running, reserved, usages, last heartbeat, status), one per slot.

Both selection paths read and update the same records, so a reservation made
on one path is seen by the other. With the extension built the table is
``_hotpath.LoadTable`` (fixed chunks, atomic counters, safe for ``nogil``
kernels); without it, :class:`PyLoadTable` has the same interface and relies on
the registry's locks.

Slots are handed out by :class:`SlotAllocator`. A freed slot is reused only
once no live snapshot generation can still reach it (see docs/HOTPATH.md).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Protocol

from .. import _compat

__all__ = ["LoadTableLike", "PyLoadTable", "SlotAllocator", "new_load_table"]


class LoadTableLike(Protocol):
    """What both load tables offer (the compiled one is described in ``_hotpath.pyi``)."""

    @property
    def capacity(self) -> int: ...

    def ensure(self, slot: int) -> None: ...
    def reset(self, slot: int, now: float) -> None: ...
    def set_load(self, slot: int, cpu_usage: float, memory_usage: float, gpu_usage: float | None,
                 running: int, last_heartbeat: float) -> None: ...
    def set_status(self, slot: int, status: int) -> None: ...
    def status(self, slot: int) -> int: ...
    def get(self, slot: int) -> tuple[int, int, float, float, float | None, float]: ...
    def running(self, slot: int) -> int: ...
    def reserved(self, slot: int) -> int: ...
    def try_reserve(self, slot: int, max_jobs: int) -> bool: ...
    def unreserve(self, slot: int) -> bool: ...
    def commit(self, slot: int) -> bool: ...


class PyLoadTable:
    """The pure-Python load table (no extension): same behaviour, one small lock."""

    def __init__(self) -> None:
        self._rows: list[list] = []
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return len(self._rows)

    def _row(self, slot: int) -> list:
        if not 0 <= slot < len(self._rows):
            raise IndexError(f"load slot {slot} out of range (capacity {len(self._rows)})")
        return self._rows[slot]

    def ensure(self, slot: int) -> None:
        if slot < 0:
            raise IndexError(f"load slot {slot} out of range")
        while len(self._rows) <= slot:
            self._rows.append([0, 0, 0.0, 0.0, None, 0.0, 1])

    def reset(self, slot: int, now: float) -> None:
        self._row(slot)[:] = [0, 0, 0.0, 0.0, None, float(now), 1]

    def set_load(self, slot: int, cpu_usage: float, memory_usage: float, gpu_usage: float | None,
                 running: int, last_heartbeat: float) -> None:
        row = self._row(slot)
        gpu = None if gpu_usage is None else float(gpu_usage)
        with self._lock:
            row[0] = int(running)
            row[2:6] = [float(cpu_usage), float(memory_usage), gpu, float(last_heartbeat)]

    def set_status(self, slot: int, status: int) -> None:
        if status not in (0, 1, 2):
            raise ValueError(f"status code {status} out of range")
        self._row(slot)[6] = status

    def status(self, slot: int) -> int:
        return self._row(slot)[6]

    def get(self, slot: int):
        return tuple(self._row(slot)[:6])

    def running(self, slot: int) -> int:
        return self._row(slot)[0]

    def reserved(self, slot: int) -> int:
        return self._row(slot)[1]

    def try_reserve(self, slot: int, max_jobs: int) -> bool:
        row = self._row(slot)
        with self._lock:
            if row[0] + row[1] >= max_jobs:
                return False
            row[1] += 1
            return True

    def unreserve(self, slot: int) -> bool:
        row = self._row(slot)
        with self._lock:
            if row[1] <= 0:
                return False
            row[1] -= 1
            return True

    def commit(self, slot: int) -> bool:
        row = self._row(slot)
        with self._lock:
            if row[1] <= 0:
                return False
            row[1] -= 1
            row[0] += 1
            return True


def new_load_table() -> LoadTableLike:
    """The compiled table when the extension is available, else the pure one."""
    if _compat.HAVE_HOTPATH:
        return _compat.hotpath.LoadTable()
    return PyLoadTable()


class SlotAllocator:
    """Hands out load slots; a freed slot waits until it is unreachable.

    ``free(slot, version)`` records that the node holding ``slot`` left at
    topology ``version``; any snapshot built before that may still point at
    it. ``allocate(oldest_live_version)`` reuses such a slot only when every
    live snapshot was built at or after that version, so no kernel can touch
    the slot while it belongs to another node.
    """

    def __init__(self) -> None:
        self._next = 0
        self._waiting: deque[tuple[int, int]] = deque()  # (version freed at, slot), oldest first

    def allocate(self, oldest_live_version: float = math.inf) -> int:
        if self._waiting and self._waiting[0][0] <= oldest_live_version:
            return self._waiting.popleft()[1]
        slot = self._next
        self._next += 1
        return slot

    def free(self, slot: int, version: int) -> None:
        self._waiting.append((version, slot))
