"""``pyscheduler bench``: the figures of docs/DESIGN.md §8, fast and legacy in the same run.

Per workload: single-call ``select_node`` latency (p50/p99) on each path and
their ratio, batch decisions per second, load-only heartbeat latency,
snapshot build time and bytes per node. Every timed call is followed, outside
the timing, by ``release`` so the fleet's load stays as the workload built it:
each call sees the same steady state.

The cycle row is what a dispatcher runs: ``select_node`` + ``release`` timed
together, jobs with session ids, every flag on (``NodeRegistry()``'s default
with the extension) against the legacy path with session runtime.

Shared machines are noisy: the figures are medians and percentiles over many
calls, and the ratio is taken between paths measured in the same process,
interleaved in rounds so a burst of noise hits both.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .. import _compat
from ..domain.columns import JobColumns
from ..domain.flags import MigrationFlags
from ..domain.model import Heartbeat, JobRequest
from ..registry.node_registry import NodeRegistry
from ..runtime.snapshot import build_snapshot
from ..selection import fast
from .report import percentile, text_table
from .workloads import Workload, build_registry, make_jobs, make_workload

__all__ = [
    "BenchResult",
    "ContentionResult",
    "DEFAULT_CALLS",
    "contention_workload",
    "format_contention",
    "format_table",
    "run_bench",
]

DEFAULT_CALLS = {"small": 20_000, "10k": 20_000, "100k": 10_000}
LEGACY_CALLS = {"small": 5_000, "10k": 1_000, "100k": 200}
BATCH_JOBS = 10_000
FAST_PATH = MigrationFlags(use_runtime_snapshot=True, use_lang_index=True)
CYCLE_FAST = MigrationFlags.all_on()
CYCLE_LEGACY = MigrationFlags(use_session_runtime=True)
"""The cycle row's two paths: both bind sessions."""
"""The selection path docs/DESIGN.md §8 budgets: the kernels over the snapshot. Session
runtime (pool binding per session) is a behaviour change measured apart:
``bench --contention`` runs everything on."""
_CLOCK_NOW = 1_000.0  # a fixed clock: nothing goes stale while we measure


@dataclass(frozen=True)
class BenchResult:
    """The docs/DESIGN.md §8 figures for one workload (times in microseconds unless named)."""

    workload: str
    nodes: int
    pools: int
    fast_p50_us: float
    fast_p99_us: float
    legacy_p50_us: float
    legacy_p99_us: float
    speedup_p50: float
    speedup_mean: float
    batch_decisions_per_s: float
    kernel_batch_decisions_per_s: float
    heartbeat_p50_us: float
    snapshot_build_ms: float
    snapshot_full_ms: float
    snapshot_bytes_per_node: float
    fast_calls: int
    legacy_calls: int
    extension: bool
    cycle_fast_p50_us: float = 0.0
    cycle_fast_p99_us: float = 0.0
    cycle_legacy_p50_us: float = 0.0
    cycle_speedup_p50: float = 0.0
    batch_columns_decisions_per_s: float = 0.0  # _batch_figures: JobColumns in, one thread
    batch_two_threads_ratio: float = 0.0  # two threads batching on one registry ÷ one thread
    kernel_two_threads_ratio: float = 0.0  # the same for the kernel alone: what the machine allows
    config_change_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed_selects(registry: NodeRegistry, jobs: Sequence[JobRequest]) -> np.ndarray:
    """Per-call latency in ns; each selection is released after its timing."""
    select, release, clock = registry.select_node, registry.release, time.perf_counter_ns
    out = np.empty(len(jobs), dtype=np.int64)
    for i, job in enumerate(jobs):
        t0 = clock()
        selection = select(job)
        out[i] = clock() - t0
        if selection.reservation is not None:
            release(selection)
    return out


def _timed_cycles(registry: NodeRegistry, jobs: Sequence[JobRequest]) -> np.ndarray:
    """Per-call latency in ns of ``select_node`` + ``release`` timed together."""
    select, release, clock = registry.select_node, registry.release, time.perf_counter_ns
    out = np.empty(len(jobs), dtype=np.int64)
    for i, job in enumerate(jobs):
        t0 = clock()
        selection = select(job)
        if selection.reservation is not None:
            release(selection)
        out[i] = clock() - t0
    return out


def _cycle_figures(
    workload: Workload, jobs: Sequence[JobRequest], calls: int, legacy_calls: int, rounds: int = 5
) -> dict[str, float]:
    """The cycle row: both paths measured in the same process, interleaved in rounds."""
    with_sessions = [j for j in jobs if j.session_id is not None] or list(jobs)
    fast_reg = build_registry(workload, clock=lambda: _CLOCK_NOW, flags=CYCLE_FAST)
    legacy_reg = build_registry(workload, clock=lambda: _CLOCK_NOW, flags=CYCLE_LEGACY)
    fast_reg.snapshot()
    fast_ns: list[np.ndarray] = []
    legacy_ns: list[np.ndarray] = []
    for r in range(rounds):
        fast_ns.append(_timed_cycles(fast_reg, _take(with_sessions, r * calls // rounds, calls // rounds)))
        legacy_ns.append(
            _timed_cycles(legacy_reg, _take(with_sessions, r * legacy_calls // rounds, legacy_calls // rounds))
        )
    fast_us, legacy_us = np.concatenate(fast_ns) / 1e3, np.concatenate(legacy_ns) / 1e3
    return {
        "cycle_fast_p50_us": float(np.percentile(fast_us, 50)),
        "cycle_fast_p99_us": float(np.percentile(fast_us, 99)),
        "cycle_legacy_p50_us": float(np.percentile(legacy_us, 50)),
        "cycle_speedup_p50": float(np.percentile(legacy_us, 50) / np.percentile(fast_us, 50)),
    }


def _take(jobs: Sequence[JobRequest], start: int, count: int) -> list[JobRequest]:
    """``count`` jobs from ``start``, wrapping around."""
    return [jobs[(start + i) % len(jobs)] for i in range(max(count, 1))]


def _batch_rate(registry: NodeRegistry, jobs: Sequence[JobRequest], rounds: int = 5) -> float:
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch = registry.select_nodes_batch(jobs)
        elapsed = time.perf_counter() - t0
        rates.append(len(jobs) / elapsed)
        registry.release_batch(batch)
    return float(np.median(rates))


def _publish_ms(registry: NodeRegistry, workload: Workload, rounds: int = 5) -> tuple[float, float]:
    """Median ms of one registration then ``snapshot()`` (docs/DESIGN.md §8, topology
    publish: the delta path), and of a full rebuild of the same generation."""
    template = workload.nodes[0]
    times, full = [], []
    for k in range(rounds):
        t0 = time.perf_counter()
        registry.register_node_with_policy(template.with_id(f"bench-publish-{k}"))
        snap = registry.snapshot()
        times.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        build_snapshot(registry._fleet, snap.loads, snap.version)  # the oracle's full rebuild
        full.append((time.perf_counter() - t0) * 1e3)
        registry.remove_node(f"bench-publish-{k}")
        registry.snapshot()
    return float(np.median(times)), float(np.median(full))


def _kernel_batch_rate(registry: NodeRegistry, jobs: Sequence[JobRequest], rounds: int = 5) -> float:
    """Decisions per second inside the batch kernel alone (jobs already translated)."""
    snapshot = registry.snapshot()
    batch = fast.prepare_batch(snapshot, jobs)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out, _records = fast.run_batch(snapshot, batch, _CLOCK_NOW)
        rates.append(len(jobs) / (time.perf_counter() - t0))
        for node in out[:, 0].tolist():  # give the places back (no tokens were made)
            if node >= 0:
                snapshot.loads.unreserve(int(snapshot.slots[node]))
    return float(np.median(rates))


# -- batches: JobColumns in, and two threads batching on one registry ----------------

BATCH_CHUNK = 1_000  # jobs per select_nodes_batch call of the two-thread figures


def _batch_figures(registry: NodeRegistry, jobs: Sequence[JobRequest], rounds: int = 5) -> dict[str, float]:
    """Decisions/s of ``select_nodes_batch(JobColumns)`` (one thread), and the
    two-thread ratios: one thread runs every chunk of ``jobs`` in turn, then two
    threads each run half of them at once; ratio = one-thread time ÷ two-thread
    time (2.0: perfect), median over ``rounds`` taken in the same run. The
    kernel-alone ratio, measured the same way, is the machine's ceiling."""
    snapshot = registry.snapshot()
    chunks = [list(jobs[k:k + BATCH_CHUNK]) for k in range(0, len(jobs), BATCH_CHUNK)]
    columns = [JobColumns.from_requests(chunk) for chunk in chunks]
    kernel_inputs = [fast.prepare_batch(snapshot, chunk) for chunk in chunks]

    def batches(part: Sequence[Any]) -> None:
        for chunk in part:
            registry.release_batch(registry.select_nodes_batch(chunk))

    def kernels(part: Sequence[Any]) -> None:
        for batch in part:
            out, _records = fast.run_batch(snapshot, batch, _CLOCK_NOW)
            for node in out[:, 0].tolist():  # give the places back (no tokens were made)
                if node >= 0:
                    snapshot.loads.unreserve(snapshot.slots[node])

    one, ratio, kernel_ratio = [], [], []
    for _ in range(rounds):
        t1 = _elapsed(batches, [columns])
        one.append(len(jobs) / t1)
        ratio.append(t1 / _elapsed(batches, [columns[0::2], columns[1::2]]))
        kernel_ratio.append(_elapsed(kernels, [kernel_inputs])
                            / _elapsed(kernels, [kernel_inputs[0::2], kernel_inputs[1::2]]))
    return {
        "batch_columns_decisions_per_s": float(np.median(one)),
        "batch_two_threads_ratio": float(np.median(ratio)),
        "kernel_two_threads_ratio": float(np.median(kernel_ratio)),
    }


def _elapsed(work: Any, parts: Sequence[Sequence[Any]]) -> float:
    """Seconds for ``work(part)`` of every part, one thread per part started together."""
    if len(parts) == 1:
        t0 = time.perf_counter()
        work(parts[0])
        return time.perf_counter() - t0
    start = threading.Barrier(len(parts) + 1)

    def run(part: Sequence[Any]) -> None:
        start.wait()
        work(part)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _heartbeat_p50(registry: NodeRegistry, workload: Workload, count: int = 20_000) -> float:
    ids = [info.node_id for info in workload.nodes]
    beats = workload.initial_heartbeats
    samples = np.empty(count, dtype=np.int64)
    update, clock = registry.update_node_heartbeat, time.perf_counter_ns
    for i in range(count):
        k = i % len(ids)
        b = beats[k]
        beat = Heartbeat(b.cpu_usage, b.memory_usage, b.gpu_usage, b.current_jobs)
        t0 = clock()
        update(ids[k], beat)
        samples[i] = clock() - t0
    return float(np.median(samples)) / 1e3


CONFIG_ROUNDS = 6  # config changes timed per workload (two configs alternate)


def _config_figures(registry: NodeRegistry, workload: Workload, jobs: Sequence[JobRequest]) -> dict[str, float]:
    """The config row (docs/DESIGN.md §8, config change): median time of
    ``set_phase3_config`` + the first ``select_node`` after it, every flag on
    (the change is prepared off the registry lock, the snapshot rebuilt from the
    management copy). Two configs alternate, differing in ``hash_seed`` and
    ``resource_threshold``; a generating workload generates its pools again
    each time. Switches ``registry`` to every flag on."""
    registry.set_flags(CYCLE_FAST)
    registry.snapshot()
    cfg = workload.phase3
    configs = (replace(cfg, hash_seed=cfg.hash_seed + 1, resource_threshold=86.0), cfg)
    times = []
    for k in range(CONFIG_ROUNDS):
        t0 = time.perf_counter()
        registry.set_phase3_config(configs[k % 2])
        selection = registry.select_node(jobs[k])
        times.append((time.perf_counter() - t0) * 1e3)
        if selection.reservation is not None:
            registry.release(selection)
    return {"config_change_ms": float(np.median(times))}


def bench_workload(name: str, *, seed: int = 1, calls: int | None = None, legacy_calls: int | None = None) -> BenchResult:
    """Measure one workload on both paths (the fast path needs the extension)."""
    workload = make_workload(name, seed)
    calls = DEFAULT_CALLS.get(name, 20_000) if calls is None else calls
    legacy_calls = LEGACY_CALLS.get(name, 1_000) if legacy_calls is None else legacy_calls
    jobs = make_jobs(workload, max(calls, BATCH_JOBS), seed)
    fast_reg = build_registry(workload, clock=lambda: _CLOCK_NOW, flags=FAST_PATH)
    legacy_reg = build_registry(workload, clock=lambda: _CLOCK_NOW, flags=MigrationFlags.legacy())
    fast_reg.snapshot()
    build_ms, full_ms = _publish_ms(fast_reg, workload)
    snapshot = fast_reg.snapshot()
    gc.collect()
    fast_ns: list[np.ndarray] = []
    legacy_ns: list[np.ndarray] = []
    rounds = 5  # interleave the paths so noise hits both
    for r in range(rounds):
        fast_ns.append(_timed_selects(fast_reg, jobs[r * calls // rounds:(r + 1) * calls // rounds]))
        legacy_ns.append(_timed_selects(legacy_reg, jobs[r * legacy_calls // rounds:(r + 1) * legacy_calls // rounds]))
    fast_all, legacy_all = np.concatenate(fast_ns) / 1e3, np.concatenate(legacy_ns) / 1e3
    return BenchResult(
        workload=name,
        nodes=snapshot.n_nodes,
        pools=len(snapshot.pool_ids),
        fast_p50_us=percentile(fast_all, 50),
        fast_p99_us=percentile(fast_all, 99),
        legacy_p50_us=percentile(legacy_all, 50),
        legacy_p99_us=percentile(legacy_all, 99),
        speedup_p50=percentile(legacy_all, 50) / percentile(fast_all, 50),
        speedup_mean=float(legacy_all.mean() / fast_all.mean()),
        batch_decisions_per_s=_batch_rate(fast_reg, jobs[:BATCH_JOBS]),
        kernel_batch_decisions_per_s=_kernel_batch_rate(fast_reg, jobs[:BATCH_JOBS]),
        heartbeat_p50_us=_heartbeat_p50(fast_reg, workload),
        snapshot_build_ms=build_ms,
        snapshot_full_ms=full_ms,
        snapshot_bytes_per_node=snapshot.bytes_per_node,
        fast_calls=len(fast_all),
        legacy_calls=len(legacy_all),
        extension=_compat.HAVE_HOTPATH,
        **_cycle_figures(workload, jobs, calls, legacy_calls),
        **_batch_figures(fast_reg, jobs[:BATCH_JOBS]),
        **_config_figures(fast_reg, workload, jobs),  # last: it switches fast_reg's flags
    )


def run_bench(workloads: Sequence[str], *, seed: int = 1, calls: int | None = None) -> list[BenchResult]:
    if not _compat.HAVE_HOTPATH:
        raise fast.FastPathUnavailable(
            "pyscheduler bench compares the compiled fast path: the extension is not available"
        )
    return [bench_workload(name, seed=seed, calls=calls) for name in workloads]


_COLUMNS = (
    ("workload", "workload", "{}"),
    ("nodes", "nodes", "{:,}"),
    ("pools", "pools", "{:,}"),
    ("fast p50 µs", "fast_p50_us", "{:.2f}"),
    ("fast p99 µs", "fast_p99_us", "{:.2f}"),
    ("legacy p50 µs", "legacy_p50_us", "{:.1f}"),
    ("legacy p99 µs", "legacy_p99_us", "{:.1f}"),
    ("speed-up p50", "speedup_p50", "{:.0f}×"),
    ("cycle p50 µs", "cycle_fast_p50_us", "{:.2f}"),
    ("cycle p99 µs", "cycle_fast_p99_us", "{:.2f}"),
    ("legacy cycle p50 µs", "cycle_legacy_p50_us", "{:.1f}"),
    ("cycle speed-up", "cycle_speedup_p50", "{:.0f}×"),
    ("batch decisions/s", "batch_decisions_per_s", "{:,.0f}"),
    ("kernel batch/s", "kernel_batch_decisions_per_s", "{:,.0f}"),
    ("columns batch/s", "batch_columns_decisions_per_s", "{:,.0f}"),
    ("batch 2 threads ×", "batch_two_threads_ratio", "{:.2f}×"),
    ("kernel 2 threads ×", "kernel_two_threads_ratio", "{:.2f}×"),
    ("heartbeat p50 µs", "heartbeat_p50_us", "{:.2f}"),
    ("snapshot ms", "snapshot_build_ms", "{:.1f}"),
    ("full rebuild ms", "snapshot_full_ms", "{:.1f}"),
    ("bytes/node", "snapshot_bytes_per_node", "{:.0f}"),
    ("config + select ms", "config_change_ms", "{:.1f}"),
)


def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table, one row per workload."""
    return _table(_COLUMNS, results)


def _table(columns: Sequence[tuple[str, str, str]], results: Sequence[object]) -> str:
    """Right-aligned columns: (title, attribute, format) each, one row per result."""
    header = [title for title, _, _ in columns]
    rows = [[fmt.format(getattr(r, key)) for _, key, fmt in columns] for r in results]
    return "\n".join(text_table([header, *rows], right=range(len(header))))


# -- contention: dispatch latency during a heartbeat storm -----------------------

STORM_BATCH = 8  # heartbeats applied between two yields of the GIL, as a network handler would


@dataclass(frozen=True)
class ContentionResult:
    """Dispatch latency on one path, quiet and during a heartbeat storm (µs)."""

    workload: str
    path: str
    quiet_p50_us: float
    quiet_p99_us: float
    storm_p50_us: float
    storm_p99_us: float
    storm_over_quiet_p99: float
    heartbeats_per_s: float
    target_heartbeats_per_s: float
    registry_lock_wait_p99_us: float
    management_lock_wait_p99_us: float
    slow_lock_waits: int  # waits over 10 ms (each is also logged as a warning)
    calls: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dispatch_latencies(registry: NodeRegistry, jobs: Sequence[JobRequest]) -> np.ndarray:
    return _timed_selects(registry, jobs) / 1e3


class _Storm:
    """Threads applying load-only heartbeats at a target rate until stopped.

    Each thread wakes, applies ``STORM_BATCH`` beats and sleeps until the rate
    is due again: one at a time through ``update_node_heartbeat``, or, with
    ``batched``, all in one ``update_node_heartbeats`` call (one lock hold).
    """

    def __init__(
        self,
        registry: NodeRegistry,
        workload: Workload,
        rate: float,
        *,
        batched: bool = False,
        threads: int = 2,
    ) -> None:
        self.registry = registry
        beats = [
            Heartbeat(b.cpu_usage, b.memory_usage, b.gpu_usage, b.current_jobs) for b in workload.initial_heartbeats
        ]
        self.pairs = [(info.node_id, beat) for info, beat in zip(workload.nodes, beats)]
        self.batched = batched
        self.rate_per_thread = rate / threads
        self.stop = threading.Event()
        self.applied = [0] * threads
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(threads)]

    def _bursts(self, k: int) -> Iterator[list[tuple[str, Heartbeat]]]:
        """Thread k's bursts of STORM_BATCH pairs, round robin over the fleet."""
        pairs, step = self.pairs, len(self.threads)
        i = k
        while True:
            yield [pairs[(i + step * b) % len(pairs)] for b in range(STORM_BATCH)]
            i += step * STORM_BATCH

    def _run(self, k: int) -> None:
        registry, start = self.registry, time.perf_counter()
        for burst in self._bursts(k):
            if self.stop.is_set():
                return
            if self.batched:
                registry.update_node_heartbeats(burst)
            else:
                for node_id, beat in burst:
                    registry.update_node_heartbeat(node_id, beat)
            self.applied[k] += len(burst)
            ahead = self.applied[k] / self.rate_per_thread - (time.perf_counter() - start)
            time.sleep(ahead if ahead > 0 else 0)  # pace to the rate; always yield the GIL

    def __enter__(self) -> _Storm:
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.elapsed = time.perf_counter() - self.started


CONTENTION_ROUNDS = 10  # quiet and storm alternate, so the machine's own noise falls on both
CONTENTION_PATHS = ("legacy", "new", "new+batch")


def _quiet_and_storm(
    registry: NodeRegistry,
    workload: Workload,
    jobs: Sequence[JobRequest],
    rate: float,
    *,
    batched: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Dispatch latencies (µs) quiet and under a storm, in alternating rounds over
    the same jobs, and the heartbeats per second the storms applied."""
    quiet, loud = [], []
    applied = elapsed = 0.0
    for chunk in np.array_split(np.arange(len(jobs)), CONTENTION_ROUNDS):
        round_jobs = [jobs[i] for i in chunk]
        gc.collect()
        quiet.append(_dispatch_latencies(registry, round_jobs))
        with _Storm(registry, workload, rate, batched=batched) as storm:
            loud.append(_dispatch_latencies(registry, round_jobs))
        applied += sum(storm.applied)
        elapsed += storm.elapsed
    return np.concatenate(quiet), np.concatenate(loud), applied / elapsed


def contention_workload(
    name: str = "10k", *, rate: float = 50_000, calls: int = 20_000, seed: int = 1
) -> list[ContentionResult]:
    """Dispatch p50/p99 quiet and under a heartbeat storm, measured in the same process:
    the legacy path, the new one (``enable_lock_optimization``) with beats applied one
    call each, and the new one with each burst applied by one ``update_node_heartbeats``."""
    workload = make_workload(name, seed)
    jobs = make_jobs(workload, calls, seed)
    results = []
    for path in CONTENTION_PATHS:
        registry = build_registry(workload, clock=lambda: _CLOCK_NOW)
        if path != "legacy":
            registry.enable_lock_optimization()
            registry.snapshot()
        path_jobs = jobs[: LEGACY_CALLS.get(name, 1_000) * 2] if path == "legacy" else jobs
        locks_log = logging.getLogger("pyscheduler.locks")
        level = locks_log.level
        locks_log.setLevel(logging.ERROR)  # slow waits are counted below, not printed one by one
        try:
            quiet, loud, achieved = _quiet_and_storm(
                registry, workload, path_jobs, rate, batched=path == "new+batch"
            )
        finally:
            locks_log.setLevel(level)
        metrics = registry.metrics()
        hists = metrics["histograms"]
        results.append(
            ContentionResult(
                workload=name,
                path=path,
                quiet_p50_us=percentile(quiet, 50),
                quiet_p99_us=percentile(quiet, 99),
                storm_p50_us=percentile(loud, 50),
                storm_p99_us=percentile(loud, 99),
                storm_over_quiet_p99=percentile(loud, 99) / percentile(quiet, 99),
                heartbeats_per_s=achieved,
                target_heartbeats_per_s=rate,
                registry_lock_wait_p99_us=hists.get("registry_lock_wait_s", {}).get("p99", 0.0) * 1e6,
                management_lock_wait_p99_us=hists.get("management_lock_wait_s", {}).get("p99", 0.0) * 1e6,
                slow_lock_waits=sum(v for k, v in metrics["counters"].items() if k.startswith("slow_lock_wait")),
                calls=len(path_jobs),
            )
        )
    return results


_CONTENTION_COLUMNS = (
    ("workload", "workload", "{}"),
    ("path", "path", "{}"),
    ("quiet p50 µs", "quiet_p50_us", "{:.2f}"),
    ("quiet p99 µs", "quiet_p99_us", "{:.1f}"),
    ("storm p50 µs", "storm_p50_us", "{:.2f}"),
    ("storm p99 µs", "storm_p99_us", "{:.1f}"),
    ("storm/quiet p99", "storm_over_quiet_p99", "{:.2f}×"),
    ("heartbeats/s", "heartbeats_per_s", "{:,.0f}"),
    ("registry lock wait p99 µs", "registry_lock_wait_p99_us", "{:.0f}"),
    ("management lock wait p99 µs", "management_lock_wait_p99_us", "{:.0f}"),
    ("waits > 10 ms", "slow_lock_waits", "{:,}"),
)


def format_contention(results: Sequence[ContentionResult]) -> str:
    """A plain-text table, one row per workload and path."""
    return _table(_CONTENTION_COLUMNS, results)
