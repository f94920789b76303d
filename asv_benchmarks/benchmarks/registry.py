"""Management: heartbeats, topology publish, config changes, memory.

Every figure is lower-is-better and per call: seconds per heartbeat, per
publish, per config change; peak memory; snapshot bytes per node. The
budgets are in docs/DESIGN.md (performance budget). A benchmark whose API a
measured commit lacks (``update_node_heartbeats``, ``snapshot().bytes_per_node``)
skips through ``NotImplementedError`` in ``setup``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from statistics import median

from pyscheduler import Heartbeat

try:  # the layered package (pyscheduler.tools); older commits kept it at the top
    from pyscheduler.tools.workloads import build_registry
except ImportError:  # pragma: no cover - asv runs over history
    from pyscheduler.workloads import build_registry

from .common import (
    LARGE,
    PATHS,
    WORKLOADS,
    Base,
    Base100k,
    Steady,
    fixed_clock,
    flags_for,
    new_registry,
    per_call_seconds,
    require,
)

#: Heartbeats per round of the heartbeat benchmarks.
HEARTBEAT_BLOCK = 1_000
#: Beats per ``update_node_heartbeats`` call (what one read of a receiver brings).
BURST = 8


def _no_undo(_result: object) -> None:
    """Load-only beats that repeat each node's first report leave nothing to undo."""


class UpdateNodeHeartbeat(Base):
    """Load-only heartbeats (the O(1) case), 1,000 per round over the fleet in
    order, each repeating the node's first report: the registry's state is the
    same after every round. The nodes are READY, so with the extension built
    each beat is one compiled call (docs/HOTPATH.md, "Heartbeats in one call")."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]
    purpose = "heartbeat"

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, self.purpose)
        wl = cache[workload]["workload"]
        beats = [
            (info.node_id, Heartbeat(b.cpu_usage, b.memory_usage, b.gpu_usage, b.current_jobs))
            for info, b in zip(wl.nodes, wl.initial_heartbeats)
        ]
        self.beats = [beats[i % len(beats)] for i in range(HEARTBEAT_BLOCK)]

    def track_heartbeat_seconds(self, cache, workload, path):
        """Seconds per ``update_node_heartbeat`` call (median of 9 rounds of 1,000)."""
        update, beats = self.steady.registry.update_node_heartbeat, self.beats

        def run() -> None:
            for node_id, beat in beats:
                update(node_id, beat)

        return per_call_seconds(run, _no_undo, len(beats), rounds=9)

    track_heartbeat_seconds.unit = "seconds"


class UpdateNodeHeartbeatSubscribed(UpdateNodeHeartbeat):
    """The same beats with a change listener subscribed (as cluster sync does):
    every beat takes the Python path under the registry lock and emits its
    event to a listener that does nothing."""

    purpose = "heartbeat-subscribed"  # a registry of its own

    def setup(self, cache, workload, path):
        super().setup(cache, workload, path)
        if not self.steady.state.get("subscribed"):
            self.steady.registry.subscribe(_no_undo)
            self.steady.state["subscribed"] = True


class UpdateNodeHeartbeats(UpdateNodeHeartbeat):
    """The same beats through ``update_node_heartbeats``, 8 per call (a receiver
    applying what one read brought). Skips on commits without that method."""

    def setup(self, cache, workload, path):
        super().setup(cache, workload, path)
        require(self.steady.registry, "update_node_heartbeats")

    def track_heartbeat_seconds(self, cache, workload, path):
        """Seconds per heartbeat applied in bursts of 8 (median of 9 rounds of 1,000)."""
        update, beats = self.steady.registry.update_node_heartbeats, self.beats
        bursts = [beats[i : i + BURST] for i in range(0, len(beats), BURST)]

        def run() -> None:
            for burst in bursts:
                update(burst)

        return per_call_seconds(run, _no_undo, len(beats), rounds=9)

    track_heartbeat_seconds.unit = "seconds"


class PublishSnapshot(Base):
    """A topology change and the snapshot the fast path reads after it: a node
    registers (a copy of a fleet node under a new id, so it joins that node's
    pools) + ``snapshot()``.

    Timed together, so the figure means the same whether the registry publishes
    eagerly on the change or lazily on the next read. ``setup`` removes the node
    the previous call registered (and publishes), outside the timing. A drain is
    not used: node status lives in the load table, so it changes no topology.
    """

    params = [WORKLOADS]
    param_names = ["workload"]
    number = 1
    repeat = (5, 40, 10.0)

    def setup(self, cache, workload):
        steady = self.steady = Steady.get(cache, workload, "fast", "publish")
        registry, state = steady.registry, steady.state
        nodes = cache[workload]["workload"].nodes
        if not state:
            state.update(next=0, added=None)
        if state["added"] is not None:
            registry.remove_node(state["added"])
            state["added"] = None
        registry.snapshot()
        k = state["next"]
        state["next"] += 1
        self.info = replace(nodes[k % len(nodes)], node_id=f"bench-extra-{k}")

    def time_publish_snapshot(self, cache, workload):
        registry = self.steady.registry
        self.steady.state["added"] = registry.register_node_with_policy(self.info)
        registry.snapshot()


class SetPhase3Config(Base):
    """A config change until the first dispatch can use it: ``set_phase3_config``
    (two configs alternate, differing in ``hash_seed`` and ``resource_threshold``;
    on ``10k`` pools are generated again from the fleet) + one ``select_node``."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]
    number = 1
    repeat = (5, 30, 10.0)

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "config")
        cfg = cache[workload]["workload"].phase3
        state = self.steady.state
        if not state:
            other = replace(cfg, hash_seed=cfg.hash_seed + 1, resource_threshold=86.0)
            state.update(configs=(other, cfg), next=0)
        self.cfg = state["configs"][state["next"] % 2]
        state["next"] += 1
        self.job = cache[workload]["jobs"][0]

    def time_set_phase3_config(self, cache, workload, path):
        registry = self.steady.registry
        registry.set_phase3_config(self.cfg)
        self.steady.pending = [registry.select_node(self.job)]


class Memory(Base):
    """What the registry costs in memory."""

    params = [PATHS]
    param_names = ["path"]

    def setup(self, cache, path):
        if path == "fast":
            new_registry(cache, "small", "fast")  # skips when the fast path is not built

    def peakmem_registry_10k(self, cache, path):
        """Peak RSS of a process holding the cached workloads and a ``10k`` registry
        with every node heartbeating (and, on the fast path, its snapshot)."""
        registry = build_registry(cache["10k"]["workload"], fixed_clock, flags=flags_for(path))
        if path == "fast":
            registry.snapshot()


class SnapshotSize(Base):
    params = [WORKLOADS]
    param_names = ["workload"]

    def setup(self, cache, workload):
        self.registry = new_registry(cache, workload, "fast")
        require(self.registry.snapshot(), "bytes_per_node")

    def track_snapshot_bytes_per_node(self, cache, workload):
        """Bytes of the runtime snapshot (topology columns + load records) per node."""
        return self.registry.snapshot().bytes_per_node

    track_snapshot_bytes_per_node.unit = "bytes/node"


class SnapshotSize100k(Base100k):
    """Bytes per node of the ``100k`` fleet's snapshot."""

    def setup(self, cache):
        self.registry = Steady.get(cache, LARGE, "fast", "size").registry
        require(self.registry.snapshot(), "bytes_per_node")

    def track_snapshot_bytes_per_node(self, cache):
        """Bytes of the runtime snapshot (topology columns + load records) per node."""
        return self.registry.snapshot().bytes_per_node

    track_snapshot_bytes_per_node.unit = "bytes/node"


class PublishDeltaOverFullRebuild(Base):
    """The delta publish against the full rebuild it replaces, in one run: a node
    registers + ``snapshot()`` (derived from the previous generation), then the
    same generation is rebuilt in full from the fleet; the figure is the ratio of
    the two medians over 9 rounds (each round's node is removed again, outside
    the timing). Skips on commits without delta publish."""

    params = [WORKLOADS]
    param_names = ["workload"]

    def setup(self, cache, workload):
        try:
            from pyscheduler.runtime.delta import derive_snapshot  # noqa: F401 - the feature probe
            from pyscheduler.runtime.snapshot import build_snapshot
        except ImportError:  # pragma: no cover - asv runs over history
            raise NotImplementedError("this commit has no delta publish") from None
        self.build_snapshot = build_snapshot
        self.steady = Steady.get(cache, workload, "fast", "delta")
        self.template = cache[workload]["workload"].nodes[0]

    def track_delta_over_full_rebuild(self, cache, workload):
        """(register + ``snapshot()``) / (full rebuild of that generation), medians of 9."""
        registry = self.steady.registry
        delta, full = [], []
        for k in range(9):
            node_id = f"bench-delta-{k}"
            t0 = time.perf_counter()
            registry.register_node_with_policy(replace(self.template, node_id=node_id))
            snap = registry.snapshot()
            delta.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.build_snapshot(registry._fleet, snap.loads, snap.version)
            full.append(time.perf_counter() - t0)
            registry.remove_node(node_id)
            registry.snapshot()
        return median(delta) / median(full)

    track_delta_over_full_rebuild.unit = "ratio"
