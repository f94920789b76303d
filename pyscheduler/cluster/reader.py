"""The reader thread: the change stream -> this instance's registry.

It blocks on ``XREAD``, skips its own entries, and applies the other
instances' changes through the registry's public methods. Each applied change
of a node records its generation, so an older one (already read whole) is
skipped. A generation that is not the previous one plus one is a gap (the
stream was trimmed past the reader, or Redis lost its data): the reader then
resyncs, reading every node hash. Every ``reconcile_interval_s`` it checks
that the epoch is unchanged and which hashes expired.

Anything read that does not decode is logged, counted (``malformed``) and
skipped; the reader goes on with the next entry or hash.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..domain.errors import SchedulerError, UnknownNodeError
from ..domain.model import Heartbeat, NodeStatus
from ..state.nodes import UNHEALTHY_BEATS_TO_DEGRADE
from . import codec
from .backoff import Backoff
from .changes import NodeAction, Republish
from .codec import MalformedEntry, NodeState
from .config_cas import ConfigSync
from .context import SyncContext, log, text
from .redis_errors import TRANSIENT, redis
from .scripts import FIND_MISSING, PRUNE_IDS, REPAIR_KEYS
from .writer import CHUNK, Writer, decode_ids

__all__ = ["Reader", "RemoteNode"]

RECONCILE_CHUNK = 5000  # hashes checked per script call in a reconciliation


@dataclass(slots=True)
class RemoteNode:
    """A node owned by another instance, as this instance last applied it."""

    owner: str
    generation: int  # of the last change applied
    flags: str  # codec flags as applied (draining, disconnected)
    seen: float  # time.monotonic() when Redis last confirmed it


class Reader:
    """The reader thread's loop and state (touched by that thread only, but for
    the flags the facade reads)."""

    def __init__(self, ctx: SyncContext, config: ConfigSync, writer: Writer, client: Any, *,
                 block_ms: int, read_count: int, reconcile_s: float) -> None:
        self._ctx = ctx
        self._config = config
        self._writer = writer
        self.client = client
        self._block_ms = block_ms
        self._read_count = read_count
        self._reconcile_s = reconcile_s
        self._prune_script = client.register_script(PRUNE_IDS)
        self._missing_script = client.register_script(FIND_MISSING)
        self._repair_script = client.register_script(REPAIR_KEYS)
        self.remote: dict[str, RemoteNode] = {}
        self._last_id: bytes | str = b"0-0"
        self.last_generation = 0
        self._epoch: bytes | None = None
        self._grace_until = 0.0
        self._fetch: set[str] = set()
        self._pull_config = False
        self._next_reconcile = 0.0
        self._behind_at: int | None = None  # last_generation when the counter was seen ahead of it
        self.resync_due = True
        self.down = False
        self.synced = threading.Event()
        self.stop = threading.Event()
        self.gate = threading.Event()  # cleared: the reader pauses (benchmarks)
        self.gate.set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """The thread's body: rounds until :attr:`stop`."""
        ctx = self._ctx
        ctx.mark_applying_remote()
        backoff = Backoff()
        while not self.stop.is_set():
            if not self.gate.is_set():
                self.gate.wait(0.05)
                continue
            try:
                self._round()
                backoff.reset()
            except TRANSIENT as exc:
                if not self.down:
                    self.down = True
                    log.warning("cluster sync %s: cannot read from Redis (%s); retrying",
                                ctx.instance_id, exc,
                                extra={"event": "cluster.read_unreachable",
                                       "instance_id": ctx.instance_id, "error": str(exc)})
                self.resync_due = True
                ctx.counters.count("read_errors")
                backoff.pause(self.stop)
            except Exception as exc:  # noqa: BLE001 - logged, then read Redis again
                if redis is not None and isinstance(exc, redis.ResponseError):
                    # e.g. a key of the wrong type: the resync repairs it
                    log.error("cluster sync %s: Redis refused a read (%s); resyncing", ctx.instance_id, exc,
                              extra={"event": "cluster.read_refused", "instance_id": ctx.instance_id,
                                     "error": str(exc)})
                    ctx.counters.count("read_refused")
                else:
                    log.exception("cluster sync %s: reader error; resyncing", ctx.instance_id,
                                  extra={"event": "cluster.reader_error",
                                         "instance_id": ctx.instance_id, "error": str(exc)})
                    ctx.counters.count("reader_errors")
                self.resync_due = True
                backoff.pause(self.stop)

    def _round(self) -> None:
        if self.resync_due:
            self._resync()
            self.resync_due = False
            self.synced.set()
        reply = self.client.xread(
            {self._ctx.keys.events: self._last_id}, count=self._read_count, block=self._block_ms
        )
        if reply:
            self._apply_entries(reply[0][1])
        if self._fetch:
            self._fetch_nodes()
        if self._pull_config:
            self._pull_config = False
            self._config.pull(self.client)
        if time.monotonic() >= self._next_reconcile:
            self._reconcile()
        if self.down:
            self.down = False
            log.warning("cluster sync %s: reading from Redis again", self._ctx.instance_id,
                        extra={"event": "cluster.read_back", "instance_id": self._ctx.instance_id})

    # -- the stream -------------------------------------------------------------------------

    def _apply_entries(self, entries: list) -> None:
        ctx = self._ctx
        own = ctx.id_bytes
        delays = ctx.counters.delays
        applied = 0
        for entry in entries:
            try:
                entry_id, fields = entry
                self._last_id = entry_id
                gen, origin, at, kind, parts = codec.decode_entry(fields)
            except (MalformedEntry, TypeError, ValueError) as exc:
                bad_id = entry[0] if entry else entry
                log.warning("cluster sync %s: skipping malformed stream entry %r: %s",
                            ctx.instance_id, bad_id, exc,
                            extra={"event": "cluster.malformed_entry", "instance_id": ctx.instance_id,
                                   "entry_id": text(bad_id), "error": str(exc)})
                ctx.counters.count("malformed")
                continue
            if gen != self.last_generation + 1:
                log.warning("cluster sync %s: stream generation %d after %d: missed changes, resyncing",
                            ctx.instance_id, gen, self.last_generation,
                            extra={"event": "cluster.stream_gap", "instance_id": ctx.instance_id,
                                   "generation": gen, "last_generation": self.last_generation})
                ctx.counters.count("gaps")
                self.resync_due = True
                return
            self.last_generation = gen
            if origin == own:
                continue
            try:
                if self._apply(kind, parts, gen, origin):
                    applied += 1
                    delays.append(time.time() - at)
            except MalformedEntry as exc:
                log.warning("cluster sync %s: skipping malformed stream entry %r: %s",
                            ctx.instance_id, entry_id, exc,
                            extra={"event": "cluster.malformed_entry", "instance_id": ctx.instance_id,
                                   "entry_id": text(entry_id), "error": str(exc)})
                ctx.counters.count("malformed")
            except SchedulerError as exc:
                # the registry refused it (e.g. a node it does not know): read the hash instead
                log.debug("cluster sync %s: %s change refused (%s); fetching the node",
                          ctx.instance_id, kind, exc,
                          extra={"event": "cluster.change_refused", "instance_id": ctx.instance_id,
                                 "entry_id": text(entry_id), "kind": text(kind),
                                 "error": str(exc)})
                if kind != b"cfg":
                    try:
                        self._fetch.add(codec.decode_node_id(parts[codec.NODE]))
                    except MalformedEntry:
                        pass
            except Exception:
                # a defect, not bad input: logged whole, and this entry only is lost
                log.exception("cluster sync %s: could not apply stream entry %r", ctx.instance_id, entry_id,
                              extra={"event": "cluster.apply_error", "instance_id": ctx.instance_id,
                                     "entry_id": text(entry_id)})
                ctx.counters.count("apply_errors")
        if applied:
            ctx.counters.count("applied", applied)

    def _apply(self, kind: bytes, parts: list[bytes], gen: int, origin: bytes) -> bool:
        """Apply one change of another instance; False when it was stale or deferred."""
        if kind == b"hb":  # the common case first
            return self._apply_beat(parts, gen)
        if kind == b"cfg":
            codec.decode_version(parts[5])
            self._pull_config = True
            return True
        node_id = codec.decode_node_id(parts[codec.NODE])
        origin_id = codec.decode_owner(origin)
        rec = self.remote.get(node_id)
        if rec is not None and gen <= rec.generation:
            return False
        if kind == b"reg":
            return self._apply_registered(node_id, origin_id, gen, parts)
        if kind == b"put":
            if node_id in self._ctx.owned:
                return False
            self._apply_state(codec.decode_put(node_id, origin_id, gen, parts))
            return True
        if kind in (b"drain", b"disc"):
            return self._apply_action(kind, node_id, gen, parts)
        return self._apply_removed(node_id, origin_id)

    def _apply_beat(self, parts: list[bytes], gen: int) -> bool:
        try:
            node_id = parts[codec.NODE].decode()
        except UnicodeDecodeError:
            raise MalformedEntry(f"node id {parts[codec.NODE]!r:.60} is not UTF-8") from None
        owned = node_id in self._ctx.owned
        rec = self.remote.get(node_id)
        if rec is None or owned:
            if rec is None and not owned:
                self._fetch.add(codec.decode_node_id(parts[codec.NODE]))
            return False  # a node this instance owns now: its beats are ours
        if gen <= rec.generation:
            return False  # already applied (read whole during a resync)
        hb = codec.decode_load(parts[6])
        if len(parts) > 7:
            info = codec.decode_info(parts[7], node_id)
            hb = Heartbeat(hb.cpu_usage, hb.memory_usage, hb.gpu_usage, hb.current_jobs,
                           info.installed_services, info.language_capabilities)
        got = self._ctx.registry.update_node_heartbeat(node_id, hb)
        if got is NodeStatus.READY and parts[5] == b"degraded":
            self._mirror_degraded(node_id, hb)
        rec.generation = gen
        rec.seen = time.monotonic()
        return True

    def _apply_registered(self, node_id: str, origin_id: str, gen: int, parts: list[bytes]) -> bool:
        info = codec.decode_info(parts[5], node_id)
        if node_id in self._ctx.owned:
            self._ctx.disown(node_id, f"it registered again on {origin_id}")
        self._ctx.registry.register_node_with_policy(info, "replace")
        self.remote[node_id] = RemoteNode(origin_id, gen, "", time.monotonic())
        return True

    def _apply_action(self, kind: bytes, node_id: str, gen: int, parts: list[bytes]) -> bool:
        codec.decode_status(parts[5])
        reg = self._ctx.registry
        owned = node_id in self._ctx.owned
        try:
            if kind == b"drain":
                reg.mark_node_draining(node_id)
            else:
                reg.disconnect_node(node_id)
        except UnknownNodeError:
            if not owned:
                self._fetch.add(node_id)
            return False
        rec = self.remote.get(node_id)
        if owned:
            if kind == b"disc":
                self._ctx.owned.disconnected(node_id)
        elif rec is not None:
            rec.generation = gen
            rec.flags += codec.FLAG_DRAINING if kind == b"drain" else codec.FLAG_DISCONNECTED
        return True

    def _apply_removed(self, node_id: str, origin_id: str) -> bool:
        self.remote.pop(node_id, None)
        if node_id in self._ctx.owned:
            self._ctx.disown(node_id, f"removed by {origin_id}")
        try:
            self._ctx.registry.remove_node(node_id)
        except UnknownNodeError:
            return False
        return True

    def _mirror_degraded(self, node_id: str, hb: Heartbeat) -> None:
        """The owner counts a node DEGRADED after unhealthy beats some of which were
        coalesced away: re-apply the (unhealthy) beat until this registry agrees."""
        for _ in range(UNHEALTHY_BEATS_TO_DEGRADE):
            if self._ctx.registry.update_node_heartbeat(node_id, hb) is not NodeStatus.READY:
                return

    # -- whole nodes --------------------------------------------------------------------------

    def _apply_state(self, state: NodeState) -> None:
        """Make the local registry hold ``state`` (a hash or a ``put``) for a remote node."""
        ctx = self._ctx
        node_id = state.node_id
        if state.owner == ctx.instance_id:
            self.remote.pop(node_id, None)
            if node_id not in ctx.owned:
                # Redis says we own it but we do not (we restarted with this id): remove it
                ctx.queue.push(NodeAction("rm", node_id, False, None, time.time()))
            return
        if node_id in ctx.owned:
            ctx.disown(node_id, f"Redis says {state.owner} owns it")
        reg = ctx.registry
        rec = self.remote.get(node_id)
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
        self.remote[node_id] = RemoteNode(state.owner, state.generation, state.flags, time.monotonic())

    def _apply_whole(self, state: NodeState) -> None:
        """:meth:`_apply_state`, logging and counting (not raising) what the registry refuses."""
        try:
            self._apply_state(state)
        except SchedulerError as exc:
            log.warning("cluster sync %s: could not apply node %s: %s",
                        self._ctx.instance_id, state.node_id, exc,
                        extra={"event": "cluster.node_refused", "instance_id": self._ctx.instance_id,
                               "node_id": state.node_id, "error": str(exc)})
            self._ctx.counters.count("refused")

    def _decode_hash(self, node_id: str, fields: Any) -> NodeState | None:
        """A node hash as a pipeline read it (an error when the key is not a
        hash); None, logged and counted, when it is malformed."""
        try:
            if isinstance(fields, Exception):
                raise MalformedEntry(f"node key {node_id!r} is not a hash ({fields})")
            return codec.decode_node_hash(node_id, fields)
        except MalformedEntry as exc:
            log.warning("cluster sync %s: skipping malformed hash: %s", self._ctx.instance_id, exc,
                        extra={"event": "cluster.malformed_hash", "instance_id": self._ctx.instance_id,
                               "node_id": node_id, "error": str(exc)})
            self._ctx.counters.count("malformed")
            return None

    def _read_hashes(self, node_ids: list[str]) -> list[Any]:
        """Every listed node hash (or the error reading it), one pipeline per chunk."""
        out: list[Any] = []
        for i in range(0, len(node_ids), CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for node_id in node_ids[i:i + CHUNK]:
                pipe.hgetall(self._ctx.keys.node(node_id))
            out.extend(pipe.execute(raise_on_error=False))
        return out

    def _fetch_nodes(self) -> None:
        """Read whole the nodes a change named that this registry did not know."""
        ids = sorted(self._fetch)
        self._fetch.clear()
        for node_id, fields in zip(ids, self._read_hashes(ids)):
            if node_id in self._ctx.owned:
                continue
            if not fields:
                self._drop(node_id)
                continue
            state = self._decode_hash(node_id, fields)
            if state is not None:
                self._apply_whole(state)
        self._ctx.counters.count("fetched", len(ids))

    def _drop(self, node_id: str) -> None:
        """A remote node is gone from Redis: remove it here."""
        self.remote.pop(node_id, None)
        if node_id in self._ctx.owned:
            return
        try:
            self._ctx.registry.remove_node(node_id)
        except UnknownNodeError:
            return
        self._ctx.counters.count("expired")

    def _drop_missing(self, node_id: str, now: float) -> None:
        if now < self._grace_until:
            return  # Redis restarted: give the owner time to republish it
        self._drop(node_id)

    # -- resync and reconciliation --------------------------------------------------------------

    def _repair_and_ensure_epoch(self) -> None:
        """Delete shared keys of the wrong type (garbage), then set the epoch if
        Redis has none."""
        keys = self._ctx.keys
        repaired = self._repair_script(
            keys=[keys.events, keys.nodes, keys.gen, keys.epoch, keys.config], client=self.client
        )
        for key in repaired:
            log.warning("cluster sync %s: repaired %s in Redis: it held what cluster sync never writes there",
                        self._ctx.instance_id, key.decode(errors="replace"),
                        extra={"event": "cluster.key_repaired", "instance_id": self._ctx.instance_id,
                               "key": key.decode(errors="replace")})
            self._ctx.counters.count("replaced_keys")
        self.client.set(keys.epoch, uuid.uuid4().hex.encode(), nx=True)

    def _resync(self) -> None:
        """Read every node hash and the config; continue the stream from there."""
        ctx = self._ctx
        keys = ctx.keys
        self._repair_and_ensure_epoch()
        pipe = self.client.pipeline(transaction=True)
        pipe.get(keys.epoch)
        pipe.get(keys.gen)
        pipe.xrevrange(keys.events, count=1)
        pipe.smembers(keys.nodes)
        epoch, gen, last, members = pipe.execute()
        try:
            gen = int(gen or 0)
        except ValueError:
            gen = 0
        # a new epoch, or a generation counter that went back: Redis lost its data
        restarted = self._epoch is not None and (epoch != self._epoch or gen < self.last_generation)
        self._epoch = epoch
        now = time.monotonic()
        if restarted:
            self._restarted(now)
        ids = decode_ids(members, self._ctx.instance_id)
        states: dict[str, NodeState] = {}
        missing: list[str] = []
        for node_id, fields in zip(ids, self._read_hashes(ids)):
            if not fields:
                missing.append(node_id)
                continue
            state = self._decode_hash(node_id, fields)
            if state is not None:
                states[node_id] = state
        if missing:
            self._prune(missing)  # their hashes expired
        for state in states.values():
            self._apply_whole(state)
        for node_id in list(self.remote):
            if node_id not in states:
                self._drop_missing(node_id, now)
        self._config.pull(self.client)
        self._last_id = last[0][0] if last else b"0-0"
        self.last_generation = gen
        self._next_reconcile = time.monotonic() + self._reconcile_s
        ctx.counters.count("resyncs")

    def _restarted(self, now: float) -> None:
        """Redis lost its data: the owners republish their nodes; until one
        heartbeat timeout has passed, a node missing from Redis is kept."""
        for rec in self.remote.values():
            rec.generation = 0  # generations start again from 1
        self._grace_until = now + self._ctx.heartbeat_timeout_s()
        self._config.forget()  # versions start again too: adopt what the resync reads
        self._writer.request_republish()
        log.warning("cluster sync %s: Redis lost its data (restart?); republishing and resyncing",
                    self._ctx.instance_id,
                    extra={"event": "cluster.data_lost", "instance_id": self._ctx.instance_id})

    def _prune(self, node_ids: list[str]) -> None:
        """Take expired ids out of the node-id set (only those whose hash is still gone)."""
        keys = self._ctx.keys
        for i in range(0, len(node_ids), CHUNK):
            chunk = node_ids[i:i + CHUNK]
            self._prune_script(keys=[keys.nodes, *(keys.node(n) for n in chunk)], args=chunk,
                               client=self.client)

    def _stalled(self) -> bool:
        """Whether the counter has been ahead of this reader for a whole
        interval without the reader moving: its stream position is past every
        new entry (the stream was deleted after an entry with a huge id)."""
        try:
            top = int(self.client.get(self._ctx.keys.gen) or 0)
        except ValueError:
            return False  # garbage: the next write or resync repairs it
        behind = top > self.last_generation
        if behind and self._behind_at == self.last_generation:
            log.warning("cluster sync %s: the stream is at generation %d, this reader at %d and "
                        "not moving; resyncing", self._ctx.instance_id, top, self.last_generation,
                        extra={"event": "cluster.reader_stalled", "instance_id": self._ctx.instance_id,
                               "generation": top, "last_generation": self.last_generation})
            self._ctx.counters.count("stalls")
            self._behind_at = None
            return True
        self._behind_at = self.last_generation if behind else None
        return False

    def _reconcile(self) -> None:
        """Find the hashes that expired (their owner stopped) and the owned
        nodes Redis lost; notice a Redis that restarted empty."""
        ctx = self._ctx
        self._next_reconcile = time.monotonic() + self._reconcile_s
        if self._stalled():
            self.resync_due = True
            return
        remote_ids = list(self.remote)
        timeout = ctx.heartbeat_timeout_s()
        owned_ids = [n for n in ctx.owned.ids() if ctx.owned.alive(n, timeout)]
        ids = remote_ids + owned_ids
        missing: set[int] = set()
        for i in range(0, max(len(ids), 1), RECONCILE_CHUNK):
            chunk = ids[i:i + RECONCILE_CHUNK]
            reply = self._missing_script(keys=[ctx.keys.epoch, *(ctx.keys.node(n) for n in chunk)],
                                         client=self.client)
            if (reply[0] or None) != self._epoch:
                self.resync_due = True  # Redis restarted or was flushed
                return
            missing.update(i + int(j) - 1 for j in reply[1:])
        now = time.monotonic()
        for index, node_id in enumerate(remote_ids):
            rec = self.remote.get(node_id)
            if rec is not None and index not in missing:
                rec.seen = now
        gone = [remote_ids[index] for index in sorted(missing) if index < len(remote_ids)]
        for node_id in gone:
            if node_id in self.remote:
                self._drop_missing(node_id, now)
        if gone and now >= self._grace_until:
            self._prune(gone)
        for index in sorted(missing):
            if index >= len(remote_ids):  # an owned node Redis lost: republish it
                ctx.queue.push(Republish(ids[index], time.time()))
