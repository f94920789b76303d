"""The engine of ``pyscheduler simulate``: a standard workload run in simulated time.

Time is virtual: a :class:`VirtualClock` is injected into the registry, and the
simulation moves it forward by ``job_interval_s`` per job. Between jobs it
applies, in time order, every event that fell due:

- **completions**: a placed job ends ``job_duration_s`` (random) after it was
  committed; the node's running count *in the simulation* drops, and the
  registry learns it at the node's next heartbeat, as a real dispatcher would;
- **heartbeats**: every node beats each ``heartbeat_interval_s`` (from a random
  phase), reporting its own running-job count and jittered loads;
- **sweeps**: ``registry.sweep()`` every ``sweep_interval_s``.

Each job goes through ``select_node``; a success is committed at once. Only the
``select_node`` call is timed (``time.perf_counter_ns``, real time); decisions/s
is jobs divided by the real time spent inside it.

Everything random is drawn from :class:`random.Random` seeded from the seed, so
the *decisions* of a run are reproducible; the latencies are not.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .flags import MigrationFlags
from .model import Heartbeat, Reason
from .registry import NodeRegistry
from .workloads import JobStream, Workload, build_registry, make_workload

__all__ = ["TARGET_LOAD", "PoolUsage", "SimulationReport", "VirtualClock", "simulate"]

TARGET_LOAD = 0.5
"""Default offered load, as a share of fleet capacity, used to derive ``job_interval_s``."""

_COMPLETION, _HEARTBEAT, _SWEEP = 0, 1, 2


class VirtualClock:
    """A clock that only moves when told to: ``clock()`` returns ``clock.now``."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self.now += seconds
        return self.now


@dataclass(frozen=True)
class PoolUsage:
    """One pool at the end of a run. ``pool_id`` is ``None`` for single-level scheduling."""

    pool_id: int | None
    name: str
    members: int
    capacity: int  # sum of the members' max_concurrent_jobs
    in_use: int  # jobs the members are running (the simulation's count)
    placed: int  # jobs placed from this pool during the run

    @property
    def utilization(self) -> float:
        return self.in_use / self.capacity if self.capacity else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool_id": self.pool_id,
            "name": self.name,
            "members": self.members,
            "capacity": self.capacity,
            "in_use": self.in_use,
            "utilization": round(self.utilization, 4),
            "placed": self.placed,
        }


@dataclass(frozen=True)
class SimulationReport:
    """What one simulation measured. Latencies are in microseconds (real time)."""

    workload: str
    seed: int
    nodes: int
    pools: int
    path: str
    jobs: int
    successes: int
    decisions_per_s: float
    wall_time_s: float
    build_time_s: float
    select_time_s: float
    simulated_time_s: float
    job_interval_s: float
    latency_us: Mapping[str, float]
    rejections: Mapping[Reason, int]
    fallbacks: int
    heartbeats: int
    completions: int
    sweeps: int
    nodes_marked_by_sweep: int
    heartbeats_enabled: bool
    pool_usage: tuple[PoolUsage, ...] = field(default=())

    @property
    def failures(self) -> int:
        return self.jobs - self.successes

    @property
    def success_rate(self) -> float:
        return self.successes / self.jobs if self.jobs else 0.0

    def busiest_pools(self, n: int = 10) -> list[PoolUsage]:
        """The ``n`` pools that placed the most jobs (then by utilization, then id)."""
        ranked = sorted(
            self.pool_usage,
            key=lambda p: (-p.placed, -p.utilization, -1 if p.pool_id is None else p.pool_id),
        )
        return ranked[:n]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data (reasons by value, pools as a list)."""
        return {
            "workload": self.workload,
            "seed": self.seed,
            "nodes": self.nodes,
            "pools": self.pools,
            "path": self.path,
            "jobs": self.jobs,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": self.success_rate,
            "decisions_per_s": self.decisions_per_s,
            "wall_time_s": self.wall_time_s,
            "build_time_s": self.build_time_s,
            "select_time_s": self.select_time_s,
            "simulated_time_s": self.simulated_time_s,
            "job_interval_s": self.job_interval_s,
            "latency_us": dict(self.latency_us),
            "rejections": {r.value: n for r, n in self.rejections.items()},
            "fallbacks": self.fallbacks,
            "heartbeats": self.heartbeats,
            "heartbeats_enabled": self.heartbeats_enabled,
            "completions": self.completions,
            "sweeps": self.sweeps,
            "nodes_marked_by_sweep": self.nodes_marked_by_sweep,
            "pool_usage": [p.to_dict() for p in self.pool_usage],
        }


def _clamp(value: float) -> float:
    return 0.0 if value < 0.0 else 100.0 if value > 100.0 else round(value, 1)


def simulate(
    workload: str | Workload = "small",
    jobs: int = 1000,
    seed: int = 1,
    *,
    heartbeats: bool = True,
    job_interval_s: float | None = None,
    job_duration_s: tuple[float, float] = (5.0, 60.0),
    sweep_interval_s: float = 5.0,
    flags: MigrationFlags | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Run ``jobs`` jobs of a standard workload through ``select_node`` in simulated time.

    ``workload``: a name from :data:`~pyscheduler.workloads.WORKLOADS` (built
    with ``seed``) or a :class:`Workload`. ``seed`` also seeds the job stream
    and the simulation's own draws. ``job_interval_s`` (simulated seconds
    between jobs) defaults to the value that offers :data:`TARGET_LOAD` of
    the fleet's capacity given the mean job duration. ``heartbeats=False``
    stops all heartbeats after the first (nodes then go stale after
    ``heartbeat_timeout_s``). ``progress(done, total)`` is called every 1,000 jobs.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    low, high = job_duration_s
    if not 0 < low <= high:
        raise ValueError(
            f"job_duration_s must be (low, high) with 0 < low <= high, got {job_duration_s!r}"
        )
    if sweep_interval_s <= 0:
        raise ValueError(f"sweep_interval_s must be > 0, got {sweep_interval_s!r}")
    wl = make_workload(workload, seed) if isinstance(workload, str) else workload
    if not isinstance(wl, Workload):
        raise TypeError(f"workload must be a name or a Workload, got {workload!r}")
    capacity = max(wl.capacity, 1)
    if job_interval_s is None:
        job_interval_s = (low + high) / 2 / (TARGET_LOAD * capacity)
    if not job_interval_s > 0:
        raise ValueError(f"job_interval_s must be > 0, got {job_interval_s!r}")

    wall_start = time.perf_counter()
    clock = VirtualClock(0.0)
    registry = build_registry(wl, clock, flags=flags)
    build_time = time.perf_counter() - wall_start

    rng = random.Random(f"pyscheduler-simulation:{wl.name}:{wl.seed}:{seed}")
    stream = JobStream(wl, seed)
    cfg = registry.phase3_config
    node_ids = wl.node_ids
    index = {node_id: i for i, node_id in enumerate(node_ids)}
    max_jobs = [info.max_concurrent_jobs for info in wl.nodes]
    base = [(hb.cpu_usage, hb.memory_usage, hb.gpu_usage) for hb in wl.initial_heartbeats]
    running = [hb.current_jobs for hb in wl.initial_heartbeats]

    # The event queue: (time, sequence, kind, node index).
    events: list[tuple[float, int, int, int]] = []
    seq = 0
    for i, n in enumerate(running):
        for _ in range(n):  # the jobs the fleet was already running end over time
            events.append((rng.uniform(0.0, high), seq, _COMPLETION, i))
            seq += 1
    if heartbeats:
        interval = cfg.heartbeat_interval_s
        for i in range(len(node_ids)):
            events.append((rng.uniform(0.0, interval), seq, _HEARTBEAT, i))
            seq += 1
    events.append((sweep_interval_s, seq, _SWEEP, -1))
    seq += 1
    heapq.heapify(events)

    latencies = np.empty(jobs, dtype=np.int64)
    rejections: Counter[Reason] = Counter()
    placed: Counter[int | None] = Counter()
    successes = fallbacks = beats = completions = sweeps = marked = 0
    path = "legacy"
    perf_ns = time.perf_counter_ns
    select = registry.select_node
    loop_start = time.perf_counter()

    for k in range(jobs):
        now = clock.advance(job_interval_s)
        while events and events[0][0] <= now:
            at, _, kind, i = heapq.heappop(events)
            clock.now = at
            if kind == _COMPLETION:
                if running[i] > 0:
                    running[i] -= 1
                completions += 1
            elif kind == _HEARTBEAT:
                cpu, memory, gpu = base[i]
                beat = Heartbeat(
                    cpu_usage=_clamp(cpu + rng.gauss(0.0, 3.0)),
                    memory_usage=_clamp(memory + rng.gauss(0.0, 2.0)),
                    gpu_usage=None if gpu is None else _clamp(gpu + rng.gauss(0.0, 3.0)),
                    current_jobs=running[i],
                )
                registry.update_node_heartbeat(node_ids[i], beat)
                beats += 1
                heapq.heappush(events, (at + cfg.heartbeat_interval_s, seq, _HEARTBEAT, i))
                seq += 1
            else:
                marked += len(registry.sweep())
                sweeps += 1
                heapq.heappush(events, (at + sweep_interval_s, seq, _SWEEP, -1))
                seq += 1
        clock.now = now

        job = next(stream)
        t0 = perf_ns()
        selection = select(job)
        latencies[k] = perf_ns() - t0

        path = selection.path
        if selection.fallback_used:
            fallbacks += 1
        if selection.ok:
            registry.commit(selection)
            i = index[selection.node_id]  # type: ignore[index]
            running[i] += 1
            successes += 1
            placed[selection.pool_id] += 1
            heapq.heappush(events, (now + rng.uniform(low, high), seq, _COMPLETION, i))
            seq += 1
        else:
            rejections[selection.breakdown.top_reason or Reason.NO_NODES] += 1
        if progress is not None and (k + 1) % 1000 == 0:
            progress(k + 1, jobs)

    wall_time = time.perf_counter() - loop_start
    select_ns = int(latencies.sum())
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) / 1000.0
    latency = {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(latencies.mean()) / 1000.0,
        "max": float(latencies.max()) / 1000.0,
    }
    usage = _pool_usage(registry, index, running, max_jobs, placed)
    return SimulationReport(
        workload=wl.name,
        seed=seed,
        nodes=len(node_ids),
        pools=sum(1 for p in usage if p.pool_id is not None),
        path=path,
        jobs=jobs,
        successes=successes,
        decisions_per_s=jobs / (select_ns / 1e9) if select_ns else float("inf"),
        wall_time_s=wall_time,
        build_time_s=build_time,
        select_time_s=select_ns / 1e9,
        simulated_time_s=clock.now,
        job_interval_s=job_interval_s,
        latency_us=latency,
        rejections=dict(sorted(rejections.items(), key=lambda rc: (-rc[1], rc[0].value))),
        fallbacks=fallbacks,
        heartbeats=beats,
        completions=completions,
        sweeps=sweeps,
        nodes_marked_by_sweep=marked,
        heartbeats_enabled=heartbeats,
        pool_usage=usage,
    )


def _pool_usage(
    registry: NodeRegistry,
    index: Mapping[str, int],
    running: list[int],
    max_jobs: list[int],
    placed: Counter[int | None],
) -> tuple[PoolUsage, ...]:
    out = []
    for pool in registry.pools():
        members = [index[m] for m in registry.pool_members(pool.pool_id)]
        out.append(
            PoolUsage(
                pool.pool_id,
                pool.name,
                len(members),
                sum(max_jobs[i] for i in members),
                sum(running[i] for i in members),
                placed.get(pool.pool_id, 0),
            )
        )
    if None in placed or not out:  # single-level scheduling: one candidate set of all nodes
        out.append(
            PoolUsage(
                None, "all nodes", len(running), sum(max_jobs), sum(running), placed.get(None, 0)
            )
        )
    return tuple(out)
