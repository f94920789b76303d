"""The session domain (docs/DESIGN.md §1): per-session runtime state behind per-session locks.

A session is bound, the first time it asks for a language pair, to the pool
the pool-order rule picks for it (the affinity hash or the first eligible
pool); later jobs of the session prefer that pool while it stays eligible
(docs/DESIGN.md §5, pool order). A pair change rebinds; a bound pool that is no
longer eligible is dropped, with a log line, and the session rebinds.

Entries expire after ``idle_ttl_s`` without use and the table keeps at most
``max_sessions`` (least recently used evicted), so memory stays flat under
millions of sessions.

With the compiled extension the fast path keeps its sessions in the
compiled dispatcher's session table instead (same rules: see
docs/HOTPATH.md); :meth:`SessionRuntimeManager.attach_compiled` makes this
manager report those too (``get``, ``len``, ``expire``), so the two paths
read alike. The legacy path's bindings stay here: the reference the
compiled table is tested against.

Lock order: the table lock and an entry's lock are taken after any registry
or management lock, never before one; no code here calls back into the
registry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain._validate import check_int, check_number
from ..domain.config import Phase3Config
from ..domain.errors import ConfigError
from ..domain.hashing import pool_hash
from ..domain.model import JobRequest, ServiceType
from . import logs

__all__ = ["SessionEntry", "SessionRuntimeManager", "binding_pool", "log_rebind"]


def log_rebind(session_id: str, pool_id: int, src: str, tgt: str) -> None:
    """The log event of a session whose bound pool is no longer eligible (the compiled
    session table calls it too, after it has released its own lock)."""
    logs.session_rebound(session_id, pool_id, src, tgt)


def binding_pool(eligible: Sequence[int], job: JobRequest, cfg: Phase3Config) -> int | None:
    """The pool a session binds to for this job's pair: with session affinity,
    index ``FNV-1a-64(key + seed) mod n`` of the eligible list, else its first."""
    if not eligible:
        return None
    if cfg.enable_session_affinity:
        return eligible[pool_hash(job.key, cfg.hash_seed) % len(eligible)]
    return eligible[0]


@dataclass(eq=False)
class SessionEntry:
    """One session's runtime state. The binding fields are read and written under
    ``lock``; ``last_node`` and ``last_seen`` are single reference stores."""

    session_id: str
    last_seen: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    pair: tuple[str, str, ServiceType] | None = None  # (src, tgt, types) the binding is for
    bound_pool: int | None = None
    checked_generation: int = -1  # snapshot generation the binding was last checked against
    cached_members: tuple[str, ...] = ()  # the bound pool's members, as of cached_generation
    cached_generation: int = -1
    cached_until: float = 0.0
    last_node: str | None = None


class SessionRuntimeManager:
    """Session entries by id: bounded (LRU), expiring, each with its own lock."""

    def __init__(
        self,
        *,
        max_sessions: int = 100_000,
        idle_ttl_s: float = 600.0,
        members_ttl_s: float = 5.0,
        clock: Callable[[], float],
    ) -> None:
        self.max_sessions = check_int(max_sessions, "max_sessions", ConfigError, low=1)
        self.idle_ttl_s = check_number(idle_ttl_s, "idle_ttl_s", ConfigError, low=0, low_open=True)
        self.members_ttl_s = check_number(members_ttl_s, "members_ttl_s", ConfigError, low=0)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, SessionEntry] = OrderedDict()
        self._compiled: Any = None
        self.evicted = 0
        self.expired = 0

    def attach_compiled(self, table: Any) -> None:
        """Also report the sessions of a compiled session table (the fast path's)."""
        self._compiled = table

    def __len__(self) -> int:
        """Sessions held, here and in the attached compiled table."""
        return len(self._entries) + (0 if self._compiled is None else len(self._compiled))

    def get_or_create(self, session_id: str, now: float | None = None) -> SessionEntry:
        """The session's entry (a new one if unknown or expired), marked as just used."""
        now = self._clock() if now is None else now
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is not None and now - entry.last_seen > self.idle_ttl_s:
                del self._entries[session_id]
                self.expired += 1
                entry = None
            if entry is None:
                entry = SessionEntry(session_id, now)
                self._entries[session_id] = entry
                while len(self._entries) > self.max_sessions:
                    self._entries.popitem(last=False)
                    self.evicted += 1
            else:
                entry.last_seen = now
                self._entries.move_to_end(session_id)
            return entry

    def get(self, session_id: str) -> SessionEntry | None:
        """The session's entry, or None. A session of the attached compiled
        table is returned as a detached copy (its pair, bound pool and last node)."""
        with self._lock:
            entry = self._entries.get(session_id)
        if entry is None and self._compiled is not None and isinstance(session_id, str):
            found = self._compiled.get(session_id)
            if found is not None:
                last_seen, pair, bound_pool, last_node = found
                entry = SessionEntry(session_id, last_seen, pair=pair, bound_pool=bound_pool, last_node=last_node)
        return entry

    def expire(self, now: float | None = None) -> int:
        """Drop every entry idle for longer than ``idle_ttl_s`` (in the attached
        compiled table too); return how many."""
        now = self._clock() if now is None else now
        with self._lock:
            stale = [sid for sid, e in self._entries.items() if now - e.last_seen > self.idle_ttl_s]
            for sid in stale:
                del self._entries[sid]
            self.expired += len(stale)
            dropped = len(stale)
            if self._compiled is not None:
                dropped += self._compiled.expire(now)
            return dropped

    def bind(
        self,
        job: JobRequest,
        eligible: Callable[[], Sequence[int]],
        cfg: Phase3Config,
        generation: int,
        now: float,
    ) -> tuple[SessionEntry | None, int | None]:
        """The session's bound pool for this job, (re)binding as docs/DESIGN.md §5 says.

        ``eligible()`` returns the job's eligible pool list (all pools when
        none is eligible and eligibility is not strict) as of snapshot
        ``generation``; it is only called when the binding must be checked —
        a new pair, or a new generation since the last check. Returns the
        entry (to :meth:`record` the node on) and the bound pool.
        """
        if job.session_id is None:
            return None, None
        entry = self.get_or_create(job.session_id, now)
        pair = (job.src_lang, job.tgt_lang, job.required_types)
        dropped = None
        with entry.lock:
            if entry.pair != pair:
                entry.pair = pair
                entry.bound_pool = None
            elif entry.checked_generation == generation:
                return entry, entry.bound_pool
            pools = eligible()
            if entry.bound_pool is not None and entry.bound_pool not in pools:
                dropped, entry.bound_pool = entry.bound_pool, None
            if entry.bound_pool is None:
                entry.bound_pool = binding_pool(pools, job, cfg)
            entry.checked_generation = generation
            bound = entry.bound_pool
        if dropped is not None:  # logged outside the entry lock
            logs.session_rebound(job.session_id, dropped, job.src_lang, job.tgt_lang)
        return entry, bound

    @staticmethod
    def record(entry: SessionEntry | None, node_id: str | None) -> None:
        """Remember the node a session's last job went to (one reference store)."""
        if entry is not None and node_id is not None:
            entry.last_node = node_id

    def members(
        self, session_id: str, generation: int, now: float, load: Callable[[int], tuple[str, ...]]
    ) -> tuple[str, ...]:
        """The bound pool's member ids, cached per session until the snapshot
        generation changes or ``members_ttl_s`` passes; ``load(pool_id)`` fills it."""
        entry = self.get(session_id)
        if entry is None or entry.bound_pool is None:
            return ()
        with entry.lock:
            fresh = entry.cached_generation == generation and now < entry.cached_until
            if not fresh:
                entry.cached_members = load(entry.bound_pool)
                entry.cached_generation = generation
                entry.cached_until = now + self.members_ttl_s
            return entry.cached_members
