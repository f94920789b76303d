"""Reservation tokens (docs/DESIGN.md §5, Pick): a selection holds a place on its node
until ``commit``, ``release`` or ``reservation_ttl_s``.

The counters themselves live in the load table (both paths reserve there,
atomically); this table maps tokens to the slot they hold. It has its own
small lock, below the registry lock in the lock order, so the fast path can
record a reservation without touching the management lock.

A token remembers the registration (``serial``) it was made for. It only
ever changes the counters of that registration: if the node was removed, or
its slot passed to another node, ending the token changes nothing.

Tokens cannot be confused across registries: each table draws a random
19-bit epoch once and puts it in bits 44-62 of every token it gives out, so
a token from another registry (or a small guessed integer) names nothing
here. With the compiled extension the fast path keeps its reservations in
the compiled dispatcher's table (same rules, its own epoch); this table then
forwards slot ownership, expiry and the consistency counts to it, and keeps
the legacy path's tokens itself — the reference the fast path is tested
against.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import Counter
from typing import Any, NamedTuple

from .loads import LoadTableLike

__all__ = ["EPOCH_BITS", "EPOCH_SHIFT", "Reservations", "token_epoch"]

EPOCH_SHIFT = 44
"""Tokens carry their table's epoch from this bit up (the compiled table's layout too)."""
EPOCH_BITS = 19


def token_epoch(token: int) -> int:
    """The epoch a token was made under."""
    return token >> EPOCH_SHIFT


def _new_epoch(avoid: int | None) -> int:
    while True:
        epoch = secrets.randbits(EPOCH_BITS)
        if epoch and epoch != avoid:
            return epoch


class _Token(NamedTuple):
    """What a token holds (stored as a plain tuple in this order)."""

    node_id: str
    slot: int
    serial: int
    created_at: float


class Reservations:
    """Live reservation tokens and the owner (registration serial) of each slot."""

    def __init__(self, loads: LoadTableLike, compiled: Any = None) -> None:
        """``compiled``: the compiled dispatcher whose table holds the fast
        path's reservations (``None`` without the extension)."""
        self._loads = loads
        self._compiled = compiled
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[str, int, int, float]] = {}
        self._owners: dict[int, int] = {}  # slot -> serial of the node holding it
        self.epoch = _new_epoch(None if compiled is None else compiled.epoch)
        self._next = itertools.count((self.epoch << EPOCH_SHIFT) + 1)

    def __len__(self) -> int:
        """Live reservations, in both tables."""
        return len(self._tokens) + (0 if self._compiled is None else len(self._compiled))

    # -- slots ---------------------------------------------------------------------

    def claim_slot(self, slot: int, serial: int) -> None:
        with self._lock:
            self._owners[slot] = serial
            if self._compiled is not None:
                self._compiled.claim_slot(slot, serial)

    def free_slot(self, slot: int) -> None:
        """The slot's node left: drop its tokens (their places are given back)."""
        with self._lock:
            serial = self._owners.pop(slot, None)
            dead = [t for t, tok in self._tokens.items() if tok[1] == slot and tok[2] == serial]
            for token in dead:
                self._tokens.pop(token)
                self._loads.unreserve(slot)
            if self._compiled is not None:
                self._compiled.free_slot(slot)

    # -- tokens --------------------------------------------------------------------

    def add(self, node_id: str, slot: int, serial: int, now: float) -> int:
        """Record a reservation already counted in the load table; return its token."""
        token = next(self._next)
        with self._lock:
            self._tokens[token] = (node_id, slot, serial, now)  # a _Token's fields, built cheaply
        return token

    def end(self, token: int | None, *, commit: bool) -> bool:
        """Commit (reserved → running) or release a token of this table; False
        if it had ended, or was never this table's (forged, foreign)."""
        if token is None or token >> EPOCH_SHIFT != self.epoch:
            return False
        with self._lock:
            tok = self._tokens.pop(token, None)
            tok = None if tok is None else _Token._make(tok)
            if tok is None or self._owners.get(tok.slot) != tok.serial:
                return False
            if commit:
                return self._loads.commit(tok.slot)
            return self._loads.unreserve(tok.slot)

    def expire(self, now: float, ttl_s: float) -> tuple[int, int]:
        """Release every token older than ``ttl_s``, in both tables; return how
        many each expired: ``(this table, the compiled table)``. The compiled
        table counts its own in its counters; the caller counts this table's."""
        with self._lock:
            old = [t for t, tok in self._tokens.items() if now - tok[3] > ttl_s]
            for token in old:
                tok = _Token._make(self._tokens.pop(token))
                if self._owners.get(tok.slot) == tok.serial:
                    self._loads.unreserve(tok.slot)
            compiled = 0 if self._compiled is None else self._compiled.expire(now, ttl_s)
            return len(old), compiled

    def held_and_reserved(self, slots: list[int]) -> tuple[Counter[tuple[int, int]], list[int]]:
        """:meth:`held_by`, and the load table's reserved count of each of
        ``slots``, read together: no token ends between the two reads (legacy
        tokens end under this table's lock, the compiled table's in one C call)."""
        with self._lock:
            held = Counter((tok[1], tok[2]) for tok in self._tokens.values())
            if self._compiled is None:
                return held, [self._loads.reserved(slot) for slot in slots]
            compiled_held, reserved = self._compiled.held_and_reserved(slots)
            held.update(compiled_held)
            return held, reserved

    def held_by(self) -> Counter[tuple[int, int]]:
        """Live tokens per (slot, serial), both tables — for the consistency check."""
        with self._lock:
            held = Counter((tok[1], tok[2]) for tok in self._tokens.values())
            if self._compiled is not None:
                held.update(self._compiled.held())
            return held
