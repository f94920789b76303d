"""``RedisClusterSync``: several dispatcher instances, one fleet (DESIGN §9).

Each instance keeps its own :class:`~pyscheduler.registry.NodeRegistry`. The
nodes connected to an instance are *owned* by it; it publishes their changes
to Redis, and applies to its registry the changes the other instances publish.

Threads. Dispatcher threads only run :meth:`RedisClusterSync._on_change`
(a registry listener, called after the registry lock is released): it puts
the change on a bounded in-memory queue and returns. A *writer* thread turns
the queue into batched Lua calls; a *reader* thread reads the change stream
and applies other instances' changes through the registry's public methods.
No Redis call ever runs under a registry lock or inside ``select_node``.

Echo. The reader and writer threads set a thread-local flag for their whole
life, and the listener ignores changes made in a thread that has it: the
registry calls listeners synchronously in the thread that made the change,
so a change the reader applies is never published again.

Load-only heartbeats are coalesced per node: while one is queued, later ones
only replace its figures. Any other change of the node closes the coalescing
window, so order per node is kept.

See ``docs/CLUSTER.md`` for the Redis layout and the failure behaviour.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.config import Phase3Config
from ..domain.errors import ConfigError, SchedulerError, UnknownNodeError
from ..domain.events import ChangeKind, RegistryEvent
from ..domain.model import Heartbeat, NodeStatus
from ..registry.node_registry import NodeRegistry
from . import codec
from .codec import MalformedEntry, NodeState
from .scripts import APPLY_BATCH, FIND_MISSING, PRUNE_IDS, SET_CONFIG

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

__all__ = ["RedisClusterSync"]

log = logging.getLogger("pyscheduler.cluster")

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
_CHUNK = 1000  # hashes per pipeline in a resync
_RECONCILE_CHUNK = 5000  # hashes checked per script call in a reconciliation
_DELAYS_KEPT = 200_000

# Redis errors after which a retry may succeed: the connection, or a Redis
# that is starting (loading) or read-only for a moment (failover).
if redis is not None:
    _TRANSIENT: tuple[type[BaseException], ...] = (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.BusyLoadingError,
        redis.ReadOnlyError,
        OSError,
    )
else:  # pragma: no cover
    _TRANSIENT = (OSError,)

_DEGRADE_BEATS = 3  # nodes.UNHEALTHY_BEATS_TO_DEGRADE: re-applied to mirror a DEGRADED owner


@dataclass(slots=True)
class _Remote:
    """A node owned by another instance, as this instance last applied it."""

    owner: str
    gen: int  # generation of the last change applied
    flags: str  # codec flags as applied (draining, disconnected)
    seen: float  # time.monotonic() when Redis last confirmed it


class _Keys:
    __slots__ = ("prefix", "events", "gen", "nodes", "config", "epoch", "node_prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.gen = f"{prefix}:gen"
        self.nodes = f"{prefix}:nodes"
        self.config = f"{prefix}:config"
        self.epoch = f"{prefix}:epoch"
        self.node_prefix = f"{prefix}:node:"

    def node(self, node_id: str) -> str:
        return self.node_prefix + node_id


def _unparsed(response: Any, **options: Any) -> Any:
    return response


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


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
            raise ImportError(
                "RedisClusterSync needs redis-py: pip install 'pyscheduler[redis]'"
            )
        if not isinstance(registry, NodeRegistry):
            raise ConfigError(f"registry must be a NodeRegistry, got {registry!r}")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"url must be a Redis URL, got {url!r}")
        instance_id = _default_instance_id() if instance_id is None else instance_id
        for name, value in (("instance_id", instance_id), ("prefix", prefix)):
            if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 200:
                raise ConfigError(f"{name} must be a printable, non-empty string, got {value!r}")
        for name, value, low in (
            ("queue_size", queue_size, 1),
            ("batch_size", batch_size, 1),
            ("stream_maxlen", stream_maxlen, 100),
            ("block_ms", block_ms, 1),
            ("read_count", read_count, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(reconcile_interval_s, (int, float)) or not (
            0 < reconcile_interval_s < math.inf
        ):
            raise ConfigError(f"reconcile_interval_s must be > 0, got {reconcile_interval_s!r}")

        self._registry = registry
        self._url = url
        self.instance_id = instance_id
        self._id_bytes = instance_id.encode()
        self.prefix = prefix
        self._k = _Keys(prefix)
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._maxlen = str(stream_maxlen)
        self._block_ms = block_ms
        self._reconcile_s = float(reconcile_interval_s)
        self._read_count = read_count
        kwargs: dict[str, Any] = {
            "socket_timeout": max(5.0, block_ms / 1000.0 + 2.0),
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),  # this class retries, with its own backoff
        }
        kwargs.update(redis_kwargs or {})
        kwargs.update(decode_responses=False, protocol=2)  # the reader parses raw RESP2 replies
        self._client_kwargs = kwargs
        self._w: Any = None  # writer's client
        self._r: Any = None  # reader's client

        # shared with the listener (dispatcher threads)
        self._tls = threading.local()
        self._queue: collections.deque[tuple] = collections.deque()
        self._wake = threading.Event()
        self._pending: dict[str, list] = {}  # node id -> [heartbeat, status, time] queued
        self._pending_lock = threading.Lock()
        self._owned: set[str] = set()
        self._disconnected: set[str] = set()  # owned nodes disconnected locally
        self._beats: dict[str, float] = {}  # owned node -> monotonic time of its last local beat
        self._own_lock = threading.Lock()
        self._overflow = False

        # config compare-and-set state (under _cfg_lock)
        self._cfg_lock = threading.RLock()
        self._cfg_version = 0
        self._cfg_synced: Phase3Config | None = None
        self._cfg_dirty = False
        self._cfg_base = 0

        # reader state (reader thread only)
        self._remote: dict[str, _Remote] = {}
        self._last_id: bytes | str = b"0-0"
        self._last_gen = 0
        self._epoch: bytes | None = None
        self._grace_until = 0.0
        self._fetch: set[str] = set()
        self._pull_config = False
        self._next_reconcile = 0.0

        # control
        self._republish_due = True
        self._resync_due = True
        self._busy = False
        self._stop = threading.Event()
        self._read_gate = threading.Event()  # cleared: the reader pauses (benchmarks)
        self._read_gate.set()
        self._writer_stop = threading.Event()
        self._writer_deadline = math.inf
        self._reader_synced = threading.Event()
        self._writer_synced = threading.Event()
        self._writer_down = False
        self._reader_down = False
        self._unsubscribe: Any = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False

        # figures
        self._counts: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()
        self._delays: collections.deque[float] = collections.deque(maxlen=_DELAYS_KEPT)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RedisClusterSync:
        """Subscribe to the registry and start the writer and reader threads."""
        if self._closed:
            raise RuntimeError("this RedisClusterSync is closed; make a new one")
        if self._started:
            return self
        self._started = True
        self._w = redis.Redis.from_url(self._url, **self._client_kwargs)
        self._r = redis.Redis.from_url(self._url, **self._client_kwargs)
        # the reader parses stream entries itself (codec.decode_entry): one field per entry
        self._r.set_response_callback("XREAD", _unparsed)
        self._batch_script = self._w.register_script(APPLY_BATCH)
        self._config_script = self._w.register_script(SET_CONFIG)
        self._prune_script = self._r.register_script(PRUNE_IDS)
        self._missing_script = self._r.register_script(FIND_MISSING)
        self._unsubscribe = self._registry.subscribe(self._on_change)
        now = time.monotonic()
        with self._own_lock:
            for node_id in self._registry.node_ids():  # registered before start: ours
                self._owned.add(node_id)
                self._beats[node_id] = now
        with self._cfg_lock:  # publish the local config if Redis has none (decided at resync)
            self._cfg_synced = None
        for name, target in (("writer", self._writer_main), ("reader", self._reader_main)):
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
        if not self._started:
            return
        if withdraw:
            now = time.time()
            with self._own_lock:
                owned = sorted(self._owned)
            for node_id in owned:
                self._queue.append(("rm", node_id, False, None, now))
        self._writer_deadline = time.monotonic() + timeout
        self._writer_stop.set()
        self._wake.set()
        self._threads[0].join(timeout + 1.0)
        self._stop.set()
        for thread in self._threads[1:]:
            thread.join(max(1.0, self._block_ms / 1000.0 + 1.0))
        for client in (self._w, self._r):
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
        return self._started and not (self._writer_down or self._reader_down)

    @property
    def config_version(self) -> int:
        """The version of the Redis config document the local config comes from."""
        return self._cfg_version

    def owned_nodes(self) -> frozenset[str]:
        """The nodes this instance owns (publishes)."""
        with self._own_lock:
            return frozenset(self._owned)

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Wait until the reader has done a full resync and the writer has
        published what this instance owns; False on timeout."""
        deadline = time.monotonic() + timeout
        return self._reader_synced.wait(timeout) and self._writer_synced.wait(
            max(0.0, deadline - time.monotonic())
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change made so far is written to Redis; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                not self._queue
                and not self._busy
                and not self._cfg_dirty
                and not self._republish_due
                and not self._writer_down
                and self._writer_synced.is_set()
            ):
                return True
            time.sleep(0.002)
        return False

    def wait_caught_up(self, timeout: float = 10.0) -> bool:
        """Wait until the reader has read every change written to Redis before
        this call (this instance's own included); False on timeout."""
        deadline = time.monotonic() + timeout
        try:
            target = int(self._w.get(self._k.gen) or 0)
        except (*_TRANSIENT, ValueError):
            return False
        while time.monotonic() < deadline:
            if self._last_gen >= target and not self._resync_due and self._reader_synced.is_set():
                return True
            time.sleep(0.001)
        return False

    def clear_delays(self) -> None:
        """Forget the convergence delays recorded so far (to measure a new period)."""
        self._delays.clear()

    def _pause_reading(self, paused: bool) -> None:
        """Stop (or restart) applying the stream; benchmarks use it to measure catch-up."""
        if paused:
            self._read_gate.clear()
        else:
            self._read_gate.set()

    def stats(self) -> dict[str, Any]:
        """Counters, queue length and the convergence delays of applied changes.

        ``delay_ms`` holds the p50/p99/max of the time from a change on its
        origin instance to its application here (wall clocks; meaningful when
        the instances share a clock, e.g. on one machine).
        """
        with self._counts_lock:
            counts = dict(self._counts)
        delays = sorted(self._delays)
        out: dict[str, Any] = {
            "instance_id": self.instance_id,
            "connected": self.connected,
            "owned": len(self._owned),
            "remote": len(self._remote),
            "queued": len(self._queue),
            "config_version": self._cfg_version,
            "counts": counts,
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
        return list(self._delays)

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[name] += n

    # -- the listener (dispatcher threads) -------------------------------------------------

    def _on_change(self, ev: RegistryEvent) -> None:
        if getattr(self._tls, "remote", False):
            return  # a change this instance's reader or writer applied: never echo it
        kind = ev.kind
        node_id = ev.node_id
        if kind is ChangeKind.HEARTBEAT:
            if node_id not in self._owned:
                return  # a node owned elsewhere: its owner publishes its beats
            now = time.time()
            self._beats[node_id] = time.monotonic()
            hb = ev.heartbeat
            if hb.load_only:  # type: ignore[union-attr]
                with self._pending_lock:
                    cell = self._pending.get(node_id)
                    if cell is not None:
                        cell[0] = hb
                        cell[1] = ev.status
                        cell[2] = now
                        return
                    cell = [hb, ev.status, now]
                    self._pending[node_id] = cell
                self._submit(("hb", node_id, cell, None, now))
            else:
                self._cut(node_id)
                self._submit(("hbx", node_id, hb, ev.status, now))
        elif kind is ChangeKind.REGISTERED:
            with self._own_lock:
                self._owned.add(node_id)  # type: ignore[arg-type]
                self._disconnected.discard(node_id)  # type: ignore[arg-type]
                self._beats[node_id] = time.monotonic()  # type: ignore[index]
            self._cut(node_id)
            self._submit(("reg", node_id, ev.info, None, time.time()))
        elif kind in (ChangeKind.DRAINING, ChangeKind.DISCONNECTED, ChangeKind.REMOVED):
            with self._own_lock:
                forced = node_id not in self._owned
                if kind is ChangeKind.REMOVED:
                    self._owned.discard(node_id)  # type: ignore[arg-type]
                    self._disconnected.discard(node_id)  # type: ignore[arg-type]
                    self._beats.pop(node_id, None)  # type: ignore[arg-type]
                elif kind is ChangeKind.DISCONNECTED and not forced:
                    self._disconnected.add(node_id)  # type: ignore[arg-type]
            self._cut(node_id)
            op = {ChangeKind.DRAINING: "drain", ChangeKind.DISCONNECTED: "disc"}.get(kind, "rm")
            status = NodeStatus.OFFLINE if kind is ChangeKind.DISCONNECTED else ev.status
            self._submit((op, node_id, forced, status, time.time()))
        elif kind is ChangeKind.STATUS:
            if node_id in self._owned:
                self._submit(("st", node_id, None, ev.status, time.time()))
        elif kind is ChangeKind.PHASE3_CONFIG:
            with self._cfg_lock:
                if not self._cfg_dirty:
                    self._cfg_dirty = True
                    self._cfg_base = self._cfg_version
            self._wake.set()
        # CORE_SERVICES_CONFIG is per instance (deployment config): not shared

    def _cut(self, node_id: str | None) -> None:
        """Close the node's heartbeat-coalescing window (its next beat is queued anew)."""
        if self._pending:
            with self._pending_lock:
                self._pending.pop(node_id, None)  # type: ignore[arg-type]

    def _submit(self, item: tuple) -> None:
        if len(self._queue) >= self._queue_size:
            self._overflow = True
            self._count("queue_overflows")
        else:
            self._queue.append(item)
        if not self._wake.is_set():
            self._wake.set()

    # -- the writer ---------------------------------------------------------------------------

    def _writer_main(self) -> None:
        self._tls.remote = True
        backoff = _BACKOFF_FIRST_S
        ops: list[tuple] | None = None
        while True:
            if self._writer_stop.is_set():
                if time.monotonic() >= self._writer_deadline:
                    break
                if ops is None and not self._queue and not self._cfg_dirty:
                    break
            try:
                if self._overflow:
                    self._overflow = False
                    self._republish_due = True
                if self._republish_due:
                    self._republish_due = False
                    try:
                        self._republish_all()
                    except BaseException:
                        self._republish_due = True
                        raise
                    self._writer_synced.set()
                self._publish_config()
                if ops is None:
                    self._busy = True
                    ops = self._build_ops(self._take_batch())
                if ops:
                    self._send(ops)
                    self._count("written", len(ops))
                ops = None
                self._busy = False
                if self._writer_down:
                    self._writer_down = False
                    log.warning("cluster sync %s: Redis is back; republishing owned nodes", self.instance_id)
                    self._republish_due = True
                backoff = _BACKOFF_FIRST_S
                if not self._queue and not self._overflow and not self._republish_due:
                    self._wake.clear()
                    if not self._queue and not self._cfg_dirty and not self._writer_stop.is_set():
                        self._wake.wait(0.5)
            except _TRANSIENT as exc:
                if not self._writer_down:
                    self._writer_down = True
                    log.warning(
                        "cluster sync %s: Redis unreachable (%s); local registry goes on, retrying",
                        self.instance_id, exc,
                    )
                self._count("write_errors")
                self._sleep(backoff, writer=True)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            except redis.ResponseError as exc:
                log.error("cluster sync %s: Redis refused a write (%s); republishing", self.instance_id, exc)
                self._count("write_refused")
                ops = None
                self._busy = False
                self._republish_due = True
                self._sleep(backoff, writer=True)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            except Exception:
                log.exception("cluster sync %s: writer error; republishing", self.instance_id)
                self._count("writer_errors")
                ops = None
                self._busy = False
                self._republish_due = True
                self._sleep(backoff, writer=True)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        self._busy = False

    def _sleep(self, seconds: float, *, writer: bool = False) -> None:
        if writer:
            if self._writer_stop.is_set():
                seconds = min(seconds, max(0.0, self._writer_deadline - time.monotonic()))
            self._writer_stop.wait(seconds)
        else:
            self._stop.wait(seconds)

    def _take_batch(self) -> list[tuple]:
        q = self._queue
        out = []
        for _ in range(min(len(q), self._batch_size)):
            try:
                out.append(q.popleft())
            except IndexError:
                break
        return out

    def _ttl_ms(self) -> str:
        return str(max(1, int(self._registry.phase3_config.heartbeat_timeout_s * 1000)))

    def _build_ops(self, items: list[tuple]) -> list[tuple]:
        """Queue items -> Lua operations ``(kind, id, ttl, info, status, load, flags, time)``."""
        ttl = self._ttl_ms()
        ops = []
        for kind, node_id, a, b, at in items:
            if kind == "hb":
                with self._pending_lock:
                    if self._pending.get(node_id) is a:
                        del self._pending[node_id]
                    hb, status, at = a
                ops.append(("hb", node_id, ttl, "", status.value, codec.encode_load(hb), "", repr(at)))
            elif kind == "hbx":
                try:
                    info = self._registry.get_node(node_id).info
                except UnknownNodeError:
                    continue
                ops.append(
                    ("hb", node_id, ttl, codec.encode_info(info), b.value, codec.encode_load(a), "", repr(at))
                )
            elif kind == "reg":
                ops.append(
                    ("reg", node_id, ttl, codec.encode_info(a), NodeStatus.REGISTERING.value, "", "", repr(at))
                )
            elif kind in ("drain", "disc", "rm"):
                status = "" if b is None else b.value
                ops.append((("!" if a else "") + kind, node_id, ttl, "", status, "", "", repr(at)))
            elif kind == "st":
                ops.append(("st", node_id, ttl, "", b.value, "", "", repr(at)))
            elif kind == "put":
                op = self._put_op(node_id, ttl)
                if op is not None:
                    ops.append(op)
        return ops

    def _alive(self, node_id: str) -> bool:
        """Whether an owned node is connected and beat within the heartbeat timeout."""
        if node_id in self._disconnected:
            return False
        last = self._beats.get(node_id)
        timeout = self._registry.phase3_config.heartbeat_timeout_s
        return last is not None and time.monotonic() - last < timeout

    def _put_op(self, node_id: str, ttl: str) -> tuple | None:
        """The whole state of an owned node, to (re)publish it; None if it is gone or silent."""
        if node_id not in self._owned or not self._alive(node_id):
            return None
        try:
            view = self._registry.get_node(node_id)
        except UnknownNodeError:
            return None
        if view.status is NodeStatus.OFFLINE:
            return None
        load = ""
        if view.status is not NodeStatus.REGISTERING:
            hb = Heartbeat(view.cpu_usage, view.memory_usage, view.gpu_usage, view.running_jobs)
            load = codec.encode_load(hb)
        flags = codec.encode_flags(view.draining, False)
        return ("put", node_id, ttl, codec.encode_info(view.info), view.status.value, load, flags,
                repr(time.time()))

    def _send(self, ops: list[tuple]) -> None:
        k = self._k
        keys = [k.events, k.gen, k.nodes]
        args: list[Any] = [self.instance_id, self._maxlen]
        for op in ops:
            keys.append(k.node_prefix + op[1])
            args.extend(op)
        verdicts = self._batch_script(keys=keys, args=args, client=self._w)
        for op, verdict in zip(ops, verdicts):
            if verdict == b"ok":
                continue
            node_id = op[1]
            if verdict == b"replaced":
                log.warning("cluster sync %s: the key of node %s in Redis was not a hash; replaced it",
                            self.instance_id, node_id)
                self._count("replaced_keys")
            elif verdict == b"missing":
                # the hash expired or Redis lost it: republish the node whole
                if node_id in self._owned:
                    self._queue.append(("put", node_id, None, None, time.time()))
            elif verdict == b"owner":
                self._disown(node_id, "another instance owns it in Redis")

    def _disown(self, node_id: str, why: str) -> None:
        with self._own_lock:
            if node_id not in self._owned:
                return
            self._owned.discard(node_id)
            self._disconnected.discard(node_id)
            self._beats.pop(node_id, None)
        self._cut(node_id)
        self._count("disowned")
        log.warning("cluster sync %s: node %s is no longer published from here: %s",
                    self.instance_id, node_id, why)

    def _republish_all(self) -> None:
        """Write every owned node whole, and remove the hashes Redis says this
        instance owns but it does not (removed while Redis was unreachable)."""
        with self._pending_lock:
            self._pending.clear()
        ttl = self._ttl_ms()
        with self._own_lock:
            owned = sorted(self._owned)
        ops = [op for op in (self._put_op(n, ttl) for n in owned) if op is not None]
        members = sorted(self._decode_ids(self._w.smembers(self._k.nodes)))
        owned_set = set(owned)
        now = repr(time.time())
        for i in range(0, len(members), _CHUNK):
            chunk = members[i:i + _CHUNK]
            pipe = self._w.pipeline(transaction=False)
            for node_id in chunk:
                pipe.hget(self._k.node(node_id), "owner")
            for node_id, owner in zip(chunk, pipe.execute(raise_on_error=False)):
                if owner == self._id_bytes and node_id not in owned_set:
                    ops.append(("rm", node_id, ttl, "", "", "", "", now))
        for i in range(0, len(ops), self._batch_size):
            self._send(ops[i:i + self._batch_size])
        self._count("republished", len(ops))

    @staticmethod
    def _decode_ids(raw: Iterable[bytes]) -> list[str]:
        out = []
        for item in raw:
            try:
                out.append(codec.decode_node_id(item))
            except MalformedEntry as exc:
                log.warning("cluster sync: skipping a bad member of the node-id set: %s", exc)
        return out

    # -- config compare-and-set (writer) -------------------------------------------------------

    def _publish_config(self) -> None:
        with self._cfg_lock:
            if not self._cfg_dirty:
                return
            local = self._registry.phase3_config
            if self._cfg_synced is not None and local == self._cfg_synced:
                self._cfg_dirty = False
                return
            base = self._cfg_base
        result = self._config_script(
            keys=[self._k.config, self._k.events, self._k.gen],
            args=[base, codec.encode_config(local), self.instance_id, self._maxlen, repr(time.time())],
            client=self._w,
        )
        if int(result[0]) == 1:
            version = int(result[1])
            with self._cfg_lock:
                if version > self._cfg_version:
                    self._cfg_version = version
                    self._cfg_synced = local
                if self._registry.phase3_config == local:
                    self._cfg_dirty = False
                else:  # changed again meanwhile: publish that next, on top of ours
                    self._cfg_base = self._cfg_version
            self._count("config_published")
            return
        current = int(result[1])
        doc, origin = result[2], result[3]
        if current == 0 or not doc:
            if doc:
                log.error("cluster sync %s: the config version in Redis is unreadable; "
                          "replacing the config with the local one", self.instance_id)
                self._count("malformed")
            with self._cfg_lock:  # Redis has no (readable) document: publish ours on 0
                self._cfg_version = 0
                self._cfg_base = 0
                self._cfg_synced = None
            return
        self._count("config_conflicts")
        try:
            cfg = codec.decode_config(doc)
        except MalformedEntry as exc:
            log.error("cluster sync %s: the config in Redis (version %d) is unreadable (%s); "
                      "replacing it with the local one", self.instance_id, current, exc)
            with self._cfg_lock:
                self._cfg_base = current
            return
        log.log(
            logging.INFO if base == 0 else logging.WARNING,
            "cluster sync %s: local config lost a compare-and-set race to %s (version %d); "
            "adopting the winner", self.instance_id, origin.decode(errors="replace"), current,
        )
        self._adopt_config(current, cfg, force=True)

    def _adopt_config(self, version: int, cfg: Phase3Config, *, force: bool = False) -> None:
        """Make the local config Redis' version ``version`` (called with the remote flag set).

        An empty remote pool list never replaces local pools (DESIGN §7 behaviour 2):
        the other settings are taken, the local pools kept.
        """
        with self._cfg_lock:
            if version <= self._cfg_version and self._cfg_synced is not None and not force:
                return
            local = self._registry.phase3_config
            effective = cfg
            keep_local_pools = not cfg.pools and bool(local.pools)
            if keep_local_pools:
                effective = cfg.with_pools(local.pools)
                log.warning(
                    "cluster sync %s: the config in Redis (version %d) has no pools; keeping the %d "
                    "local pools and publishing them", self.instance_id, version, len(local.pools),
                )
            if effective != local:
                self._registry.set_phase3_config(effective)
                self._count("config_applied")
            self._cfg_version = max(version, self._cfg_version) if not force else version
            self._cfg_synced = None if keep_local_pools else effective
            self._cfg_dirty = keep_local_pools
            self._cfg_base = self._cfg_version
        if keep_local_pools:
            self._wake.set()

    # -- the reader ---------------------------------------------------------------------------

    def _reader_main(self) -> None:
        self._tls.remote = True
        backoff = _BACKOFF_FIRST_S
        while not self._stop.is_set():
            if not self._read_gate.is_set():
                self._read_gate.wait(0.05)
                continue
            try:
                if self._resync_due:
                    self._resync()
                    self._resync_due = False
                    self._reader_synced.set()
                reply = self._r.xread(
                    {self._k.events: self._last_id}, count=self._read_count, block=self._block_ms
                )
                if reply:
                    self._apply_entries(reply[0][1])
                if self._fetch:
                    self._fetch_nodes()
                if self._pull_config:
                    self._pull_config = False
                    self._sync_config()
                if time.monotonic() >= self._next_reconcile:
                    self._reconcile()
                if self._reader_down:
                    self._reader_down = False
                    log.warning("cluster sync %s: reading from Redis again", self.instance_id)
                backoff = _BACKOFF_FIRST_S
            except _TRANSIENT as exc:
                if not self._reader_down:
                    self._reader_down = True
                    log.warning("cluster sync %s: cannot read from Redis (%s); retrying",
                                self.instance_id, exc)
                self._resync_due = True
                self._count("read_errors")
                self._sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            except Exception:
                log.exception("cluster sync %s: reader error; resyncing", self.instance_id)
                self._count("reader_errors")
                self._resync_due = True
                self._sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def _apply_entries(self, entries: list) -> None:
        own = self._id_bytes
        delays = self._delays
        applied = 0
        for entry in entries:
            try:
                entry_id, fields = entry
                self._last_id = entry_id
                gen, origin, at, kind, parts = codec.decode_entry(fields)
            except (MalformedEntry, TypeError, ValueError) as exc:
                log.warning("cluster sync %s: skipping malformed stream entry %r: %s",
                            self.instance_id, entry[0] if entry else entry, exc)
                self._count("malformed")
                continue
            if gen != self._last_gen + 1:
                log.warning(
                    "cluster sync %s: stream generation %d after %d: missed changes, resyncing",
                    self.instance_id, gen, self._last_gen,
                )
                self._count("gaps")
                self._resync_due = True
                return
            self._last_gen = gen
            if origin == own:
                continue
            try:
                if self._apply(kind, parts, gen, origin):
                    applied += 1
                    delays.append(time.time() - at)
            except MalformedEntry as exc:
                log.warning("cluster sync %s: skipping malformed stream entry %r: %s",
                            self.instance_id, entry_id, exc)
                self._count("malformed")
            except SchedulerError as exc:
                # the registry refused it (e.g. a node it does not know): read the hash instead
                log.debug("cluster sync %s: %s change refused (%s); fetching the node",
                          self.instance_id, kind, exc)
                if kind != b"cfg":
                    try:
                        self._fetch.add(codec.decode_node_id(parts[codec.NODE]))
                    except MalformedEntry:
                        pass
            except Exception:
                # a defect, not bad input: logged whole, and this entry only is lost
                log.exception("cluster sync %s: could not apply stream entry %r",
                              self.instance_id, entry_id)
                self._count("apply_errors")
        if applied:
            self._count("applied", applied)

    def _apply(self, kind: bytes, parts: list[bytes], gen: int, origin: bytes) -> bool:
        """Apply one change of another instance; False when it was stale or deferred."""
        if kind == b"hb":  # the common case first
            try:
                node_id = parts[4].decode()
            except UnicodeDecodeError:
                raise MalformedEntry(f"node id {parts[4]!r:.60} is not UTF-8") from None
            rec = self._remote.get(node_id)
            if rec is None or node_id in self._owned:
                if rec is None and node_id not in self._owned:
                    self._fetch.add(codec.decode_node_id(parts[4]))
                return False  # a node this instance owns now: its beats are ours
            if gen <= rec.gen:
                return False  # already applied (read whole during a resync)
            hb = codec.decode_load(parts[6])
            if len(parts) > 7:
                info = codec.decode_info(parts[7], node_id)
                hb = Heartbeat(hb.cpu_usage, hb.memory_usage, hb.gpu_usage, hb.current_jobs,
                               info.installed_services, info.language_capabilities)
            got = self._registry.update_node_heartbeat(node_id, hb)
            if got is NodeStatus.READY and parts[5] == b"degraded":
                self._mirror_degraded(node_id, hb)
            rec.gen = gen
            rec.seen = time.monotonic()
            return True
        if kind == b"cfg":
            codec.decode_version(parts[5])
            self._pull_config = True
            return True
        node_id = codec.decode_node_id(parts[4])
        origin_id = codec._text(origin, "origin")
        reg = self._registry
        rec = self._remote.get(node_id)
        if rec is not None and gen <= rec.gen:
            return False
        owned = node_id in self._owned
        if kind == b"reg":
            info = codec.decode_info(parts[5], node_id)
            if owned:
                self._disown(node_id, f"it registered again on {origin_id}")
            reg.register_node_with_policy(info, "replace")
            self._remote[node_id] = _Remote(origin_id, gen, "", time.monotonic())
            return True
        if kind == b"put":
            if owned:
                return False
            self._apply_state(codec.decode_put(node_id, origin_id, gen, parts))
            return True
        if kind in (b"drain", b"disc"):
            codec.decode_status(parts[5])
            try:
                if kind == b"drain":
                    reg.mark_node_draining(node_id)
                else:
                    reg.disconnect_node(node_id)
            except UnknownNodeError:
                if not owned:
                    self._fetch.add(node_id)
                return False
            if owned:
                if kind == b"disc":
                    with self._own_lock:
                        self._disconnected.add(node_id)
            elif rec is not None:
                rec.gen = gen
                rec.flags += codec.FLAG_DRAINING if kind == b"drain" else codec.FLAG_DISCONNECTED
            return True
        # rm
        self._remote.pop(node_id, None)
        if owned:
            self._disown(node_id, f"removed by {origin_id}")
        try:
            reg.remove_node(node_id)
        except UnknownNodeError:
            return False
        return True

    def _mirror_degraded(self, node_id: str, hb: Heartbeat) -> None:
        """The owner counts a node DEGRADED after unhealthy beats some of which were
        coalesced away: re-apply the (unhealthy) beat until this registry agrees."""
        for _ in range(_DEGRADE_BEATS):
            if self._registry.update_node_heartbeat(node_id, hb) is not NodeStatus.READY:
                return

    def _apply_state(self, state: NodeState) -> None:
        """Make the local registry hold ``state`` (a hash or a ``put``) for a remote node."""
        node_id = state.node_id
        if state.owner == self.instance_id:
            self._remote.pop(node_id, None)
            if node_id not in self._owned:
                # Redis says we own it but we do not (we restarted with this id): remove it
                self._queue.append(("rm", node_id, False, None, time.time()))
                self._wake.set()
            return
        if node_id in self._owned:
            self._disown(node_id, f"Redis says {state.owner} owns it")
        reg = self._registry
        rec = self._remote.get(node_id)
        try:
            view = reg.get_node(node_id)
        except UnknownNodeError:
            view = None
        was_disconnected = rec is not None and codec.FLAG_DISCONNECTED in rec.flags
        fresh = view is None or view.info != state.info or (was_disconnected and not state.disconnected)
        if fresh:
            reg.register_node_with_policy(state.info, "replace")
        if state.disconnected:
            if fresh or not was_disconnected:
                reg.disconnect_node(node_id)
        else:
            hb = state.heartbeat
            if hb is not None and state.status is not NodeStatus.OFFLINE:
                got = reg.update_node_heartbeat(node_id, hb)
                if state.status is NodeStatus.DEGRADED and got is NodeStatus.READY:
                    self._mirror_degraded(node_id, hb)
            if state.draining and (fresh or view is None or view.status is not NodeStatus.DRAINING):
                reg.mark_node_draining(node_id)
        self._remote[node_id] = _Remote(state.owner, state.generation, state.flags, time.monotonic())

    def _fetch_nodes(self) -> None:
        """Read whole the nodes a change named that this registry did not know."""
        ids = sorted(self._fetch)
        self._fetch.clear()
        pipe = self._r.pipeline(transaction=False)
        for node_id in ids:
            pipe.hgetall(self._k.node(node_id))
        for node_id, fields in zip(ids, pipe.execute(raise_on_error=False)):
            if node_id in self._owned:
                continue
            if not fields:
                self._drop(node_id)
                continue
            state = self._decode_hash(node_id, fields)
            if state is not None:
                self._apply_remote_state(state)
        self._count("fetched", len(ids))

    def _decode_hash(self, node_id: str, fields: Any) -> NodeState | None:
        """A node hash as read by a pipeline (an error when the key is not a
        hash); None, logged and counted, when it is malformed."""
        try:
            if isinstance(fields, Exception):
                raise MalformedEntry(f"node key {node_id!r} is not a hash ({fields})")
            return codec.decode_node_hash(node_id, fields)
        except MalformedEntry as exc:
            log.warning("cluster sync %s: skipping malformed hash: %s", self.instance_id, exc)
            self._count("malformed")
            return None

    def _apply_remote_state(self, state: NodeState) -> None:
        """:meth:`_apply_state`, logging (not raising) what the registry refuses."""
        try:
            self._apply_state(state)
        except SchedulerError as exc:
            log.warning("cluster sync %s: could not apply node %s: %s",
                        self.instance_id, state.node_id, exc)
            self._count("refused")

    def _drop(self, node_id: str) -> None:
        """A remote node is gone from Redis: remove it here."""
        self._remote.pop(node_id, None)
        if node_id in self._owned:
            return
        try:
            self._registry.remove_node(node_id)
        except UnknownNodeError:
            return
        self._count("expired")

    def _ensure_epoch(self) -> bytes:
        token = uuid.uuid4().hex.encode()
        self._r.set(self._k.epoch, token, nx=True)
        epoch = self._r.get(self._k.epoch)
        return token if epoch is None else epoch

    def _resync(self) -> None:
        """Read every node hash and the config; continue the stream from there."""
        r = self._r
        k = self._k
        self._ensure_epoch()
        pipe = r.pipeline(transaction=True)
        pipe.get(k.epoch)
        pipe.get(k.gen)
        pipe.xrevrange(k.events, count=1)
        pipe.smembers(k.nodes)
        epoch, gen, last, members = pipe.execute()
        try:
            gen = int(gen or 0)
        except ValueError:
            gen = 0
        # a new epoch, or a generation counter that went back: Redis lost its data
        restarted = self._epoch is not None and (epoch != self._epoch or gen < self._last_gen)
        self._epoch = epoch
        now = time.monotonic()
        if restarted:
            for rec in self._remote.values():
                rec.gen = 0  # generations start again from 1
            # Redis lost its data: the owners republish their nodes; until one
            # heartbeat timeout has passed, a node missing from Redis is kept
            self._grace_until = now + self._registry.phase3_config.heartbeat_timeout_s
            self._republish_due = True
            self._wake.set()
            log.warning("cluster sync %s: Redis lost its data (restart?); republishing and resyncing",
                        self.instance_id)
        ids = self._decode_ids(members)
        states: dict[str, NodeState] = {}
        missing: list[str] = []
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            pipe = r.pipeline(transaction=False)
            for node_id in chunk:
                pipe.hgetall(k.node(node_id))
            for node_id, fields in zip(chunk, pipe.execute(raise_on_error=False)):
                if not fields:
                    missing.append(node_id)
                    continue
                state = self._decode_hash(node_id, fields)
                if state is not None:
                    states[node_id] = state
        if missing:
            self._prune(missing)  # their hashes expired
        for state in states.values():
            self._apply_remote_state(state)
        for node_id in list(self._remote):
            if node_id not in states:
                self._drop_missing(node_id, now)
        self._sync_config()
        self._last_id = last[0][0] if last else b"0-0"
        self._last_gen = gen
        self._next_reconcile = time.monotonic() + self._reconcile_s
        self._count("resyncs")

    def _prune(self, node_ids: list[str]) -> None:
        """Take expired ids out of the node-id set (only those whose hash is still gone)."""
        for i in range(0, len(node_ids), _CHUNK):
            chunk = node_ids[i:i + _CHUNK]
            self._prune_script(
                keys=[self._k.nodes, *(self._k.node(n) for n in chunk)], args=chunk, client=self._r
            )

    def _drop_missing(self, node_id: str, now: float) -> None:
        if now < self._grace_until:
            return  # Redis restarted: give the owner time to republish it
        self._drop(node_id)

    def _sync_config(self) -> None:
        """Adopt Redis' config if newer; publish the local one if Redis has none.

        A version that does not decode (:func:`codec.decode_version`, or above the
        generation counter: no instance wrote it) counts as no version: the
        local config replaces the document by compare-and-set on version 0,
        as the script reads such a version as 0 too; one instance wins that
        race and the others adopt its document.
        """
        pipe = self._r.pipeline(transaction=True)
        pipe.hgetall(self._k.config)
        pipe.get(self._k.gen)
        fields, top = pipe.execute(raise_on_error=False)
        if isinstance(fields, Exception):
            log.error("cluster sync %s: the config key in Redis is not a hash (%s); "
                      "replacing it with the local config", self.instance_id, fields)
            self._count("malformed")
            fields = {}
        if not fields or not fields.get(b"doc"):
            self._republish_config(0)
            return
        try:
            version = codec.decode_version(fields.get(b"version"))
            if isinstance(top, Exception) or version > int(top or 0):
                raise MalformedEntry(f"config version {version} is above the generation counter")
        except (MalformedEntry, ValueError) as exc:
            log.error("cluster sync %s: the config version in Redis is unreadable (%s); "
                      "replacing the config with the local one", self.instance_id, exc)
            self._count("malformed")
            self._republish_config(0)
            return
        try:
            cfg = codec.decode_config(fields[b"doc"])
        except MalformedEntry as exc:
            log.error("cluster sync %s: the config in Redis (version %d) is unreadable (%s); "
                      "keeping and republishing the local one", self.instance_id, version, exc)
            self._count("malformed")
            self._republish_config(version)
            return
        self._adopt_config(version, cfg)

    def _republish_config(self, base: int) -> None:
        """Have the writer publish the local config over Redis' version ``base``."""
        with self._cfg_lock:
            self._cfg_version = base
            self._cfg_synced = None
            self._cfg_dirty = True
            self._cfg_base = base
        self._wake.set()

    def _reconcile(self) -> None:
        """Find the hashes that expired (their owner stopped) and the owned
        nodes Redis lost; notice a Redis that restarted empty."""
        self._next_reconcile = time.monotonic() + self._reconcile_s
        remote_ids = list(self._remote)
        with self._own_lock:
            owned_ids = [n for n in self._owned if self._alive(n)]
        ids = remote_ids + owned_ids
        missing: set[int] = set()
        node_key = self._k.node
        for i in range(0, max(len(ids), 1), _RECONCILE_CHUNK):
            chunk = ids[i:i + _RECONCILE_CHUNK]
            reply = self._missing_script(
                keys=[self._k.epoch, *(node_key(n) for n in chunk)], client=self._r
            )
            if (reply[0] or None) != self._epoch:
                self._resync_due = True  # Redis restarted or was flushed
                return
            missing.update(i + int(j) - 1 for j in reply[1:])
        now = time.monotonic()
        for k, node_id in enumerate(remote_ids):
            rec = self._remote.get(node_id)
            if rec is not None and k not in missing:
                rec.seen = now
        gone = [remote_ids[k] for k in sorted(missing) if k < len(remote_ids)]
        for node_id in gone:
            if node_id in self._remote:
                self._drop_missing(node_id, now)
        if gone and now >= self._grace_until:
            self._prune(gone)
        lost = [ids[k] for k in sorted(missing) if k >= len(remote_ids)]
        for node_id in lost:
            self._queue.append(("put", node_id, None, None, time.time()))
        if lost:
            self._wake.set()
