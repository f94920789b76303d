"""Dispatch: ``select_node``, ``select_nodes_batch``, decisions/s, fast ≡ legacy.

DESIGN §8 budgets these figures: ``select_node`` on the fast path, ``10k``,
p50 ≤ 2 µs; fast / legacy ≥ 100×; ``select_nodes_batch`` ≥ 1,000,000
decisions/s. asv times whole calls, so the time benchmarks run a fixed block
of jobs per call (the same block every call): divide by the block size for a
per-job figure.
"""

from __future__ import annotations

import time

from .common import PATHS, WORKLOADS, Base, Steady, new_registry, release_all

#: Jobs per ``time_select_node`` call: the reported time / 100 is µs per job.
SELECT_BLOCK = 100
#: Jobs per ``time_select_nodes_batch`` call.
BATCH_BLOCK = 1_000
#: Jobs per round of ``track_decisions_per_second`` (legacy is ~100× slower).
RATE_JOBS = {"fast": 10_000, "legacy": 1_000}
#: Jobs of the fixed stream ``track_fast_legacy_agreement`` compares.
AGREEMENT_JOBS = {"small": 3_000, "10k": 1_500}


class SelectNode(Base):
    """``select_node`` on the first 100 jobs of the workload's stream.

    Each job's reservation is held until the block ends (later jobs see it, as
    in a dispatcher) and given back in ``setup``, outside the timing.
    """

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]
    number = 1
    repeat = (5, 50, 10.0)

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "select")
        self.jobs = cache[workload]["jobs"][:SELECT_BLOCK]

    def time_select_node(self, cache, workload, path):
        select = self.steady.registry.select_node
        self.steady.pending = [select(job) for job in self.jobs]


class SelectNodesBatch(Base):
    """``select_nodes_batch`` of 1,000 jobs (fast: one compiled call, GIL released)."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]
    number = 1
    repeat = (5, 30, 10.0)

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "batch")
        self.jobs = cache[workload]["jobs"][:BATCH_BLOCK]

    def time_select_nodes_batch(self, cache, workload, path):
        self.steady.pending = self.steady.registry.select_nodes_batch(self.jobs)


class DecisionRate(Base):
    """Throughput figures measured inside one call (median of rounds, same process)."""

    params = (WORKLOADS, PATHS)
    param_names = ["workload", "path"]

    def setup(self, cache, workload, path):
        self.steady = Steady.get(cache, workload, path, "rate")

    def track_decisions_per_second(self, cache, workload, path):
        """``select_nodes_batch`` decisions per second, one thread (median of 3 rounds)."""
        registry = self.steady.registry
        jobs = cache[workload]["jobs"][: RATE_JOBS[path]]
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            selections = registry.select_nodes_batch(jobs)
            rates.append(len(jobs) / (time.perf_counter() - t0))
            release_all(registry, selections)
        return sorted(rates)[1]

    track_decisions_per_second.unit = "decisions/s"


class Agreement(Base):
    """The fast and legacy paths on the same fixed job stream, side by side."""

    params = [WORKLOADS]
    param_names = ["workload"]

    def setup(self, cache, workload):
        self.fast = new_registry(cache, workload, "fast")
        self.legacy = new_registry(cache, workload, "legacy")

    def track_fast_legacy_agreement(self, cache, workload):
        """Share of jobs on which both paths decide the same (``Selection.decision()``:
        node, pools, fallback, every attempt's breakdown). Must be 1.0.

        Each path commits its own picks, so the fleet fills up over the stream and
        later jobs meet ``capacity_exceeded`` as well as the workload's other reasons.
        """
        same = 0
        jobs = cache[workload]["jobs"][: AGREEMENT_JOBS[workload]]
        for job in jobs:
            a = self.fast.select_node(job)
            b = self.legacy.select_node(job)
            same += a.decision() == b.decision()
            for registry, selection in ((self.fast, a), (self.legacy, b)):
                if selection.reservation is not None:
                    registry.commit(selection)
        return same / len(jobs)

    track_fast_legacy_agreement.unit = "share"

    def track_fast_legacy_speedup(self, cache, workload):
        """Legacy time / fast time for the same 200 ``select_node`` calls, interleaved
        in rounds so noise hits both (DESIGN §8 budget on ``10k``: ≥ 100×)."""
        jobs = cache[workload]["jobs"][:200]
        totals = {"fast": 0.0, "legacy": 0.0}
        for start in range(0, len(jobs), 50):
            block = jobs[start : start + 50]
            for name, registry in (("fast", self.fast), ("legacy", self.legacy)):
                t0 = time.perf_counter()
                selections = [registry.select_node(job) for job in block]
                totals[name] += time.perf_counter() - t0
                release_all(registry, selections)
        return totals["legacy"] / totals["fast"]

    track_fast_legacy_speedup.unit = "x"
