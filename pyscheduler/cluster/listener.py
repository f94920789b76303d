"""The registry listener: local changes -> the writer's queue (dispatcher threads).

The registry calls :class:`Listener` after each change, outside every registry
lock, in the thread that made the change. It only queues the change and
returns: no Redis call ever runs in a dispatcher thread.
"""

from __future__ import annotations

import time
from typing import Literal

from ..domain.events import ChangeKind, RegistryEvent
from ..domain.model import Heartbeat, NodeInfo, NodeStatus
from .changes import BeatWithInfo, NodeAction, Registered, StatusChanged
from .config_cas import ConfigSync
from .context import SyncContext

__all__ = ["Listener"]

_ACTIONS: dict[ChangeKind, Literal["drain", "disc", "rm"]] = {
    ChangeKind.DRAINING: "drain",
    ChangeKind.DISCONNECTED: "disc",
    ChangeKind.REMOVED: "rm",
}


class Listener:
    """Turns each :class:`RegistryEvent` into a queue item for the writer."""

    def __init__(self, ctx: SyncContext, config: ConfigSync) -> None:
        self._ctx = ctx
        self._config = config

    def __call__(self, ev: RegistryEvent) -> None:
        ctx = self._ctx
        if ctx.applying_remote():
            return  # a change this instance's reader or writer applied: never echo it
        kind = ev.kind
        node_id = ev.node_id
        if kind is ChangeKind.HEARTBEAT:
            self._heartbeat(node_id, ev.heartbeat, ev.status)  # type: ignore[arg-type]
        elif kind is ChangeKind.REGISTERED:
            self._registered(node_id, ev.info)  # type: ignore[arg-type]
        elif kind in _ACTIONS:
            self._action(kind, node_id, ev.status)  # type: ignore[arg-type]
        elif kind is ChangeKind.STATUS:
            if node_id in ctx.owned:
                ctx.queue.submit(StatusChanged(node_id, ev.status, time.time()))  # type: ignore[arg-type]
        elif kind is ChangeKind.PHASE3_CONFIG:
            self._config.local_change()
        # CORE_SERVICES_CONFIG is per instance (deployment config): not shared

    def _heartbeat(self, node_id: str, hb: Heartbeat, status: NodeStatus) -> None:
        ctx = self._ctx
        if node_id not in ctx.owned:
            return  # a node owned elsewhere: its owner publishes its beats
        ctx.owned.beat(node_id)
        if hb.load_only:
            ctx.queue.beat(node_id, hb, status, time.time())
        else:
            ctx.queue.cut(node_id)
            ctx.queue.submit(BeatWithInfo(node_id, hb, status, time.time()))

    def _registered(self, node_id: str, info: NodeInfo) -> None:
        ctx = self._ctx
        ctx.owned.claim(node_id)
        ctx.queue.cut(node_id)
        ctx.queue.submit(Registered(node_id, info, time.time()))

    def _action(self, kind: ChangeKind, node_id: str, status: NodeStatus) -> None:
        ctx = self._ctx
        forced = node_id not in ctx.owned
        if kind is ChangeKind.REMOVED:
            ctx.owned.drop(node_id)
        elif kind is ChangeKind.DISCONNECTED:
            ctx.owned.disconnected(node_id)
            status = NodeStatus.OFFLINE
        ctx.queue.cut(node_id)
        ctx.queue.submit(NodeAction(_ACTIONS[kind], node_id, forced, status, time.time()))
