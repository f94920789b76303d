"""Dispatch: ``select_node``, ``select_nodes_batch``, fast vs legacy.

Every figure is per call and lower-is-better, so asv's regression detection
points the right way over history: seconds per ``select_node`` call, seconds
per decision of a batch (decisions/s = 1 / that), fast time ÷ legacy time,
and the share of decisions on which the two paths disagree (must be 0).
Each ``track_*`` times a fixed block of jobs inside the benchmark and divides
(median of several rounds); the reservations a round made are given back
between rounds, outside the timing. The budgets are in docs/DESIGN.md.
"""

from __future__ import annotations

import threading
import time

from .common import (
    LARGE,
    PATHS,
    WORKLOADS,
    Base,
    Base100k,
    Steady,
    median,
    new_registry,
    per_call_seconds,
    release_all,
    require,
)

#: Jobs per round of ``track_select_node_seconds``.
SELECT_BLOCK = 100
#: Jobs per round of ``track_batch_seconds_per_decision`` (legacy is ~100× slower).
BATCH_JOBS = {"fast": 10_000, "legacy": 1_000}
#: Calls timed one by one for the percentile figures.
PERCENTILE_CALLS = 2_000
#: Jobs of the fixed stream ``track_fast_legacy_disagreement`` compares.
AGREEMENT_JOBS = {"small": 3_000, "10k": 1_500}


class SelectNode(Base):
    """``select_node`` on the first 100 jobs of the workload's stream, per call.

    Each job's reservation is held until the round ends (later jobs see it, as
    in a dispatcher) and given back before the next round.
    """

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "select")
        self.jobs = cache[workload]["jobs"][:SELECT_BLOCK]

    def track_select_node_seconds(self, cache, workload, path):
        """Seconds per ``select_node`` call (median of 15 rounds of 100 calls)."""
        registry, jobs = self.steady.registry, self.jobs
        select = registry.select_node
        return per_call_seconds(
            lambda: [select(job) for job in jobs],
            lambda selections: release_all(registry, selections),
            len(jobs),
            rounds=15,
        )

    track_select_node_seconds.unit = "seconds"


class SelectNodesBatch(Base):
    """``select_nodes_batch`` (fast: one compiled call, GIL released), per decision."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "batch")
        self.jobs = cache[workload]["jobs"][: BATCH_JOBS[path]]

    def track_batch_seconds_per_decision(self, cache, workload, path):
        """Seconds per decision of one ``select_nodes_batch`` call over 10,000 jobs
        (1,000 on legacy), results read; median of 5 rounds. Decisions/s = 1 / this."""
        registry, jobs = self.steady.registry, self.jobs
        return per_call_seconds(
            lambda: registry.select_nodes_batch(jobs),
            lambda selections: release_all(registry, selections),
            len(jobs),
            rounds=5,
        )

    track_batch_seconds_per_decision.unit = "seconds"


class Agreement(Base):
    """The fast and legacy paths on the same fixed job stream, side by side."""

    params = [WORKLOADS]
    param_names = ["workload"]

    def setup(self, cache, workload):
        self.fast = new_registry(cache, workload, "fast")
        self.legacy = new_registry(cache, workload, "legacy")

    def track_fast_legacy_disagreement(self, cache, workload):
        """Share of jobs on which the two paths decide differently
        (``Selection.decision()``: node, pools, fallback, every attempt's
        breakdown). Must be 0.

        Each path commits its own picks, so the fleet fills up over the stream and
        later jobs meet ``capacity_exceeded`` as well as the workload's other reasons.
        """
        differ = 0
        jobs = cache[workload]["jobs"][: AGREEMENT_JOBS[workload]]
        for job in jobs:
            a = self.fast.select_node(job)
            b = self.legacy.select_node(job)
            differ += a.decision() != b.decision()
            for registry, selection in ((self.fast, a), (self.legacy, b)):
                if selection.reservation is not None:
                    registry.commit(selection)
        return round(differ / len(jobs), 6)

    track_fast_legacy_disagreement.unit = "share"

    def track_fast_over_legacy_time(self, cache, workload):
        """Fast time ÷ legacy time for the same 200 ``select_node`` calls,
        interleaved in blocks of 50 so noise hits both. The budget (≥ 300×
        speed-up on ``10k``) is ≤ 0.0033 here; lower is better."""
        jobs = cache[workload]["jobs"][:200]
        totals = {"fast": 0.0, "legacy": 0.0}
        for start in range(0, len(jobs), 50):
            block = jobs[start : start + 50]
            for name, registry in (("fast", self.fast), ("legacy", self.legacy)):
                t0 = time.perf_counter()
                selections = [registry.select_node(job) for job in block]
                totals[name] += time.perf_counter() - t0
                release_all(registry, selections)
        return round(totals["fast"] / totals["legacy"], 6)

    track_fast_over_legacy_time.unit = "ratio"


#: Jobs per ``select_nodes_batch`` call of ``SelectionBatches``' two-thread figure.
THREAD_CHUNK = 1_000


class SelectionBatches(Base):
    """Batches as a dispatcher holding a queue makes them: ``JobColumns`` in,
    ``SelectionBatch`` out, its tokens ended with ``release_batch``."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]

    def setup(self, cache, workload, path):
        try:
            from pyscheduler import JobColumns
        except ImportError:  # pragma: no cover - asv runs over history
            raise NotImplementedError("this commit has no JobColumns") from None
        self.steady = Steady.get(cache, workload, path, "columns")
        require(self.steady.registry, "release_batch")
        jobs = cache[workload]["jobs"][: BATCH_JOBS[path]]
        self.columns = JobColumns.from_requests(jobs)
        self.chunks = [JobColumns.from_requests(jobs[k : k + THREAD_CHUNK]) for k in range(0, len(jobs), THREAD_CHUNK)]

    def _place(self, chunks) -> None:
        registry = self.steady.registry
        for chunk in chunks:
            registry.release_batch(registry.select_nodes_batch(chunk))

    def track_columns_batch_seconds_per_decision(self, cache, workload, path):
        """Seconds per decision of one ``select_nodes_batch(JobColumns)`` call over
        10,000 jobs (1,000 on legacy); median of 5 rounds. Decisions/s = 1 / this."""
        registry = self.steady.registry
        return per_call_seconds(
            lambda: registry.select_nodes_batch(self.columns),
            registry.release_batch,
            len(self.columns),
            rounds=5,
        )

    track_columns_batch_seconds_per_decision.unit = "seconds"

    def track_two_threads_over_one_time(self, cache, workload, path):
        """Two threads placing half the chunks each at once, time ÷ one thread
        placing them all (each chunk's places given back by ``release_batch``);
        median of 5 rounds. 0.5 is perfect scaling on two free cores, 1.0 none;
        the legacy path serialises on the registry lock."""
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            self._place(self.chunks)
            one = time.perf_counter() - t0
            threads = [threading.Thread(target=self._place, args=(part,))
                       for part in (self.chunks[0::2], self.chunks[1::2])]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            samples.append((time.perf_counter() - t0) / one)
        return round(median(samples), 6)

    track_two_threads_over_one_time.unit = "ratio"


def select_percentile_seconds(registry, jobs, percent: float) -> float:
    """The ``percent``-th percentile (nearest rank) of single ``select_node``
    call times, in seconds: each call timed alone, its reservation given back
    after it, outside the timing (every call sees the fleet as built)."""
    select, release, clock = registry.select_node, registry.release, time.perf_counter_ns
    samples = []
    for job in jobs:
        t0 = clock()
        selection = select(job)
        samples.append(clock() - t0)
        if selection.reservation is not None:
            release(selection)
    samples.sort()
    rank = max(0, min(len(samples) - 1, round(percent / 100 * len(samples)) - 1))
    return samples[rank] / 1e9


class SelectNodeTail(Base):
    """The tail of the fast path: ``select_node`` p99 over 2,000 calls of the
    workload's stream, each timed alone (the non-strict fallback scans are the
    tail, docs/PERFORMANCE.md)."""

    params = [WORKLOADS]
    param_names = ["workload"]

    def setup(self, cache, workload):
        self.steady = Steady.get(cache, workload, "fast", "tail")
        self.jobs = cache[workload]["jobs"][:PERCENTILE_CALLS]

    def track_select_node_p99_seconds(self, cache, workload):
        """p99 of one ``select_node`` call, fast path (seconds)."""
        return select_percentile_seconds(self.steady.registry, self.jobs, 99)

    track_select_node_p99_seconds.unit = "seconds"


class SelectNode100k(Base100k):
    """``select_node`` on the ``100k`` fleet, fast path: p50 and p99 over 2,000
    calls of its stream, each timed alone. (Each figure builds the fleet in its
    own process: a few seconds.)"""

    def setup(self, cache):
        self.steady = Steady.get(cache, LARGE, "fast", "select")
        self.jobs = cache[LARGE]["jobs"][:PERCENTILE_CALLS]

    def track_select_node_p50_seconds(self, cache):
        """p50 of one ``select_node`` call on ``100k`` (seconds)."""
        return select_percentile_seconds(self.steady.registry, self.jobs, 50)

    track_select_node_p50_seconds.unit = "seconds"

    def track_select_node_p99_seconds(self, cache):
        """p99 of one ``select_node`` call on ``100k`` (seconds)."""
        return select_percentile_seconds(self.steady.registry, self.jobs, 99)

    track_select_node_p99_seconds.unit = "seconds"
