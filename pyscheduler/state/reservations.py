"""Reservation tokens (docs/DESIGN.md §5, Pick): a selection holds a place on its node
until ``commit``, ``release`` or ``reservation_ttl_s``.

The counters themselves live in the load table (both paths reserve there,
atomically); this table maps tokens to the slot they hold. It has its own
small lock, below the registry lock in the lock order, so the fast path can
record a reservation without touching the management lock.

A token remembers the registration (``serial``) it was made for. It only
ever changes the counters of that registration: if the node was removed, or
its slot passed to another node, ending the token changes nothing.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import NamedTuple

from .loads import LoadTableLike

__all__ = ["Reservations"]


class _Token(NamedTuple):
    """What a token holds (stored as a plain tuple in this order)."""

    node_id: str
    slot: int
    serial: int
    created_at: float


class Reservations:
    """Live reservation tokens and the owner (registration serial) of each slot."""

    def __init__(self, loads: LoadTableLike) -> None:
        self._loads = loads
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[str, int, int, float]] = {}
        self._owners: dict[int, int] = {}  # slot -> serial of the node holding it
        self._next = itertools.count(1)

    def __len__(self) -> int:
        return len(self._tokens)

    # -- slots ---------------------------------------------------------------------

    def claim_slot(self, slot: int, serial: int) -> None:
        with self._lock:
            self._owners[slot] = serial

    def free_slot(self, slot: int) -> None:
        """The slot's node left: drop its tokens (their places are given back)."""
        with self._lock:
            serial = self._owners.pop(slot, None)
            dead = [t for t, tok in self._tokens.items() if tok[1] == slot and tok[2] == serial]
            for token in dead:
                self._tokens.pop(token)
                self._loads.unreserve(slot)

    # -- tokens --------------------------------------------------------------------

    def add(self, node_id: str, slot: int, serial: int, now: float) -> int:
        """Record a reservation already counted in the load table; return its token."""
        token = next(self._next)
        with self._lock:
            self._tokens[token] = (node_id, slot, serial, now)  # a _Token's fields, built cheaply
        return token

    def end(self, token: int | None, *, commit: bool) -> bool:
        """Commit (reserved → running) or release a token; False if it had ended."""
        if token is None:
            return False
        with self._lock:
            tok = self._tokens.pop(token, None)
            tok = None if tok is None else _Token._make(tok)
            if tok is None or self._owners.get(tok.slot) != tok.serial:
                return False
            if commit:
                return self._loads.commit(tok.slot)
            return self._loads.unreserve(tok.slot)

    def expire(self, now: float, ttl_s: float) -> int:
        """Release every token older than ``ttl_s``; return how many."""
        with self._lock:
            old = [t for t, tok in self._tokens.items() if now - tok[3] > ttl_s]
            for token in old:
                tok = _Token._make(self._tokens.pop(token))
                if self._owners.get(tok.slot) == tok.serial:
                    self._loads.unreserve(tok.slot)
            return len(old)

    def held_by(self) -> Counter[tuple[int, int]]:
        """Live tokens per (slot, serial) — for the consistency check."""
        with self._lock:
            return Counter((tok[1], tok[2]) for tok in self._tokens.values())
