"""Several dispatcher processes sharing one fleet through Redis.

- :func:`simulate_cluster` is ``pyscheduler simulate --instances N [--redis URL]``:
  N processes, each a dispatcher with its own registry and
  :class:`~pyscheduler.cluster.RedisClusterSync`, own a share of a standard
  workload's nodes and place jobs on the whole fleet in real time.
- :func:`bench_cluster` is ``pyscheduler bench --cluster``: how many changes
  per second an instance applies from the stream, and how long a change takes
  to reach the other instances.

Without a URL both start a throwaway ``redis-server`` (127.0.0.1, no
persistence) and stop it afterwards. The processes are started with the
``spawn`` method, so they share nothing but Redis and, in the simulation, one
array that plays the nodes themselves (each node's running-job count, which
its owner reports in the node's heartbeats).
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import queue
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .report import summary, text_table

__all__ = [
    "ClusterBenchReport",
    "ClusterSetupError",
    "ClusterSimReport",
    "bench_cluster",
    "format_cluster_bench",
    "format_cluster_report",
    "simulate_cluster",
]

_BARRIER_TIMEOUT_S = 120.0
_JOB_DURATION_S = (0.02, 0.2)  # real seconds a placed job runs
_TARGET_LOAD = 0.5
_FLEET_BEATS_PER_S = 5000.0  # heartbeats per second of the whole fleet, at most
_MAX_JOBS_PER_S = 5000.0  # jobs offered per second per instance, at most (a dispatcher
# that never waits would starve its own sync threads of the GIL: see docs/CLUSTER.md)


class ClusterSetupError(RuntimeError):
    """No Redis to run against (no URL and no ``redis-server``), or no redis-py."""


def _masked(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


@contextmanager
def redis_for(url: str | None) -> Iterator[tuple[str, str]]:
    """``(url, description)`` of the Redis to use: ``url``, checked to answer,
    or a throwaway ``redis-server`` started here and stopped on exit."""
    try:
        import redis
    except ImportError:
        raise ClusterSetupError("cluster runs need redis-py: pip install 'pyscheduler[redis]'") from None
    from ..cluster import RedisServer, RedisServerError, find_redis_server

    if url is not None:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        except (redis.RedisError, ValueError, OSError) as exc:
            raise ClusterSetupError(f"cannot reach Redis at {_masked(url)}: {exc}") from None
        yield url, _masked(url)
        return
    if find_redis_server() is None:
        raise ClusterSetupError(
            "no --redis URL given and redis-server is not installed "
            "(Debian/Ubuntu: apt-get install redis-server), so there is no Redis to share the fleet"
        )
    try:
        server = RedisServer().start()
    except RedisServerError as exc:
        raise ClusterSetupError(str(exc)) from None
    try:
        yield server.url, f"{server.url} (throwaway redis-server)"
    finally:
        server.close()


def _flags(engine: str | None) -> Any:
    """The flags of an engine name (the one map :mod:`pyscheduler.tools.engines` keeps)."""
    from .engines import default_engine, engine_flags

    return engine_flags(engine or default_engine())


def _default_engine() -> str:
    from .engines import default_engine

    return default_engine()


def _describe(engine: str) -> str:
    from .engines import describe_engine

    return describe_engine(engine)


def _run_processes(target: Any, count: int, make_args: Any, timeout: float) -> list[dict]:
    """Start ``count`` spawned processes ``target(*make_args(i, barrier, results))``;
    return their result dicts in index order, or raise the first error."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(count, timeout=_BARRIER_TIMEOUT_S)
    results = ctx.Queue()
    extra = make_args.shared(ctx) if hasattr(make_args, "shared") else None
    procs = [
        ctx.Process(target=target, args=make_args(i, barrier, results, extra), daemon=True)
        for i in range(count)
    ]
    for p in procs:
        p.start()
    out: dict[int, dict] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) + len(errors) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append(f"timed out after {timeout:.0f} s")
                break
            try:
                status, index, payload = results.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and len(out) + len(errors) < count:
                    try:  # a crashed process may still have reported
                        status, index, payload = results.get(timeout=1.0)
                    except queue.Empty:
                        errors.append(f"instance process exited with status {dead[0].exitcode}")
                        break
                else:
                    continue
            if status == "ok":
                out[index] = payload
            else:
                errors.append(f"instance {index}: {payload}")
                barrier.abort()
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
        results.close()
        results.join_thread()
    if errors:
        raise RuntimeError("; ".join(errors))
    return [out[i] for i in range(count)]


# -- simulate --instances ------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceReport:
    """What one dispatcher process of a cluster simulation measured."""

    instance_id: str
    owned_nodes: int
    jobs: int
    successes: int
    placed_on_remote: int  # jobs placed on nodes another instance owns
    decisions_per_s: float  # jobs / real time inside select_node
    latency_us: dict[str, float]
    wall_time_s: float
    heartbeats_sent: int
    changes_applied: int
    delay_ms: dict[str, float]
    rejections: dict[str, int]
    sync_counts: dict[str, int]
    path: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ClusterSimReport:
    """``simulate --instances``: one row per instance plus fleet-wide figures."""

    workload: str
    seed: int
    nodes: int
    pools: int
    redis: str
    engine: str
    converged_s: float  # registration start -> every instance sees every node
    instances: tuple[InstanceReport, ...]
    delay_ms: dict[str, float]  # pooled over every instance
    heartbeat_interval_s: float
    job_duration_s: tuple[float, float]
    consistent: bool  # every instance ended with the same nodes, statuses and pools
    notes: tuple[str, ...] = field(default=())

    @property
    def jobs(self) -> int:
        return sum(i.jobs for i in self.instances)

    @property
    def successes(self) -> int:
        return sum(i.successes for i in self.instances)

    @property
    def decisions_per_s(self) -> float:
        return sum(i.decisions_per_s for i in self.instances)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "seed": self.seed,
            "nodes": self.nodes,
            "pools": self.pools,
            "redis": self.redis,
            "engine": self.engine,
            "converged_s": self.converged_s,
            "jobs": self.jobs,
            "successes": self.successes,
            "decisions_per_s": self.decisions_per_s,
            "delay_ms": self.delay_ms,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "job_duration_s": list(self.job_duration_s),
            "consistent": self.consistent,
            "instances": [i.to_dict() for i in self.instances],
            "notes": list(self.notes),
        }


class _SimArgs:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw

    def shared(self, ctx: Any) -> Any:
        from .workloads import make_workload

        nodes = len(make_workload(self.kw["workload"], self.kw["seed"]).nodes)
        return ctx.Array("i", nodes)  # each node's running jobs, as the node itself knows them

    def __call__(self, index: int, barrier: Any, results: Any, running: Any) -> tuple:
        return (index, barrier, results, running, self.kw)


def simulate_cluster(
    workload: str = "small",
    jobs: int = 1000,
    seed: int = 1,
    *,
    instances: int = 3,
    redis_url: str | None = None,
    engine: str | None = None,
    heartbeats: bool = True,
    timeout_s: float = 600.0,
) -> ClusterSimReport:
    """Run ``instances`` dispatcher processes on one fleet; each places ``jobs`` jobs.

    Instance ``i`` owns (registers, and sends the heartbeats of) every node
    whose index is ``i`` modulo ``instances``, and places jobs from its own
    job stream (seed ``seed + i``) on any node of the fleet. Jobs run
    :data:`_JOB_DURATION_S` real seconds and are offered at half the fleet's
    capacity, at most 5,000 jobs/s per instance (or as fast as an instance
    can place them, if that is slower). Each node beats every
    ``max(0.1 s, nodes / 5000 s)``.
    """
    from .workloads import WORKLOADS, make_workload

    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances <= 64:
        raise ValueError(f"instances must be an integer from 1 to 64, got {instances!r}")
    wl = make_workload(workload, seed)
    beat_interval = max(0.1, len(wl.nodes) / _FLEET_BEATS_PER_S)
    with redis_for(redis_url) as (url, described):
        prefix = f"pyscheduler-sim-{uuid.uuid4().hex[:8]}"
        args = _SimArgs(
            url=url, prefix=prefix, workload=workload, seed=seed, jobs=jobs, instances=instances,
            engine=engine, heartbeats=heartbeats, beat_interval=beat_interval,
        )
        try:
            rows = _run_processes(_sim_instance, instances, args, timeout_s)
        finally:
            _drop_prefix(url, prefix)
    reports = tuple(InstanceReport(**{k: v for k, v in r.items() if k in _INSTANCE_FIELDS}) for r in rows)
    delays = [d for r in rows for d in r["delays"]]
    fingerprints = {r["fingerprint"] for r in rows}
    return ClusterSimReport(
        workload=workload,
        seed=seed,
        nodes=len(wl.nodes),
        pools=rows[0]["pools"],
        redis=described,
        engine=engine or _default_engine(),
        converged_s=max(r["converged_s"] for r in rows),
        instances=reports,
        delay_ms=summary(delays, 1e3),
        heartbeat_interval_s=beat_interval,
        job_duration_s=_JOB_DURATION_S,
        consistent=len(fingerprints) == 1,
    )


_INSTANCE_FIELDS = frozenset(InstanceReport.__dataclass_fields__)


def _drop_prefix(url: str, prefix: str) -> None:
    """Delete what a run left in a Redis it did not start."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i:i + 1000])
        finally:
            client.close()
    except Exception:  # best effort: the keys expire or stay namespaced
        pass


def _wait(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    deadline = start + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.002)
    return time.monotonic() - start


def _fingerprint(registry: Any) -> str:
    nodes = []
    for node_id in registry.node_ids():
        view = registry.get_node(node_id)
        nodes.append((node_id, view.status.value, view.pool_ids))
    pools = [(p.pool_id, p.name) for p in registry.pools()]
    return repr((nodes, pools))


def _quiet_lock_warnings() -> None:
    """In the instance processes: several processes and their sync threads share
    few cores, so the registry's slow-lock-wait warnings (GIL hand-offs, mostly)
    would drown the report; cluster sync warnings stay on."""
    import logging

    logging.getLogger("pyscheduler").setLevel(logging.ERROR)
    logging.getLogger("pyscheduler.cluster").setLevel(logging.WARNING)


def _sim_instance(index: int, barrier: Any, results: Any, running: Any, kw: dict) -> None:
    _run_child(_sim_instance_run, index, barrier, results, (running,), kw)


def _run_child(run: Any, index: int, barrier: Any, results: Any, args: tuple, kw: dict) -> None:
    """Body of a child process: ``run(index, barrier, *args, **kw)`` returns its sync
    and result row; the row (or the error, after aborting the others) goes to
    ``results``, and the sync is closed whatever happened."""
    _quiet_lock_warnings()
    sync = None
    try:
        sync, row = run(index, barrier, *args, **kw)
        results.put(("ok", index, row))
    except BaseException as exc:  # report it; the parent aborts the others
        try:
            barrier.abort()
        except Exception:
            pass
        results.put(("error", index, f"{type(exc).__name__}: {exc}"))
    finally:
        if sync is not None:
            sync.close(timeout=2.0)


def _sim_instance_run(
    index: int, barrier: Any, running: Any, *, url: str, prefix: str, workload: str, seed: int,
    jobs: int, instances: int, engine: str | None, heartbeats: bool, beat_interval: float,
) -> tuple[Any, dict]:
    from ..cluster import RedisClusterSync
    from ..domain.model import Heartbeat
    from ..registry.node_registry import NodeRegistry
    from .workloads import JobStream, make_workload

    wl = make_workload(workload, seed)
    final = wl.phase3
    staged = final.auto_generate_language_pools
    first = replace(final, auto_generate_language_pools=False) if staged else final
    registry = NodeRegistry(first, flags=_flags(engine))
    sync = RedisClusterSync(registry, url, instance_id=f"sim-{index}", prefix=prefix,
                            reconcile_interval_s=1.0, block_ms=100)
    node_ids = wl.node_ids
    mine = [i for i in range(len(node_ids)) if i % instances == index]
    owned = frozenset(node_ids[i] for i in mine)
    index_of = {n: i for i, n in enumerate(node_ids)}
    sync.start()
    if not sync.wait_synced(30):
        raise TimeoutError("cluster sync did not reach Redis within 30 s")
    barrier.wait()
    t0 = time.monotonic()
    for i in mine:
        registry.register_node_with_policy(wl.nodes[i])
        registry.update_node_heartbeat(node_ids[i], wl.initial_heartbeats[i])
    total = len(node_ids)
    _wait(lambda: len(registry.node_ids()) == total, 120, "every node of the fleet")
    barrier.wait()
    converged = time.monotonic() - t0
    if staged:  # generate pools once, from the whole fleet (as build_registry does)
        if index == 0:
            registry.set_phase3_config(final)
        _wait(lambda: registry.phase3_config == final, 60, "the fleet's config")
    registry.snapshot()  # build the first snapshot before the clock starts
    sync.flush(30)
    barrier.wait()
    sync.wait_caught_up(30)
    barrier.wait()
    sync.clear_delays()
    applied_before = sync.stats()["counts"].get("applied", 0)

    rng = random.Random(f"pyscheduler-cluster-sim:{workload}:{seed}:{index}")
    stream = JobStream(wl, seed + index)
    base = [(hb.cpu_usage, hb.memory_usage, hb.gpu_usage) for hb in wl.initial_heartbeats]
    low, high = _JOB_DURATION_S
    capacity = max(wl.capacity, 1)
    interval = max(instances * (low + high) / 2 / (_TARGET_LOAD * capacity), 1.0 / _MAX_JOBS_PER_S)
    t_now = time.monotonic()
    beat_due = sorted((t_now + rng.uniform(0, beat_interval), i) for i in mine)  # a heap
    completions: list[tuple[float, int]] = []
    next_sweep = t_now + 1.0

    latencies = []
    rejections: Counter[str] = Counter()
    successes = remote = beats = 0
    path = "legacy"
    select = registry.select_node
    perf_ns = time.perf_counter_ns
    start = time.monotonic()
    next_job = start
    for _ in range(jobs):
        now = time.monotonic()
        while completions and completions[0][0] <= now:
            _, i = heapq.heappop(completions)
            with running.get_lock():
                running[i] -= 1
        while heartbeats and beat_due[0][0] <= now:
            due, i = beat_due[0]
            cpu, memory, gpu = base[i]
            jitter = rng.gauss
            registry.update_node_heartbeat(node_ids[i], Heartbeat(
                min(100.0, max(0.0, round(cpu + jitter(0, 3), 1))),
                min(100.0, max(0.0, round(memory + jitter(0, 2), 1))),
                None if gpu is None else min(100.0, max(0.0, round(gpu + jitter(0, 3), 1))),
                max(0, running[i]),
            ))
            beats += 1
            heapq.heapreplace(beat_due, (due + beat_interval, i))
        if now >= next_sweep:  # as a dispatcher would: once a second
            registry.sweep()
            next_sweep = now + 1.0
        if next_job > now:
            time.sleep(next_job - now)
        next_job = max(next_job + interval, time.monotonic() - 0.05)
        job = next(stream)
        t = perf_ns()
        selection = select(job)
        latencies.append(perf_ns() - t)
        path = selection.path
        if selection.ok:
            registry.commit(selection)
            successes += 1
            i = index_of[selection.node_id]
            if selection.node_id not in owned:
                remote += 1
            with running.get_lock():
                running[i] += 1
            heapq.heappush(completions, (time.monotonic() + rng.uniform(low, high), i))
        else:
            rejections[str(selection.breakdown.top_reason)] += 1
    wall = time.monotonic() - start
    sync.flush(30)
    barrier.wait()
    sync.wait_caught_up(30)
    barrier.wait()
    stats = sync.stats()
    delays = sync.delays()
    select_ns = sum(latencies)
    lat = summary(latencies, 1e-3)
    row = {
        "instance_id": sync.instance_id,
        "owned_nodes": len(mine),
        "jobs": jobs,
        "successes": successes,
        "placed_on_remote": remote,
        "decisions_per_s": jobs / (select_ns / 1e9) if select_ns else float("inf"),
        "latency_us": {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"]},
        "wall_time_s": wall,
        "heartbeats_sent": beats,
        "changes_applied": stats["counts"].get("applied", 0) - applied_before,
        "delay_ms": summary(delays, 1e3),
        "rejections": dict(rejections.most_common()),
        "sync_counts": stats["counts"],
        "path": path,
        "delays": delays,
        "converged_s": converged,
        "pools": len(registry.pools()),
        "fingerprint": _fingerprint(registry) if not heartbeats else _static_fingerprint(registry),
    }
    return sync, row


def _static_fingerprint(registry: Any) -> str:
    """Nodes and pools (statuses move with the last beats, so they are left out)."""
    nodes = [(n, registry.get_node(n).pool_ids) for n in registry.node_ids()]
    return repr((nodes, [(p.pool_id, p.name) for p in registry.pools()]))


def format_cluster_report(report: ClusterSimReport) -> str:
    """What ``pyscheduler simulate --instances N`` prints."""
    lines = [
        (
            f"cluster: {len(report.instances)} dispatcher processes sharing workload {report.workload} "
            f"(seed {report.seed}): {report.nodes} nodes, {report.pools} pools, engine {report.engine}"
        ),
        f"  engine         {report.engine}: {_describe(report.engine)} on every instance",
        f"  redis          {report.redis}",
        f"  converged      every node visible on every instance {report.converged_s:.3f} s after registration began",
        (
            f"  fleet          a heartbeat every {report.heartbeat_interval_s:g} s per node; jobs run "
            f"{report.job_duration_s[0]:g}-{report.job_duration_s[1]:g} s (real time)"
        ),
        (
            f"  jobs           {report.jobs} ({report.successes} placed, "
            f"{report.jobs - report.successes} not placed)"
        ),
        f"  decisions/s    {report.decisions_per_s:,.0f} in total (sum of the instances' rates inside select_node)",
        (
            f"  convergence    a change on one instance applied on another after p50 "
            f"{report.delay_ms['p50']:.2f} ms, p99 {report.delay_ms['p99']:.2f} ms "
            f"(max {report.delay_ms['max']:.2f} ms, {report.delay_ms['samples']} changes)"
        ),
        f"  consistent     {'yes' if report.consistent else 'NO'}: same nodes and pools on every instance at the end",
        "",
    ]
    rows = [["instance", "owns", "jobs", "placed", "on remote", "decisions/s", "p50 us", "p99 us",
             "applied", "delay p50 ms", "delay p99 ms"]]
    for r in report.instances:
        rows.append([
            r.instance_id, str(r.owned_nodes), str(r.jobs), str(r.successes), str(r.placed_on_remote),
            f"{r.decisions_per_s:,.0f}", f"{r.latency_us['p50']:.1f}", f"{r.latency_us['p99']:.1f}",
            str(r.changes_applied), f"{r.delay_ms['p50']:.2f}", f"{r.delay_ms['p99']:.2f}",
        ])
    rows.append([
        "total", str(sum(r.owned_nodes for r in report.instances)), str(report.jobs),
        str(report.successes), str(sum(r.placed_on_remote for r in report.instances)),
        f"{report.decisions_per_s:,.0f}", "", "", str(sum(r.changes_applied for r in report.instances)),
        f"{report.delay_ms['p50']:.2f}", f"{report.delay_ms['p99']:.2f}",
    ])
    lines += text_table(rows, right=range(1, len(rows[0])), indent="  ")
    return "\n".join(lines) + "\n"


# -- bench --cluster -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterBenchReport:
    """``bench --cluster``: apply throughput and convergence delay on loopback."""

    redis: str
    instances: int
    nodes: int
    events_per_instance: int
    registration_s: float  # every instance registers its nodes -> all see all
    applied_per_s: tuple[float, ...]  # per instance, catching up alone on a backlog
    applied_per_s_together: tuple[float, ...]  # per instance, all catching up at once
    written_per_s: tuple[float, ...]  # per instance: local heartbeats -> in Redis
    delay_ms: dict[float, dict[str, float]]  # per offered rate (changes/s per instance): p50/p99/max
    cpus: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "redis": self.redis,
            "instances": self.instances,
            "nodes": self.nodes,
            "events_per_instance": self.events_per_instance,
            "registration_s": self.registration_s,
            "applied_per_s": list(self.applied_per_s),
            "applied_per_s_together": list(self.applied_per_s_together),
            "written_per_s": list(self.written_per_s),
            "delay_ms": {str(int(rate)): v for rate, v in self.delay_ms.items()},
            "cpus": self.cpus,
        }


class _BenchArgs:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw

    def __call__(self, index: int, barrier: Any, results: Any, extra: Any) -> tuple:
        return (index, barrier, results, self.kw)


def bench_cluster(
    redis_url: str | None = None,
    *,
    instances: int = 3,
    nodes_per_instance: int = 1000,
    events: int = 40_000,
    rates: Sequence[float] = (1000.0, 5000.0),
    duration_s: float = 2.0,
    timeout_s: float = 600.0,
) -> ClusterBenchReport:
    """Measure cluster sync between ``instances`` processes on one machine.

    1. Throughput: every instance publishes ``events`` load-only heartbeats
       (round robin over its own nodes) while the others' readers are paused;
       then each reader in turn catches up on the backlog alone, and then all
       together: changes applied per second.
    2. Delay: for each rate in ``rates``, every instance beats that many times
       per second for ``duration_s``; the delay of each change is the time from
       the local change on its origin to its application on another instance.
    """
    if instances < 2:
        raise ValueError(f"instances must be at least 2, got {instances!r}")
    with redis_for(redis_url) as (url, described):
        prefix = f"pyscheduler-bench-{uuid.uuid4().hex[:8]}"
        args = _BenchArgs(url=url, prefix=prefix, instances=instances, nodes=nodes_per_instance,
                          events=events, rates=tuple(rates), duration=duration_s)
        try:
            rows = _run_processes(_bench_instance, instances, args, timeout_s)
        finally:
            _drop_prefix(url, prefix)
    delay = {}
    for rate in rates:
        pooled = [d for r in rows for d in r["delays"][str(rate)]]
        delay[float(rate)] = summary(pooled, 1e3)
    import os

    return ClusterBenchReport(
        redis=described,
        instances=instances,
        nodes=instances * nodes_per_instance,
        events_per_instance=events,
        registration_s=max(r["registration_s"] for r in rows),
        applied_per_s=tuple(r["applied_per_s"] for r in rows),
        applied_per_s_together=tuple(r["applied_per_s_together"] for r in rows),
        written_per_s=tuple(r["written_per_s"] for r in rows),
        delay_ms=delay,
        cpus=os.cpu_count() or 1,
    )


def _bench_instance(index: int, barrier: Any, results: Any, kw: dict) -> None:
    _run_child(_bench_instance_run, index, barrier, results, (), kw)


def _bench_node(node_id: str) -> Any:
    from ..domain.model import InstalledService, LanguageCapabilities, NodeInfo, ServiceType

    services = tuple(InstalledService(f"{t.name.lower()}-1", t) for t in (ServiceType.ASR, ServiceType.NMT, ServiceType.TTS))
    caps = LanguageCapabilities(asr=("en", "zh"), tts=("en", "zh"), nmt_languages=("en", "zh"))
    return NodeInfo(node_id, installed_services=services, language_capabilities=caps)


def _bench_instance_run(
    index: int, barrier: Any, *, url: str, prefix: str, instances: int, nodes: int, events: int,
    rates: tuple[float, ...], duration: float,
) -> tuple[Any, dict]:
    from ..cluster import RedisClusterSync
    from ..domain.config import Phase3Config, PoolConfig
    from ..domain.model import Heartbeat
    from ..registry.node_registry import NodeRegistry

    registry = NodeRegistry(Phase3Config(pools=(PoolConfig(1, "en-zh", ("en", "zh")),)))
    backlog = events * instances
    sync = RedisClusterSync(
        registry, url, instance_id=f"bench-{index}", prefix=prefix,
        stream_maxlen=max(100_000, 2 * backlog), queue_size=max(100_000, 2 * events),
        reconcile_interval_s=5.0, block_ms=100,
    )
    sync.start()
    if not sync.wait_synced(30):
        raise TimeoutError("cluster sync did not reach Redis within 30 s")
    mine = [f"b{index}-{k:05d}" for k in range(nodes)]
    barrier.wait()
    t0 = time.monotonic()
    for node_id in mine:
        registry.register_node_with_policy(_bench_node(node_id))
        registry.update_node_heartbeat(node_id, Heartbeat(10.0, 10.0, 10.0, 0))
    total = nodes * instances
    _wait(lambda: len(registry.node_ids()) == total, 120, "every node")
    barrier.wait()
    registration = time.monotonic() - t0
    sync.flush(30)
    sync.wait_caught_up(30)
    barrier.wait()

    def counts() -> dict:
        return sync.stats()["counts"]

    # 1. throughput: backlog written while readers are paused
    sync._pause_reading(True)
    barrier.wait()
    written0 = counts().get("written", 0)
    t = time.perf_counter()
    update = registry.update_node_heartbeat
    for k in range(events):
        update(mine[k % nodes], Heartbeat(float(k % 90), 20.0, 30.0, k % 4))
    if not sync.flush(120):
        raise TimeoutError("the writer did not drain its queue")
    written = counts().get("written", 0) - written0
    written_per_s = written / (time.perf_counter() - t)
    barrier.wait()
    applied_alone = 0.0
    for turn in range(instances):
        if turn == index:
            before = counts().get("applied", 0)
            t = time.perf_counter()
            sync._pause_reading(False)
            if not sync.wait_caught_up(120):
                raise TimeoutError("the reader did not catch up")
            elapsed = time.perf_counter() - t
            applied_alone = (counts().get("applied", 0) - before) / elapsed
            sync._pause_reading(True)
        barrier.wait()
    # ... and all at once
    for k in range(events):
        update(mine[k % nodes], Heartbeat(float(k % 90), 21.0, 31.0, k % 4))
    sync.flush(120)
    barrier.wait()
    before = counts().get("applied", 0)
    t = time.perf_counter()
    sync._pause_reading(False)
    sync.wait_caught_up(120)
    applied_together = (counts().get("applied", 0) - before) / (time.perf_counter() - t)
    barrier.wait()

    # 2. convergence delay at paced rates
    delays: dict[str, list[float]] = {}
    for rate in rates:
        sync.clear_delays()
        barrier.wait()
        step = 1.0 / rate
        start = time.perf_counter()
        k = 0
        end = start + duration
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            due = int((now - start) / step) + 1
            while k < due:
                update(mine[k % nodes], Heartbeat(float(k % 90), 22.0, 32.0, k % 4))
                k += 1
            time.sleep(0.0005)
        sync.flush(60)
        barrier.wait()
        sync.wait_caught_up(60)
        barrier.wait()
        delays[str(rate)] = sync.delays()
    return sync, {
        "registration_s": registration,
        "applied_per_s": applied_alone,
        "applied_per_s_together": applied_together,
        "written_per_s": written_per_s,
        "delays": delays,
    }


def format_cluster_bench(report: ClusterBenchReport) -> str:
    """What ``pyscheduler bench --cluster`` prints."""
    lines = [
        (
            f"cluster sync bench: {report.instances} instance processes, {report.nodes} nodes, "
            f"{report.cpus} CPUs, Redis {report.redis}"
        ),
        f"  registration   every node on every instance after {report.registration_s:.3f} s",
    ]
    rows = [["instance", "applied/s alone", "applied/s together", "written/s"]]
    for i in range(report.instances):
        rows.append([
            f"bench-{i}", f"{report.applied_per_s[i]:,.0f}", f"{report.applied_per_s_together[i]:,.0f}",
            f"{report.written_per_s[i]:,.0f}",
        ])
    lines += [
        f"  throughput     {report.events_per_instance:,} heartbeats published per instance, "
        "then applied from the stream by each other instance:",
        *text_table(rows, right=range(1, len(rows[0])), indent="  "),
        "  convergence delay (local change on one instance -> applied on another):",
    ]
    rows = [["changes/s per instance", "applied/s per instance", "p50 ms", "p99 ms", "max ms", "samples"]]
    for rate, d in report.delay_ms.items():
        rows.append([
            f"{rate:,.0f}", f"{rate * (report.instances - 1):,.0f}", f"{d['p50']:.2f}", f"{d['p99']:.2f}",
            f"{d['max']:.2f}", str(d["samples"]),
        ])
    lines += text_table(rows, right=range(1, len(rows[0])), indent="  ")
    return "\n".join(lines) + "\n"
