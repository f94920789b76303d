"""Shared helpers of the cluster tests (``tests/test_cluster*.py``).

Every wait polls against a deadline (:func:`wait_until`); nothing sleeps for
a fixed time and hopes. :func:`cluster_factory` backs each module's
``cluster`` fixture: ``make(name, cfg=None, **sync_kwargs)`` starts a
registry and its sync on the test's own key prefix, all closed afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from helpers import phase3, pool

from pyscheduler import JobRequest, NodeRegistry, NodeStatus, Phase3Config
from pyscheduler.cluster import RedisClusterSync, codec

FAST = {"reconcile_interval_s": 0.1, "block_ms": 50}

Make = Callable[..., tuple[NodeRegistry, RedisClusterSync]]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # e.g. UnknownNodeError before the node arrives
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.005)


def stream(env) -> list[list[bytes]]:
    """The parts of every entry of the test's change stream (see cluster/scripts.py)."""
    return [f[b"e"].split(codec.SEP) for _, f in env.client.xrange(f"{env.prefix}:events")]


def status(reg: NodeRegistry, node_id: str) -> NodeStatus | None:
    """The node's status in ``reg``, None when ``reg`` does not know it."""
    try:
        return reg.get_node(node_id).status
    except Exception:
        return None


def picks(reg: NodeRegistry, node_id: str, src: str = "en", tgt: str = "zh") -> bool:
    """Whether ``reg`` can dispatch a job to ``node_id`` (the reservation is released)."""
    sel = reg.select_node(JobRequest(src, tgt, exclude_node_ids=frozenset(set(reg.node_ids()) - {node_id})))
    if sel.ok:
        reg.release(sel)
    return sel.node_id == node_id


def counts(sync: RedisClusterSync) -> dict[str, int]:
    """The sync's counters (``stats()["counts"]``)."""
    return sync.stats()["counts"]


def cluster_factory(redis_env) -> Iterator[Make]:
    """The generator behind each module's ``cluster`` fixture."""
    made: list[RedisClusterSync] = []

    def make(name: str, cfg: Phase3Config | None = None, url: str | None = None, **kw):
        reg = NodeRegistry(cfg if cfg is not None else phase3(pool(1, ["en", "zh"])))
        options = {**FAST, **kw}
        sync = RedisClusterSync(reg, url or redis_env.url, instance_id=name, prefix=redis_env.prefix, **options)
        made.append(sync)
        sync.start()
        assert sync.wait_synced(10), f"{name} did not sync"
        return reg, sync

    yield make
    for sync in made:
        sync.close(timeout=2.0)
