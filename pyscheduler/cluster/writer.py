"""The writer thread: the change queue -> batched Lua calls to Redis.

It sends up to ``batch_size`` operations per call of
:data:`~.scripts.APPLY_BATCH`, publishes the local config
(:class:`~.config_cas.ConfigSync`), and republishes every owned node whole
after a queue overflow, a reconnection, or when Redis lost its data. While
Redis is unreachable it keeps its batch and retries (:class:`~.backoff.Backoff`).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, NamedTuple

from ..domain.errors import UnknownNodeError
from ..domain.model import Heartbeat, NodeStatus
from . import codec
from .backoff import Backoff
from .changes import Beat, BeatWithInfo, NodeAction, QueueItem, Registered, Republish, StatusChanged
from .codec import MalformedEntry
from .config_cas import ConfigSync
from .context import SyncContext, log
from .redis_errors import TRANSIENT, redis
from .scripts import APPLY_BATCH, SET_CONFIG

__all__ = ["ScriptOp", "Writer"]

CHUNK = 1000  # keys per pipeline when reading the node-id set's hashes


class ScriptOp(NamedTuple):
    """One operation of :data:`~.scripts.APPLY_BATCH`, in its argument order."""

    kind: str  # reg, put, hb, st, drain, disc, rm; '!' first: an operator action on a node owned elsewhere
    node_id: str
    ttl_ms: str
    info: str  # NodeInfo JSON, or empty
    status: str
    load: str  # codec.encode_load, or empty
    flags: str
    at: str  # wall-clock time of the change


class Writer:
    """The writer thread's loop and state."""

    def __init__(self, ctx: SyncContext, config: ConfigSync, client: Any, *, batch_size: int) -> None:
        self._ctx = ctx
        self._config = config
        self.client = client
        self._batch_size = batch_size
        self._batch_script = client.register_script(APPLY_BATCH)
        self._config_script = client.register_script(SET_CONFIG)
        self.republish_due = True
        self.busy = False
        self.down = False
        self.synced = threading.Event()
        self._announce_synced = False  # set synced after this round's config publish
        self.stop = threading.Event()
        self.deadline = math.inf  # set by close(): write what is queued until then
        self._batch: list[ScriptOp] | None = None  # taken from the queue, not yet written
        self._conflicts = Backoff(0.0, 1.0)  # between config compare-and-sets that lost

    def request_republish(self) -> None:
        """Write every owned node whole at the next round (any thread)."""
        self.republish_due = True
        self._ctx.queue.wake.set()

    def _done(self) -> bool:
        if not self.stop.is_set():
            return False
        if time.monotonic() >= self.deadline:
            return True
        return self._batch is None and not len(self._ctx.queue) and not self._config.dirty

    def run(self) -> None:
        """The thread's body: rounds until :attr:`stop` (then the queue drained or the deadline)."""
        ctx = self._ctx
        ctx.mark_applying_remote()
        backoff = Backoff()
        while not self._done():
            try:
                self._round()
                backoff.reset()
            except TRANSIENT as exc:
                if not self.down:
                    self.down = True
                    log.warning("cluster sync %s: Redis unreachable (%s); local registry goes on, retrying",
                                ctx.instance_id, exc,
                                extra={"event": "cluster.redis_unreachable",
                                       "instance_id": ctx.instance_id, "error": str(exc)})
                ctx.counters.count("write_errors")
                backoff.pause(self.stop, self.deadline - time.monotonic())
            except Exception as exc:  # noqa: BLE001 - logged whole; the batch is dropped
                if redis is not None and isinstance(exc, redis.ResponseError):
                    log.error("cluster sync %s: Redis refused a write (%s); republishing",
                              ctx.instance_id, exc,
                              extra={"event": "cluster.write_refused", "instance_id": ctx.instance_id,
                                     "error": str(exc)})
                    ctx.counters.count("write_refused")
                else:
                    log.exception("cluster sync %s: writer error; republishing", ctx.instance_id,
                                  extra={"event": "cluster.writer_error",
                                         "instance_id": ctx.instance_id, "error": str(exc)})
                    ctx.counters.count("writer_errors")
                self._batch = None  # the republish covers it
                self.busy = False
                self.republish_due = True
                backoff.pause(self.stop, self.deadline - time.monotonic())
        self.busy = False

    def _round(self) -> None:
        """Republish if due, publish the config, send one batch (kept for the next
        round if Redis is unreachable), then wait for work."""
        ctx = self._ctx
        queue = ctx.queue
        if queue.overflow:
            queue.overflow = False
            self.republish_due = True
        if self.republish_due:
            self.republish_due = False
            try:
                self._republish_all()
            except BaseException:
                self.republish_due = True
                raise
            self._announce_synced = True
        published = self._config.publish(self.client, self._config_script)
        if self._announce_synced:
            # synced once the nodes are republished *and* the config is settled in
            # Redis (written, or lost to another instance's, which the reader adopts)
            self._announce_synced = False
            self.synced.set()
        if published:
            self._conflicts.reset()
        else:  # lost a compare-and-set: retry soon, but never in a tight loop
            self._conflicts.pause(self.stop, self.deadline - time.monotonic())
        if self._batch is None:
            self.busy = True
            self._batch = self._build_ops(queue.take(self._batch_size))
        if self._batch:
            self._send(self._batch)
            ctx.counters.count("written", len(self._batch))
        self._batch = None
        self.busy = False
        if self.down:
            self.down = False
            log.warning("cluster sync %s: Redis is back; republishing owned nodes", ctx.instance_id,
                        extra={"event": "cluster.redis_back", "instance_id": ctx.instance_id})
            self.republish_due = True
        if not len(queue) and not queue.overflow and not self.republish_due:
            queue.wake.clear()
            if not len(queue) and not self._config.dirty and not self.stop.is_set():
                queue.wake.wait(0.5)

    def _build_ops(self, items: list[QueueItem]) -> list[ScriptOp]:
        """Queue items -> script operations (a node gone meanwhile is left out)."""
        ttl = self._ctx.ttl_ms()
        ops = []
        for item in items:
            op = self._op(item, ttl)
            if op is not None:
                ops.append(op)
        return ops

    def _op(self, item: QueueItem, ttl: str) -> ScriptOp | None:
        if isinstance(item, Beat):
            hb, status, at = self._ctx.queue.claim(item)
            return ScriptOp("hb", item.node_id, ttl, "", status.value, codec.encode_load(hb), "", repr(at))
        if isinstance(item, BeatWithInfo):
            try:
                info = self._ctx.registry.get_node(item.node_id).info
            except UnknownNodeError:
                return None
            return ScriptOp("hb", item.node_id, ttl, codec.encode_info(info), item.status.value,
                            codec.encode_load(item.heartbeat), "", repr(item.at))
        if isinstance(item, Registered):
            return ScriptOp("reg", item.node_id, ttl, codec.encode_info(item.info),
                            NodeStatus.REGISTERING.value, "", "", repr(item.at))
        if isinstance(item, NodeAction):
            status = "" if item.status is None else item.status.value
            kind = ("!" if item.forced else "") + item.action
            return ScriptOp(kind, item.node_id, ttl, "", status, "", "", repr(item.at))
        if isinstance(item, StatusChanged):
            return ScriptOp("st", item.node_id, ttl, "", item.status.value, "", "", repr(item.at))
        assert isinstance(item, Republish)
        return self._put_op(item.node_id, ttl)

    def _put_op(self, node_id: str, ttl: str) -> ScriptOp | None:
        """The whole state of an owned node, to (re)publish it; None if it is gone or silent."""
        ctx = self._ctx
        if node_id not in ctx.owned or not ctx.owned.alive(node_id, ctx.heartbeat_timeout_s()):
            return None
        try:
            view = ctx.registry.get_node(node_id)
        except UnknownNodeError:
            return None
        if view.status is NodeStatus.OFFLINE:
            return None
        load = ""
        if view.status is not NodeStatus.REGISTERING:
            hb = Heartbeat(view.cpu_usage, view.memory_usage, view.gpu_usage, view.running_jobs)
            load = codec.encode_load(hb)
        flags = codec.encode_flags(view.draining, False)
        return ScriptOp("put", node_id, ttl, codec.encode_info(view.info), view.status.value, load, flags,
                        repr(time.time()))

    def _send(self, ops: list[ScriptOp]) -> None:
        """One script call; then act on each operation's verdict."""
        ctx = self._ctx
        keys = ctx.keys
        script_keys = [keys.events, keys.gen, keys.nodes, keys.config]
        args: list[Any] = [ctx.instance_id, ctx.stream_maxlen]
        for op in ops:
            script_keys.append(keys.node(op.node_id))
            args.extend(op)
        verdicts = self._batch_script(keys=script_keys, args=args, client=self.client)
        for op, verdict in zip(ops, verdicts):
            if verdict == b"ok":
                continue
            node_id = op.node_id
            if verdict == b"replaced":
                log.warning("cluster sync %s: the key of node %s in Redis was not a hash; replaced it",
                            ctx.instance_id, node_id,
                            extra={"event": "cluster.node_key_replaced",
                                   "instance_id": ctx.instance_id, "node_id": node_id})
                ctx.counters.count("replaced_keys")
            elif verdict == b"missing":
                # the hash expired, Redis lost it, or it is garbage: republish the node whole
                if node_id in ctx.owned:
                    ctx.queue.push(Republish(node_id, time.time()))
            elif verdict == b"owner":
                ctx.disown(node_id, "another instance owns it in Redis")

    def _republish_all(self) -> None:
        """Write every owned node whole, and remove the hashes Redis says this
        instance owns but it does not (removed while Redis was unreachable)."""
        ctx = self._ctx
        ctx.queue.clear_pending()
        ttl = ctx.ttl_ms()
        owned = ctx.owned.ids()
        ops = [op for op in (self._put_op(n, ttl) for n in owned) if op is not None]
        members = sorted(decode_ids(self.client.smembers(ctx.keys.nodes), ctx.instance_id))
        owned_set = set(owned)
        now = repr(time.time())
        mine = ctx.id_bytes
        for i in range(0, len(members), CHUNK):
            chunk = members[i:i + CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for node_id in chunk:
                pipe.hget(ctx.keys.node(node_id), "owner")
            for node_id, owner in zip(chunk, pipe.execute(raise_on_error=False)):
                if owner == mine and node_id not in owned_set:
                    ops.append(ScriptOp("rm", node_id, ttl, "", "", "", "", now))
        for i in range(0, len(ops), self._batch_size):
            self._send(ops[i:i + self._batch_size])
        ctx.counters.count("republished", len(ops))


def decode_ids(raw: Any, instance_id: str) -> list[str]:
    """The valid node ids of the node-id set (a bad member is logged and skipped)."""
    out = []
    for item in raw:
        try:
            out.append(codec.decode_node_id(item))
        except MalformedEntry as exc:
            log.warning("cluster sync: skipping a bad member of the node-id set: %s", exc,
                        extra={"event": "cluster.bad_node_id", "instance_id": instance_id,
                               "error": str(exc)})
    return out

