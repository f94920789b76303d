"""The registry's structured log events: one function per event.

Each event is logged with a fixed message template (``record.msg`` never
changes, so a pipeline can match on it) and its values as ``extra=`` fields
on the record, always including ``event`` (a stable dotted name). Callers log
after releasing their locks: a slow handler never delays a dispatch.
The library adds no handlers; ``docs/OPERATIONS.md`` has the table of events
and fields, and a JSON formatter.

Logger names are part of the contract: ``pyscheduler.registry`` (nodes,
config, shadow comparison, listeners), ``pyscheduler.sessions`` and
``pyscheduler.locks`` (``pyscheduler.cluster`` belongs to the Redis sync).
"""

from __future__ import annotations

import logging

from ..domain.model import NodeStatus

__all__ = [
    "listener_failed",
    "node_registered",
    "node_removed",
    "node_status_changed",
    "phase3_config_changed",
    "reference_path",
    "reservations_expired",
    "session_rebound",
    "shadow_mismatch",
    "slow_lock_wait",
]

registry_log = logging.getLogger("pyscheduler.registry")
sessions_log = logging.getLogger("pyscheduler.sessions")
locks_log = logging.getLogger("pyscheduler.locks")


def node_registered(node_id: str, policy: str, replaced: bool) -> None:
    """INFO ``node.registered``: a node was added (or replaced an old one)."""
    if registry_log.isEnabledFor(logging.INFO):
        registry_log.info(
            "node %s registered", node_id,
            extra={"event": "node.registered", "node_id": node_id, "policy": policy, "replaced": replaced},
        )  # fmt: skip


def node_status_changed(node_id: str, from_state: NodeStatus, to_state: NodeStatus, cause: str) -> None:
    """INFO ``node.status``: a node's status moved (``cause``: heartbeat, sweep, drain, disconnect)."""
    if registry_log.isEnabledFor(logging.INFO):
        registry_log.info(
            "node %s: %s -> %s (%s)", node_id, from_state.value, to_state.value, cause,
            extra={"event": "node.status", "node_id": node_id, "from_state": from_state.value,
                   "to_state": to_state.value, "cause": cause},
        )  # fmt: skip


def node_removed(node_id: str) -> None:
    """INFO ``node.removed``: a node was forgotten."""
    if registry_log.isEnabledFor(logging.INFO):
        registry_log.info("node %s removed", node_id, extra={"event": "node.removed", "node_id": node_id})


def phase3_config_changed(pools: int, generated_pools: int) -> None:
    """INFO ``config.phase3``: the Phase3 config was replaced; pools are refreshed."""
    if registry_log.isEnabledFor(logging.INFO):
        registry_log.info(
            "phase3 config replaced: %d pools (%d generated)", pools, generated_pools,
            extra={"event": "config.phase3", "pools": pools, "generated_pools": generated_pools},
        )  # fmt: skip


def reservations_expired(count: int) -> None:
    """INFO ``reservations.expired``: a sweep dropped ``count`` (> 0) reservations past their TTL."""
    if registry_log.isEnabledFor(logging.INFO):
        registry_log.info(
            "%d reservations expired", count, extra={"event": "reservations.expired", "count": count}
        )


def shadow_mismatch(
    src_lang: str, tgt_lang: str, session_id: str | None, served: str,
    fast_node_id: str | None, legacy_node_id: str | None, fast_explain: str, legacy_explain: str,
) -> None:  # fmt: skip
    """WARNING ``shadow.mismatch``: the fast and legacy paths decided differently."""
    registry_log.warning(
        "shadow_compare: fast and legacy paths differ for %s -> %s (session %s): fast %s | legacy %s",
        src_lang, tgt_lang, session_id, fast_explain, legacy_explain,
        extra={"event": "shadow.mismatch", "src_lang": src_lang, "tgt_lang": tgt_lang,
               "session_id": session_id, "served": served, "fast_node_id": fast_node_id,
               "legacy_node_id": legacy_node_id},
    )  # fmt: skip


def listener_failed(listener: object, kind: str) -> None:
    """ERROR ``listener.failed`` (with the traceback): a ``subscribe`` listener raised."""
    registry_log.exception(
        "registry listener %r failed on %s", listener, kind,
        extra={"event": "listener.failed", "listener": repr(listener), "change": kind},
    )  # fmt: skip


def reference_path(reason: str) -> None:
    """WARNING ``registry.reference_path``: the compiled extension is missing, so
    ``NodeRegistry()`` runs the pure-Python reference path (said once per process)."""
    registry_log.warning(
        "pyscheduler._hotpath is %s: NodeRegistry() runs the reference (legacy) path", reason,
        extra={"event": "registry.reference_path", "reason": reason},
    )  # fmt: skip


def session_rebound(session_id: str, from_pool: int, src_lang: str, tgt_lang: str) -> None:
    """INFO ``session.rebound``: a session's bound pool is no longer eligible; it is bound anew."""
    if sessions_log.isEnabledFor(logging.INFO):
        sessions_log.info(
            "session %s: bound pool %s is no longer eligible for %s -> %s; rebinding",
            session_id, from_pool, src_lang, tgt_lang,
            extra={"event": "session.rebound", "session_id": session_id, "pool_id": from_pool,
                   "src_lang": src_lang, "tgt_lang": tgt_lang},
        )  # fmt: skip


def slow_lock_wait(lock: str, site: str, waited_s: float) -> None:
    """WARNING ``lock.slow_wait``: an acquisition waited more than the slow-wait threshold."""
    locks_log.warning(
        "%s lock: waited %.1f ms in %s", lock, waited_s * 1e3, site,
        extra={"event": "lock.slow_wait", "lock": lock, "site": site, "wait_ms": round(waited_s * 1e3, 3)},
    )  # fmt: skip
