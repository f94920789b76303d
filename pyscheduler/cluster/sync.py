"""``RedisClusterSync``: several dispatcher instances, one fleet.

Each instance keeps its own :class:`~pyscheduler.registry.NodeRegistry`. The
nodes connected to an instance are *owned* by it; it publishes their changes
to Redis, and applies to its registry the changes the other instances publish.

This class is the facade over the parts, one module per thread of work:

- :mod:`.listener` (dispatcher threads): registry events -> :mod:`.changes`,
  the bounded writer queue. No Redis call ever runs in a dispatcher thread,
  under a registry lock or inside ``select_node``.
- :mod:`.writer` (one thread): the queue -> batched Lua calls (:mod:`.scripts`).
- :mod:`.reader` (one thread): the change stream -> the registry; resync and
  reconciliation.
- :mod:`.config_cas`: the shared pool config, replaced by compare-and-set.
- :mod:`.codec`: what is written to Redis and how everything read is checked.

See ``docs/CLUSTER.md`` for the Redis layout and the failure behaviour, and
``docs/SECURITY.md`` for what a poisoned key can and cannot do.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..domain.errors import ConfigError
from ..registry.node_registry import NodeRegistry
from .changes import ChangeQueue, NodeAction
from .config_cas import ConfigSync
from .context import SyncContext
from .counters import Counters
from .keys import RedisKeys
from .listener import Listener
from .reader import Reader
from .redis_errors import TRANSIENT, redis, unparsed
from .writer import Writer

__all__ = ["RedisClusterSync"]


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _check_arguments(registry: Any, url: Any, instance_id: Any, prefix: Any,
                     counts: dict[str, tuple[Any, int]], reconcile_interval_s: Any) -> None:
    if not isinstance(registry, NodeRegistry):
        raise ConfigError(f"registry must be a NodeRegistry, got {registry!r}")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"url must be a Redis URL, got {url!r}")
    for name, value in (("instance_id", instance_id), ("prefix", prefix)):
        if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 200:
            raise ConfigError(f"{name} must be a printable, non-empty string, got {value!r}")
    for name, (value, low) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(reconcile_interval_s, (int, float)) or not (0 < reconcile_interval_s < math.inf):
        raise ConfigError(f"reconcile_interval_s must be > 0, got {reconcile_interval_s!r}")


class RedisClusterSync:
    """Keep ``registry`` in step with the other dispatcher instances through Redis.

    ``url`` is a redis-py URL: ``redis://[:password@]host:port/db``,
    ``rediss://`` for TLS (certificate options as query parameters, e.g.
    ``?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem``, or in
    ``redis_kwargs``), ``unix://``. ``instance_id`` names this instance in
    Redis (default: host, pid and a random suffix; it must differ between
    running instances). ``prefix`` namespaces every key, so several fleets
    can share one Redis.

    Nodes already in the registry when :meth:`start` runs are owned by this
    instance; so is every node registered locally afterwards. ``start()``
    returns at once; the threads connect (and reconnect) on their own, and
    :meth:`wait_synced` tells when the first full sync is done.

    Tuning: ``queue_size`` bounds the writer queue (an overflow makes the
    writer republish everything this instance owns); ``batch_size``
    operations go in one Lua call; the stream keeps about ``stream_maxlen``
    entries; the reader blocks ``block_ms`` per read and checks Redis for
    expired hashes every ``reconcile_interval_s``.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        instance_id: str | None = None,
        prefix: str = "pyscheduler",
        queue_size: int = 100_000,
        batch_size: int = 512,
        stream_maxlen: int = 100_000,
        block_ms: int = 200,
        reconcile_interval_s: float = 1.0,
        read_count: int = 2000,
        redis_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if redis is None:
            raise ImportError("RedisClusterSync needs redis-py: pip install 'pyscheduler[redis]'")
        instance_id = _default_instance_id() if instance_id is None else instance_id
        _check_arguments(registry, url, instance_id, prefix, {
            "queue_size": (queue_size, 1),
            "batch_size": (batch_size, 1),
            "stream_maxlen": (stream_maxlen, 100),
            "block_ms": (block_ms, 1),
            "read_count": (read_count, 1),
        }, reconcile_interval_s)
        self.instance_id = instance_id
        self.prefix = prefix
        self._url = url
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._read_count = read_count
        self._reconcile_s = float(reconcile_interval_s)
        kwargs: dict[str, Any] = {
            "socket_timeout": max(5.0, block_ms / 1000.0 + 2.0),
            "socket_connect_timeout": 2.0,
            "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),  # the threads retry, with backoff
        }
        kwargs.update(redis_kwargs or {})
        kwargs.update(decode_responses=False, protocol=2)  # the reader parses raw RESP2 replies
        self._client_kwargs = kwargs
        counters = Counters()
        self._ctx = SyncContext(registry, instance_id, RedisKeys(prefix), str(stream_maxlen),
                                ChangeQueue(queue_size, counters), counters)
        self._config = ConfigSync(self._ctx)
        self._writer: Writer | None = None
        self._reader: Reader | None = None
        self._unsubscribe: Any = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RedisClusterSync:
        """Subscribe to the registry and start the writer and reader threads."""
        if self._closed:
            raise RuntimeError("this RedisClusterSync is closed; make a new one")
        if self._started:
            return self
        self._started = True
        ctx = self._ctx
        writer_client = redis.Redis.from_url(self._url, **self._client_kwargs)
        reader_client = redis.Redis.from_url(self._url, **self._client_kwargs)
        reader_client.set_response_callback("XREAD", unparsed)  # one field per entry: parsed by codec
        self._writer = Writer(ctx, self._config, writer_client, batch_size=self._batch_size)
        self._reader = Reader(ctx, self._config, self._writer, reader_client, block_ms=self._block_ms,
                              read_count=self._read_count, reconcile_s=self._reconcile_s)
        self._unsubscribe = ctx.registry.subscribe(Listener(ctx, self._config))
        for node_id in ctx.registry.node_ids():  # registered before start: ours
            ctx.owned.claim(node_id)
        self._config.forget()  # publish the local config if Redis has none (decided at resync)
        for name, target in (("writer", self._writer.run), ("reader", self._reader.run)):
            thread = threading.Thread(
                target=target, name=f"pyscheduler-cluster-{name}-{self.instance_id}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def close(self, *, withdraw: bool = False, timeout: float = 5.0) -> None:
        """Stop syncing. Queued changes are written first (for at most ``timeout``
        seconds). The nodes this instance owns stay in Redis until their hashes
        expire, as if it had crashed, unless ``withdraw=True`` removes them."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._writer is None or self._reader is None:
            return
        ctx = self._ctx
        if withdraw:
            now = time.time()
            for node_id in ctx.owned.ids():
                ctx.queue.push(NodeAction("rm", node_id, False, None, now))
        self._writer.deadline = time.monotonic() + timeout
        self._writer.stop.set()
        ctx.queue.wake.set()
        self._threads[0].join(timeout + 1.0)
        self._reader.stop.set()
        self._threads[1].join(max(1.0, self._block_ms / 1000.0 + 1.0))
        for client in (self._writer.client, self._reader.client):
            try:
                client.close()
            except Exception:  # closing a dead connection must not fail close()
                pass

    def __enter__(self) -> RedisClusterSync:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state for callers ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether both threads last reached Redis."""
        w, r = self._writer, self._reader
        return w is not None and r is not None and not (w.down or r.down)

    @property
    def config_version(self) -> int:
        """The version of the Redis config document the local config comes from."""
        return self._config.version

    def owned_nodes(self) -> frozenset[str]:
        """The nodes this instance owns (publishes)."""
        return frozenset(self._ctx.owned.ids())

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Wait until the reader has done a full resync, the writer has
        published what this instance owns, and the config the resync settled
        on is in Redis (this instance's own, published when Redis had none or
        an unusable one); False on timeout.

        The writer's first round can run before the reader's resync decides to
        publish the local config, so the writer's own "synced" is not enough:
        the config must also be no longer waiting to be published."""
        if self._writer is None or self._reader is None:
            return False
        deadline = time.monotonic() + timeout
        if not (self._reader.synced.wait(timeout)
                and self._writer.synced.wait(max(0.0, deadline - time.monotonic()))):
            return False
        while self._config.dirty:  # set by the resync before the reader said synced
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change made so far is written to Redis; False on timeout."""
        writer = self._writer
        if writer is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                not len(self._ctx.queue)
                and not writer.busy
                and not self._config.dirty
                and not writer.republish_due
                and not writer.down
                and writer.synced.is_set()
            ):
                return True
            time.sleep(0.002)
        return False

    def wait_caught_up(self, timeout: float = 10.0) -> bool:
        """Wait until the reader has read every change written to Redis before
        this call (this instance's own included); False on timeout."""
        writer, reader = self._writer, self._reader
        if writer is None or reader is None:
            return False
        deadline = time.monotonic() + timeout
        try:
            target = int(writer.client.get(self._ctx.keys.gen) or 0)
        except (*TRANSIENT, redis.ResponseError, ValueError):
            return False
        while time.monotonic() < deadline:
            if reader.last_generation >= target and not reader.resync_due and reader.synced.is_set():
                return True
            time.sleep(0.001)
        return False

    def clear_delays(self) -> None:
        """Forget the convergence delays recorded so far (to measure a new period)."""
        self._ctx.counters.delays.clear()

    def _pause_reading(self, paused: bool) -> None:
        """Stop (or restart) applying the stream; benchmarks use it to measure catch-up."""
        if self._reader is None:
            return
        if paused:
            self._reader.gate.clear()
        else:
            self._reader.gate.set()

    def stats(self) -> dict[str, Any]:
        """Counters, queue length and the convergence delays of applied changes.

        ``counts`` holds, among others, ``malformed`` (entries, hashes and config
        fields read from Redis and skipped: each is logged with its reason),
        ``replaced_keys`` (node keys of another type than hash written over),
        ``refused`` (nodes the registry refused), ``gaps``, ``resyncs`` and
        ``reader_errors``/``writer_errors``/``apply_errors`` (defects, logged
        with a traceback). ``delay_ms`` holds the p50/p99/max of the time from a
        change on its origin instance to its application here (wall clocks;
        meaningful when the instances share a clock, e.g. on one machine).
        """
        ctx = self._ctx
        delays = sorted(ctx.counters.delays)
        out: dict[str, Any] = {
            "instance_id": self.instance_id,
            "connected": self.connected,
            "owned": len(ctx.owned),
            "remote": 0 if self._reader is None else len(self._reader.remote),
            "queued": len(ctx.queue),
            "config_version": self._config.version,
            "counts": ctx.counters.snapshot(),
        }
        if delays:
            n = len(delays)
            out["delay_ms"] = {
                "samples": n,
                "p50": delays[min(n - 1, int(0.50 * n))] * 1e3,
                "p99": delays[min(n - 1, int(0.99 * n))] * 1e3,
                "max": delays[-1] * 1e3,
            }
        return out

    def delays(self) -> list[float]:
        """The convergence delays (seconds) of the changes applied so far (the last 200,000)."""
        return list(self._ctx.counters.delays)
