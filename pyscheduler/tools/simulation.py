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

- **node failures** (``fail_rate``): that share of the fleet fails once, at a
  random moment of the run, and stays down: half of them go silent (no more
  heartbeats; the registry finds out through ``heartbeat_stale`` and the
  sweep), half drop their connection (the dispatcher calls
  ``disconnect_node`` at once). Their running jobs are lost, and so is every
  job placed on a silent node before the registry noticed.

Each job goes through ``select_node``; a success is committed at once. Only the
``select_node`` call is timed (``time.perf_counter_ns``, real time); decisions/s
is jobs divided by the real time spent inside it.

The report keeps every call's latency and a :class:`Timeline` (fleet and
per-pool load, placements, nodes up, sampled ~200 times over the run) for
:func:`plot_report`, which draws them with matplotlib (the ``plot`` extra).

Everything random is drawn from :class:`random.Random` seeded from the seed, so
the *decisions* of a run are reproducible; the latencies are not.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..domain.flags import MigrationFlags
from ..domain.model import Heartbeat, Reason, Selection
from ..registry.node_registry import NodeRegistry
from .engines import ENGINES, describe_engine, engine_flags
from .report import percentile
from .workloads import JobStream, Workload, build_registry, make_workload

__all__ = [
    "ENGINES",
    "TARGET_LOAD",
    "FailureStats",
    "PlotUnavailable",
    "PoolUsage",
    "SimulationReport",
    "Timeline",
    "VirtualClock",
    "check_plotting",
    "engine_flags",
    "plot_report",
    "simulate",
]

TARGET_LOAD = 0.5
"""Default offered load, as a share of fleet capacity, used to derive ``job_interval_s``."""

_COMPLETION, _HEARTBEAT, _SWEEP, _FAILURE = 0, 1, 2, 3

#: Points of the timeline a run samples (at most; fewer for short runs).
TIMELINE_POINTS = 200


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
class FailureStats:
    """What ``fail_rate`` did to a run (all zero without failures)."""

    silent: int = 0  # nodes that stopped heartbeating
    disconnected: int = 0  # nodes whose connection dropped (``disconnect_node``)
    jobs_lost: int = 0  # jobs running on a node when it failed
    placed_on_failed: int = 0  # jobs placed on a silent node before the registry noticed

    @property
    def nodes(self) -> int:
        return self.silent + self.disconnected

    def to_dict(self) -> dict[str, int]:
        return {
            "nodes": self.nodes,
            "silent": self.silent,
            "disconnected": self.disconnected,
            "jobs_lost": self.jobs_lost,
            "placed_on_failed": self.placed_on_failed,
        }


@dataclass(frozen=True, eq=False)
class Timeline:
    """The run sampled over simulated time (row ``k`` of every array is sample ``k``).

    ``placed`` / ``not_placed`` count the jobs since the previous sample;
    ``fleet_in_use`` and ``pool_in_use`` are the jobs nodes are running (the
    simulation's count); ``capacity_up`` the job slots of the nodes not failed.
    Pools are those of the start of the run, with their members then.
    """

    t: np.ndarray  # simulated seconds
    placed: np.ndarray
    not_placed: np.ndarray
    nodes_up: np.ndarray
    fleet_in_use: np.ndarray
    capacity_up: np.ndarray
    pool_ids: tuple[int | None, ...]
    pool_names: tuple[str, ...]
    pool_capacity: np.ndarray  # per pool
    pool_in_use: np.ndarray  # shape (samples, pools)

    def __len__(self) -> int:
        return len(self.t)

    def pool_utilization(self) -> np.ndarray:
        """``pool_in_use / pool_capacity`` (0 for a pool without capacity)."""
        cap = np.where(self.pool_capacity > 0, self.pool_capacity, 1)
        return self.pool_in_use / cap

    def to_dict(self, pools: Sequence[int | None] = ()) -> dict[str, Any]:
        """Fleet-level series, plus the utilization series of ``pools``."""
        column = {pid: k for k, pid in enumerate(self.pool_ids)}
        util = self.pool_utilization()
        return {
            "t": [round(float(x), 3) for x in self.t],
            "placed": self.placed.tolist(),
            "not_placed": self.not_placed.tolist(),
            "nodes_up": self.nodes_up.tolist(),
            "fleet_in_use": self.fleet_in_use.tolist(),
            "capacity_up": self.capacity_up.tolist(),
            "pool_utilization": {
                str(pid): [round(float(x), 4) for x in util[:, column[pid]]]
                for pid in pools
                if pid in column
            },
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
    engine: str = "legacy"
    sessions: int = 0
    heartbeat_interval_s: float = 0.0
    fail_rate: float = 0.0
    failures_injected: FailureStats = field(default_factory=FailureStats)
    shadow_compared: int | None = None  # shadow engine only: decisions compared
    shadow_mismatches: int | None = None  # ... and how many differed (must be 0)
    latencies_ns: np.ndarray | None = field(default=None, repr=False, compare=False)
    timeline: Timeline | None = field(default=None, repr=False, compare=False)

    @property
    def failures(self) -> int:
        return self.jobs - self.successes

    @property
    def serves(self) -> str:
        """Which path answered the jobs and, in shadow mode, which was computed beside it."""
        if self.engine in ENGINES:
            return describe_engine(self.engine)
        if self.shadow_compared is not None:
            other = "legacy" if self.path == "fast" else "fast"
            return f"serves {self.path}, computes {other} beside it and counts mismatches"
        return f"serves {self.path}"

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
            "engine": self.engine,
            "serves": self.serves,
            "sessions": self.sessions,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "fail_rate": self.fail_rate,
            "failures_injected": self.failures_injected.to_dict(),
            "shadow": (
                None
                if self.shadow_compared is None
                else {"compared": self.shadow_compared, "mismatches": self.shadow_mismatches}
            ),
            "timeline": (
                None
                if self.timeline is None
                else self.timeline.to_dict([p.pool_id for p in self.busiest_pools(10)])
            ),
        }


def _engine_name(flags: MigrationFlags) -> str:
    """The engine name whose flags these are, or ``custom``."""
    return next((name for name in ENGINES if engine_flags(name) == flags), "custom")


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
    engine: str | None = None,
    heartbeat_interval_s: float | None = None,
    sessions: int | None = None,
    fail_rate: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Run ``jobs`` jobs of a standard workload through ``select_node`` in simulated time.

    ``workload``: a name from :data:`~pyscheduler.tools.workloads.WORKLOADS` (built
    with ``seed``) or a :class:`Workload`. ``seed`` also seeds the job stream
    and the simulation's own draws. ``job_interval_s`` (simulated seconds
    between jobs) defaults to the value that offers :data:`TARGET_LOAD` of
    the fleet's capacity given the mean job duration. ``heartbeats=False``
    stops all heartbeats after the first (nodes then go stale after
    ``heartbeat_timeout_s``).

    ``engine`` (one of :data:`ENGINES`) or ``flags`` (not both) picks the
    selection path; the default is the registry's default. ``heartbeat_interval_s``
    is how often nodes beat (default: the config's ``heartbeat_interval_s``; the
    config's ``heartbeat_timeout_s`` is unchanged, so an interval above it lets
    nodes go stale between beats). ``sessions`` replaces the workload's session
    count in the job stream. ``fail_rate`` (0 to 1) is the share of nodes that
    fail during the run (see the module doc).

    ``progress(done, total)`` is called once the registry is built (``done`` 0)
    and then every 1,000 jobs.
    """
    _check_arguments(jobs, job_duration_s, sweep_interval_s, heartbeat_interval_s, sessions, fail_rate)
    if engine is not None:
        if flags is not None:
            raise ValueError("give engine or flags, not both")
        flags = engine_flags(engine)
    wl = make_workload(workload, seed) if isinstance(workload, str) else workload
    if not isinstance(wl, Workload):
        raise TypeError(f"workload must be a name or a Workload, got {workload!r}")
    if sessions is not None:
        wl = replace(wl, sessions=sessions)
    if job_interval_s is None:
        low, high = job_duration_s
        job_interval_s = (low + high) / 2 / (TARGET_LOAD * max(wl.capacity, 1))
    if not job_interval_s > 0:
        raise ValueError(f"job_interval_s must be > 0, got {job_interval_s!r}")

    wall_start = time.perf_counter()
    clock = VirtualClock(0.0)
    registry = build_registry(wl, clock, flags=flags)
    build_time = time.perf_counter() - wall_start
    if progress is not None:
        progress(0, jobs)
    interval = registry.phase3_config.heartbeat_interval_s
    run = _Run(
        registry,
        clock,
        wl,
        seed,
        job_duration_s=job_duration_s,
        heartbeat_interval_s=interval if heartbeat_interval_s is None else heartbeat_interval_s,
        sweep_interval_s=sweep_interval_s,
        heartbeats=heartbeats,
    )
    if fail_rate > 0:
        run.schedule_failures(fail_rate, jobs * job_interval_s)
    loop_start = time.perf_counter()
    run.dispatch(jobs, job_interval_s, progress)
    wall_time = time.perf_counter() - loop_start
    if engine is None:
        engine = run.path if flags is None else _engine_name(flags)
    return run.report(
        engine=engine,
        flags=flags,
        build_time_s=build_time,
        wall_time_s=wall_time,
        job_interval_s=job_interval_s,
        heartbeats_enabled=heartbeats,
        fail_rate=fail_rate,
    )


def _check_arguments(
    jobs: int,
    job_duration_s: tuple[float, float],
    sweep_interval_s: float,
    heartbeat_interval_s: float | None,
    sessions: int | None,
    fail_rate: float,
) -> None:
    """ValueError naming the first argument of :func:`simulate` that is out of range."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    low, high = job_duration_s
    if not 0 < low <= high:
        raise ValueError(
            f"job_duration_s must be (low, high) with 0 < low <= high, got {job_duration_s!r}"
        )
    if sweep_interval_s <= 0:
        raise ValueError(f"sweep_interval_s must be > 0, got {sweep_interval_s!r}")
    if heartbeat_interval_s is not None and not 0 < heartbeat_interval_s < float("inf"):
        raise ValueError(f"heartbeat_interval_s must be > 0, got {heartbeat_interval_s!r}")
    if sessions is not None and (
        isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1
    ):
        raise ValueError(f"sessions must be a positive integer, got {sessions!r}")
    if isinstance(fail_rate, bool) or not isinstance(fail_rate, (int, float)) or not 0.0 <= fail_rate <= 1.0:
        raise ValueError(f"fail_rate must be a number in [0, 1], got {fail_rate!r}")


class _Events:
    """The event queue: ``(time, sequence, kind, node index)``, earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0

    def push(self, at: float, kind: int, node: int = -1) -> None:
        heapq.heappush(self._heap, (at, self._seq, kind, node))
        self._seq += 1

    def pop_due(self, now: float) -> tuple[float, int, int] | None:
        """The earliest event at or before ``now`` as ``(time, kind, node)``, or None."""
        if not self._heap or self._heap[0][0] > now:
            return None
        at, _, kind, node = heapq.heappop(self._heap)
        return at, kind, node


@dataclass
class _Tally:
    """What a run counts as it goes."""

    successes: int = 0
    fallbacks: int = 0
    heartbeats: int = 0
    completions: int = 0
    sweeps: int = 0
    marked: int = 0  # nodes the sweeps marked offline or degraded
    silent: int = 0  # failed nodes that went silent
    disconnected: int = 0  # failed nodes whose connection dropped
    jobs_lost: int = 0  # running on a node when it failed
    placed_on_failed: int = 0  # placed on a silent node before the registry noticed
    rejections: Counter[Reason] = field(default_factory=Counter)
    placed: Counter[int | None] = field(default_factory=Counter)


class _TimelineRecorder:
    """Samples the fleet and every pool about :data:`TIMELINE_POINTS` times over a run."""

    def __init__(self, registry: NodeRegistry, index: Mapping[str, int], max_jobs: list[int], jobs: int) -> None:
        pools_now = registry.pools()
        n_nodes = len(index)
        self.pool_ids: list[int | None] = [p.pool_id for p in pools_now]
        self.pool_names = [p.name for p in pools_now]
        owner_parts, member_parts = [], []
        for k, pool in enumerate(pools_now):
            members = [index[m] for m in registry.pool_members(pool.pool_id)]
            owner_parts.append(np.full(len(members), k, dtype=np.int64))
            member_parts.append(np.asarray(members, dtype=np.int64))
        if not pools_now:  # single-level scheduling: one candidate set of all nodes
            self.pool_ids, self.pool_names = [None], ["all nodes"]
            owner_parts, member_parts = [np.zeros(n_nodes, np.int64)], [np.arange(n_nodes)]
        self._owner = np.concatenate(owner_parts) if owner_parts else np.zeros(0, np.int64)
        self._members = np.concatenate(member_parts) if member_parts else np.zeros(0, np.int64)
        weights = np.asarray(max_jobs, dtype=np.int64)[self._members]
        self.pool_capacity = np.bincount(self._owner, weights=weights, minlength=len(self.pool_ids))
        self.step = max(1, -(-jobs // TIMELINE_POINTS))
        self._samples: list[tuple[float, int, int, int, int, int]] = []
        self._pool_rows: list[np.ndarray] = []
        self.placed = self.not_placed = 0  # since the last sample

    def sample(self, now: float, running: list[int], nodes_up: int, capacity_up: int) -> None:
        in_use = np.asarray(running, dtype=np.int64)
        self._pool_rows.append(
            np.bincount(self._owner, weights=in_use[self._members], minlength=len(self.pool_ids))
        )
        self._samples.append(
            (now, self.placed, self.not_placed, nodes_up, int(in_use.sum()), capacity_up)
        )
        self.placed = self.not_placed = 0

    def timeline(self) -> Timeline:
        series = np.asarray(self._samples, dtype=np.float64)
        return Timeline(
            t=series[:, 0],
            placed=series[:, 1].astype(np.int64),
            not_placed=series[:, 2].astype(np.int64),
            nodes_up=series[:, 3].astype(np.int64),
            fleet_in_use=series[:, 4].astype(np.int64),
            capacity_up=series[:, 5].astype(np.int64),
            pool_ids=tuple(self.pool_ids),
            pool_names=tuple(self.pool_names),
            pool_capacity=self.pool_capacity.astype(np.int64),
            pool_in_use=np.vstack(self._pool_rows).astype(np.int64),
        )


class _Run:
    """One simulation: the fleet as the simulation sees it, its events and its tally.

    ``running`` is what each node is really running (the registry learns it at
    the node's next heartbeat); ``failed`` marks nodes that failed for good.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        clock: VirtualClock,
        wl: Workload,
        seed: int,
        *,
        job_duration_s: tuple[float, float],
        heartbeat_interval_s: float,
        sweep_interval_s: float,
        heartbeats: bool,
    ) -> None:
        self.registry, self.clock, self.wl, self.seed = registry, clock, wl, seed
        self.rng = random.Random(f"pyscheduler-simulation:{wl.name}:{wl.seed}:{seed}")
        self.stream = JobStream(wl, seed)
        self.job_duration_s = job_duration_s
        self.interval = heartbeat_interval_s
        self.sweep_interval_s = sweep_interval_s
        self.node_ids = wl.node_ids
        self.index = {node_id: i for i, node_id in enumerate(self.node_ids)}
        self.max_jobs = [info.max_concurrent_jobs for info in wl.nodes]
        self.base = [(hb.cpu_usage, hb.memory_usage, hb.gpu_usage) for hb in wl.initial_heartbeats]
        self.running = [hb.current_jobs for hb in wl.initial_heartbeats]
        self.failed = [False] * len(self.node_ids)
        self.silent_mode: dict[int, bool] = {}  # failing node -> goes silent (else disconnects)
        self.nodes_down = self.capacity_down = 0
        self.tally = _Tally()
        self.path = "legacy"
        self.latencies = np.empty(0, dtype=np.int64)
        self.events = _Events()
        high = job_duration_s[1]
        for i, n in enumerate(self.running):
            for _ in range(n):  # the jobs the fleet was already running end over time
                self.events.push(self.rng.uniform(0.0, high), _COMPLETION, i)
        if heartbeats:
            for i in range(len(self.node_ids)):
                self.events.push(self.rng.uniform(0.0, self.interval), _HEARTBEAT, i)
        self.events.push(sweep_interval_s, _SWEEP)

    def schedule_failures(self, fail_rate: float, duration: float) -> None:
        """Make ``fail_rate`` of the nodes fail once during the run, half of them silently.

        Failures have their own generator: a run without them draws exactly as before.
        """
        wl, n_nodes = self.wl, len(self.node_ids)
        frng = random.Random(f"pyscheduler-simulation-failures:{wl.name}:{wl.seed}:{self.seed}")
        for i in frng.sample(range(n_nodes), round(fail_rate * n_nodes)):
            self.silent_mode[i] = frng.random() < 0.5
            self.events.push(frng.uniform(0.0, duration), _FAILURE, i)

    # -- events ---------------------------------------------------------------------------

    def apply_due_events(self, now: float) -> None:
        """Apply every event due by ``now``, in time order, the clock at each one's time."""
        handlers = {
            _COMPLETION: self._complete,
            _HEARTBEAT: self._beat,
            _SWEEP: self._sweep,
            _FAILURE: self._fail,
        }
        while (event := self.events.pop_due(now)) is not None:
            at, kind, node = event
            self.clock.now = at
            handlers[kind](at, node)
        self.clock.now = now

    def _complete(self, at: float, i: int) -> None:
        if self.failed[i]:
            return  # the job was lost with its node
        if self.running[i] > 0:
            self.running[i] -= 1
        self.tally.completions += 1

    def _beat(self, at: float, i: int) -> None:
        if self.failed[i]:
            return  # a failed node beats no more
        cpu, memory, gpu = self.base[i]
        rng = self.rng
        beat = Heartbeat(
            cpu_usage=_clamp(cpu + rng.gauss(0.0, 3.0)),
            memory_usage=_clamp(memory + rng.gauss(0.0, 2.0)),
            gpu_usage=None if gpu is None else _clamp(gpu + rng.gauss(0.0, 3.0)),
            current_jobs=self.running[i],
        )
        self.registry.update_node_heartbeat(self.node_ids[i], beat)
        self.tally.heartbeats += 1
        self.events.push(at + self.interval, _HEARTBEAT, i)

    def _sweep(self, at: float, _node: int) -> None:
        self.tally.marked += len(self.registry.sweep())
        self.tally.sweeps += 1
        self.events.push(at + self.sweep_interval_s, _SWEEP)

    def _fail(self, at: float, i: int) -> None:
        self.failed[i] = True
        self.tally.jobs_lost += self.running[i]
        self.running[i] = 0
        self.nodes_down += 1
        self.capacity_down += self.max_jobs[i]
        if self.silent_mode[i]:
            self.tally.silent += 1
        else:
            self.registry.disconnect_node(self.node_ids[i])
            self.tally.disconnected += 1

    # -- jobs -----------------------------------------------------------------------------

    def dispatch(
        self, jobs: int, job_interval_s: float, progress: Callable[[int, int], None] | None
    ) -> None:
        """Send ``jobs`` jobs, one every ``job_interval_s``; only ``select_node`` is timed."""
        self.latencies = latencies = np.empty(jobs, dtype=np.int64)
        self.recorder = recorder = _TimelineRecorder(self.registry, self.index, self.max_jobs, jobs)
        perf_ns, select = time.perf_counter_ns, self.registry.select_node
        capacity = max(self.wl.capacity, 1)
        for k in range(jobs):
            now = self.clock.advance(job_interval_s)
            self.apply_due_events(now)
            job = next(self.stream)
            t0 = perf_ns()
            selection = select(job)
            latencies[k] = perf_ns() - t0
            self._settle(selection, now)
            if (k + 1) % recorder.step == 0 or k + 1 == jobs:
                recorder.sample(
                    now, self.running, len(self.node_ids) - self.nodes_down, capacity - self.capacity_down
                )
            if progress is not None and (k + 1) % 1000 == 0:
                progress(k + 1, jobs)

    def _settle(self, selection: Selection, now: float) -> None:
        """Commit a placed job (it ends after a random duration) or count why it was not."""
        tally, recorder = self.tally, self.recorder
        self.path = selection.path
        if selection.fallback_used:
            tally.fallbacks += 1
        if not selection.ok:
            recorder.not_placed += 1
            tally.rejections[selection.breakdown.top_reason or Reason.NO_NODES] += 1
            return
        self.registry.commit(selection)
        i = self.index[selection.node_id]  # type: ignore[index]
        tally.successes += 1
        recorder.placed += 1
        tally.placed[selection.pool_id] += 1
        if self.failed[i]:
            tally.placed_on_failed += 1  # sent to a silent node: the job is lost
            return
        self.running[i] += 1
        low, high = self.job_duration_s
        self.events.push(now + self.rng.uniform(low, high), _COMPLETION, i)

    # -- the report -----------------------------------------------------------------------

    def report(
        self,
        *,
        engine: str,
        flags: MigrationFlags | None,
        build_time_s: float,
        wall_time_s: float,
        job_interval_s: float,
        heartbeats_enabled: bool,
        fail_rate: float,
    ) -> SimulationReport:
        latencies, tally = self.latencies, self.tally
        jobs = len(latencies)
        select_ns = int(latencies.sum())
        shadow_compared = shadow_mismatches = None
        if flags is not None and flags.shadow_compare:
            counters = self.registry.metrics()["counters"]
            shadow_compared = int(counters.get("shadow_compared", 0))
            shadow_mismatches = int(counters.get("shadow_mismatch", 0))
        usage = _pool_usage(self.registry, self.index, self.running, self.max_jobs, tally.placed)
        return SimulationReport(
            workload=self.wl.name,
            seed=self.seed,
            nodes=len(self.node_ids),
            pools=sum(1 for p in usage if p.pool_id is not None),
            path=self.path,
            jobs=jobs,
            successes=tally.successes,
            decisions_per_s=jobs / (select_ns / 1e9) if select_ns else float("inf"),
            wall_time_s=wall_time_s,
            build_time_s=build_time_s,
            select_time_s=select_ns / 1e9,
            simulated_time_s=self.clock.now,
            job_interval_s=job_interval_s,
            latency_us=_latency_summary_us(latencies),
            rejections=dict(sorted(tally.rejections.items(), key=lambda rc: (-rc[1], rc[0].value))),
            fallbacks=tally.fallbacks,
            heartbeats=tally.heartbeats,
            completions=tally.completions,
            sweeps=tally.sweeps,
            nodes_marked_by_sweep=tally.marked,
            heartbeats_enabled=heartbeats_enabled,
            pool_usage=usage,
            engine=engine,
            sessions=self.wl.sessions,
            heartbeat_interval_s=float(self.interval),
            fail_rate=float(fail_rate),
            failures_injected=FailureStats(
                tally.silent, tally.disconnected, tally.jobs_lost, tally.placed_on_failed
            ),
            shadow_compared=shadow_compared,
            shadow_mismatches=shadow_mismatches,
            latencies_ns=latencies,
            timeline=self.recorder.timeline(),
        )


def _latency_summary_us(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50 / p95 / p99 / mean / max of per-call latencies, in µs."""
    return {
        **{f"p{q}": percentile(latencies_ns, q) / 1000.0 for q in (50, 95, 99)},
        "mean": float(latencies_ns.mean()) / 1000.0,
        "max": float(latencies_ns.max()) / 1000.0,
    }


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


# -- the plot ------------------------------------------------------------------------------


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed (it comes with the ``plot`` extra)."""


def check_plotting() -> None:
    """Raise :class:`PlotUnavailable` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(
            "drawing the plot needs matplotlib: pip install 'pyscheduler[plot]' "
            f"({type(exc).__name__}: {exc})"
        ) from None


_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "x", "+", "*")


def _series_style(i: int, points: int) -> dict[str, Any]:
    """Matplotlib keywords that keep series ``i`` apart from the others even where
    their values coincide: its own colour, line style and marker, the markers
    placed at a per-series offset (so identical series show every marker)."""
    every = max(1, points // 12)
    return {
        "color": f"C{i % 10}",
        "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "markevery": (min(points - 1, (i * every) // 3) if points else 0, every),
        "markersize": 4,
        "linewidth": 1.2,
    }


def plot_report(report: SimulationReport, path: str, *, pools: int = 8) -> None:
    """Write a PNG of ``report``: the latency distribution of ``select_node``, the
    load of the fleet and of its ``pools`` busiest pools over simulated time, and
    the jobs placed / not placed and nodes up over time.

    Uses matplotlib's object API (no pyplot, no global backend change).
    """
    check_plotting()
    from matplotlib.figure import Figure

    if report.latencies_ns is None or report.timeline is None:
        raise ValueError("the report carries no latency samples or timeline to plot")
    tl = report.timeline
    fig = Figure(figsize=(12, 10), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1.15))
    fig.suptitle(
        f"pyscheduler simulate: workload {report.workload} (seed {report.seed}), "
        f"{report.nodes:,} nodes, {report.pools:,} pools, {report.jobs:,} jobs, "
        f"engine {report.engine}"
    )

    # 1. latency distribution: log-spaced bins, percentiles marked
    ax = fig.add_subplot(grid[0, 0])
    lat = report.latencies_ns / 1000.0
    lo, hi = max(float(lat.min()), 0.05), max(float(lat.max()), 0.1)
    bins = np.geomspace(lo, hi * 1.0001, 80) if hi > lo else 10
    ax.hist(lat, bins=bins, color="tab:blue", alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for name, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        value = report.latency_us[name]
        ax.axvline(value, color="black", linestyle=style, label=f"{name} {value:.1f} µs")
    ax.set_xlabel("select_node latency (µs, real time)")
    ax.set_ylabel("calls")
    ax.set_title(f"latency of {report.jobs:,} calls ({report.decisions_per_s:,.0f} decisions/s)")
    ax.legend(loc="upper right")

    # 2. share of jobs placed per sample window, and nodes up
    ax = fig.add_subplot(grid[0, 1])
    offered = np.maximum(tl.placed + tl.not_placed, 1)
    ax.plot(tl.t, tl.placed / offered * 100.0, color="tab:green", label="jobs placed (% of window)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("jobs placed (%)")
    ax.set_title(
        f"placements: success rate {report.success_rate * 100:.1f} %, "
        f"{report.failures_injected.nodes} nodes failed"
    )
    ax.grid(True, alpha=0.3)
    up = ax.twinx()
    up.plot(tl.t, tl.nodes_up, color="black", linewidth=1.2, label="nodes up (not failed)")
    up.set_ylabel("nodes up")
    up.set_ylim(0, max(int(tl.nodes_up.max()), 1) * 1.05)
    handles = ax.get_legend_handles_labels()[0] + up.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left")

    # 3. load over time: the fleet and the busiest pools
    ax = fig.add_subplot(grid[1, :])
    util = tl.pool_utilization() * 100.0
    column = {pid: k for k, pid in enumerate(tl.pool_ids)}
    drawn = [u for u in report.busiest_pools(pools) if u.pool_id in column]
    for i, usage in enumerate(drawn):
        label = "all nodes" if usage.pool_id is None else f"pool {usage.pool_id} {usage.name}"
        ax.plot(tl.t, util[:, column[usage.pool_id]], label=f"{label} ({usage.members} nodes)",
                **_series_style(i, len(tl.t)))  # fmt: skip
    fleet = tl.fleet_in_use / np.maximum(tl.capacity_up, 1) * 100.0
    ax.plot(tl.t, fleet, color="black", linewidth=2.5, label="whole fleet (nodes up)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("jobs running / job slots (%)")
    ax.set_title(f"load over time: the fleet and the {min(pools, len(report.pool_usage))} pools that placed most")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=100)
