"""The shared pool config: versioned in Redis, replaced only by compare-and-set.

A local ``set_phase3_config`` is published by the writer
(:meth:`ConfigSync.publish`) with the script :data:`~.scripts.SET_CONFIG`, on
top of the version the local config came from. The loser of a race adopts the
winner's document, so every instance converges on one config. The reader
adopts what Redis holds at a resync or after a ``cfg`` stream entry
(:meth:`ConfigSync.pull`).

A version is the generation of the change that wrote it, so versions only
grow: a compare-and-set that finds a lower version than the one the local
config came from publishes the local config on top of it. A stored version
that does not decode (:func:`.codec.decode_version`)
or is above the generation counter cannot have come from an instance: Python
and the script both read it as "no version", and the local config replaces
the document by compare-and-set on version 0; one instance wins, the others
adopt its document. An unreadable document is replaced the same way, on its
own version. An empty pool list from Redis never replaces local pools: the
other settings are taken, the local pools kept and published back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..domain.config import Phase3Config
from . import codec
from .codec import MalformedEntry
from .context import SyncContext, log

__all__ = ["ConfigSync"]


class ConfigSync:
    """This instance's side of the config compare-and-set.

    State (under one lock): ``version``, the Redis version the local config
    comes from; ``synced``, the config that version holds (None: unknown, so
    publish); ``dirty``, a local change waits to be published on ``base``.
    """

    def __init__(self, ctx: SyncContext) -> None:
        self._ctx = ctx
        self._lock = threading.RLock()
        self.version = 0
        self._synced: Phase3Config | None = None
        self.dirty = False
        self._base = 0
        self._basis: Phase3Config | None = None  # the shared config a local change started from

    def local_change(self) -> None:
        """The local config changed (listener): publish it on the version it replaced."""
        with self._lock:
            if not self.dirty:
                self.dirty = True
                self._base = self.version
        self._ctx.queue.wake.set()

    def forget(self) -> None:
        """At start, or when Redis lost its data: the local config is not known to
        be Redis' (decided at the resync that follows)."""
        with self._lock:
            self.version = 0
            self._synced = None
            self._base = 0
            self._remember_basis()

    def _remember_basis(self) -> None:
        """At the start, the local config is the shared one (under the lock).

        Later the basis stays the last config known to be shared (published,
        adopted or won over): the registry's config may already hold a local
        change whose listener has not run yet, which must not pass for shared."""
        if not self.dirty and self._basis is None:
            self._basis = self._ctx.registry.phase3_config

    # -- the writer -----------------------------------------------------------------------

    def publish(self, client: Any, script: Any) -> bool:
        """Compare-and-set the local config if a change waits (writer thread);
        False when the compare-and-set found another version (the writer then
        backs off before the next attempt)."""
        ctx = self._ctx
        with self._lock:
            if not self.dirty:
                return True
            local = ctx.registry.phase3_config
            if self._synced is not None and local == self._synced:
                self.dirty = False
                return True
            base = self._base
        keys = ctx.keys
        result = script(
            keys=[keys.config, keys.events, keys.gen],
            args=[base, codec.encode_config(local), ctx.instance_id, ctx.stream_maxlen, repr(time.time())],
            client=client,
        )
        if int(result[0]) == 1:
            self._published(int(result[1]), local)
            return True
        self._lost(local, base, int(result[1]), result[2], result[3])
        return False

    def _published(self, version: int, local: Phase3Config) -> None:
        with self._lock:
            if version > self.version:
                self.version = version
                self._synced = local
                self._basis = local
            if self._ctx.registry.phase3_config == local:
                self.dirty = False
            else:  # changed again meanwhile: publish that next, on top of ours
                self._base = self.version
        self._ctx.counters.count("config_published")

    def _lost(self, attempted: Phase3Config, base: int, current: int, doc: bytes, origin: bytes) -> None:
        """Publishing ``attempted`` on ``base`` found ``current`` (0: none readable)."""
        ctx = self._ctx
        if current == 0 or not doc:
            if doc:
                log.error("cluster sync %s: the config version in Redis is unreadable; "
                          "replacing the config with the local one", ctx.instance_id,
                          extra={"event": "cluster.config_version_unreadable",
                                 "instance_id": ctx.instance_id})
                ctx.counters.count("malformed")
            self._republish(0)
            return
        if current < base:
            # versions only grow: a lower one was not written by an instance (or
            # Redis lost its data): publish the local config on top of it
            log.error("cluster sync %s: the config version in Redis went back from %d to %d; "
                      "replacing the config with the local one", ctx.instance_id, base, current,
                      extra={"event": "cluster.config_version_went_back",
                             "instance_id": ctx.instance_id, "from_version": base,
                             "version": current})
            ctx.counters.count("malformed")
            self._republish(current)
            return
        ctx.counters.count("config_conflicts")
        try:
            cfg = codec.decode_config(doc)
        except MalformedEntry as exc:
            log.error("cluster sync %s: the config in Redis (version %d) is unreadable (%s); "
                      "replacing it with the local one", ctx.instance_id, current, exc,
                      extra={"event": "cluster.config_unreadable", "instance_id": ctx.instance_id,
                             "version": current, "error": str(exc)})
            ctx.counters.count("malformed")
            self._republish(current)
            return
        with self._lock:
            if cfg == self._basis or ctx.registry.phase3_config != attempted:
                # the winner wrote the config the local change started from (e.g.
                # every instance republishing after Redis lost its data), or the
                # local config changed again since: publish it on top of the winner
                self.version = self._base = current
                self._synced = self._basis = cfg
                self.dirty = True
                ctx.queue.wake.set()
                return
        log.log(
            logging.INFO if base == 0 else logging.WARNING,
            "cluster sync %s: local config lost a compare-and-set race to %s (version %d); "
            "adopting the winner", ctx.instance_id, origin.decode(errors="replace"), current,
            extra={"event": "cluster.config_conflict", "instance_id": ctx.instance_id,
                   "winner": origin.decode(errors="replace"), "version": current},
        )
        self.adopt(current, cfg, force=True)

    # -- the reader -----------------------------------------------------------------------

    def pull(self, client: Any) -> None:
        """Adopt Redis' config if newer; publish the local one if Redis has none
        readable (reader thread)."""
        ctx = self._ctx
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(ctx.keys.config)
        pipe.get(ctx.keys.gen)
        fields, top = pipe.execute(raise_on_error=False)
        if isinstance(fields, Exception):
            log.error("cluster sync %s: the config key in Redis is not a hash (%s); "
                      "replacing it with the local config", ctx.instance_id, fields,
                      extra={"event": "cluster.config_key_wrong_type",
                             "instance_id": ctx.instance_id, "error": str(fields)})
            ctx.counters.count("malformed")
            fields = {}
        if not fields or not fields.get(b"doc"):
            self._republish(0)
            return
        try:
            version = codec.decode_version(fields.get(b"version"))
            if isinstance(top, Exception) or version > int(top or 0):
                raise MalformedEntry(f"config version {version} is above the generation counter")
        except (MalformedEntry, ValueError) as exc:
            log.error("cluster sync %s: the config version in Redis is unreadable (%s); "
                      "replacing the config with the local one", ctx.instance_id, exc,
                      extra={"event": "cluster.config_version_unreadable",
                             "instance_id": ctx.instance_id, "error": str(exc)})
            ctx.counters.count("malformed")
            self._republish(0)
            return
        try:
            cfg = codec.decode_config(fields[b"doc"])
        except MalformedEntry as exc:
            log.error("cluster sync %s: the config in Redis (version %d) is unreadable (%s); "
                      "keeping and republishing the local one", ctx.instance_id, version, exc,
                      extra={"event": "cluster.config_unreadable", "instance_id": ctx.instance_id,
                             "version": version, "error": str(exc)})
            ctx.counters.count("malformed")
            self._republish(version)
            return
        self.adopt(version, cfg)

    def _republish(self, base: int) -> None:
        """Have the writer publish the local config over Redis' version ``base``."""
        with self._lock:
            self._remember_basis()
            self.version = base
            self._synced = None
            self.dirty = True
            self._base = base
        self._ctx.queue.wake.set()

    def adopt(self, version: int, cfg: Phase3Config, *, force: bool = False) -> None:
        """Make the local config Redis' version ``version`` (in a writer or reader thread).

        An empty remote pool list never replaces local pools: the other settings
        are taken, the local pools kept and published back.
        """
        ctx = self._ctx
        with self._lock:
            if not force and (self.dirty or (version <= self.version and self._synced is not None)):
                return  # already applied, or a publish is due: its compare-and-set decides
            local = ctx.registry.phase3_config
            if not force and self._basis is not None and local != self._basis:
                # a local change whose listener has not run yet (the registry emits
                # after the change): it is due, and its compare-and-set decides;
                # adopting now would silently overwrite it
                self.dirty = True
                self._base = self.version
                ctx.queue.wake.set()
                return
            effective = cfg
            keep_local_pools = not cfg.pools and bool(local.pools)
            if keep_local_pools:
                effective = cfg.with_pools(local.pools)
                log.warning(
                    "cluster sync %s: the config in Redis (version %d) has no pools; keeping the %d "
                    "local pools and publishing them", ctx.instance_id, version, len(local.pools),
                    extra={"event": "cluster.config_without_pools", "instance_id": ctx.instance_id,
                           "version": version, "local_pools": len(local.pools)},
                )
            if effective != local:
                ctx.registry.set_phase3_config(effective)
                ctx.counters.count("config_applied")
            self.version = max(version, self.version) if not force else version
            self._synced = None if keep_local_pools else effective
            self._basis = effective
            # a local change made meanwhile (the listener found dirty set) stays due
            self.dirty = keep_local_pools or ctx.registry.phase3_config != effective
            self._base = self.version
        if self.dirty:
            ctx.queue.wake.set()
