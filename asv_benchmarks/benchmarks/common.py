"""Shared set-up of the pyscheduler asv suite (after scikit-learn's ``common.py``).

``Base.setup_cache`` builds the standard workloads (docs/DESIGN.md,
performance budget) and their job streams once per environment and commit; asv pickles what it returns and hands
it to every benchmark. Registries hold locks and cannot be pickled, so only
plain data (the :class:`~pyscheduler.tools.workloads.Workload` and its jobs) goes
through the cache; each benchmark process builds the registries it needs from
it, once (:class:`Steady` memoizes them per process), which takes under half
a second for ``10k``.

asv (asv_runner ≥ 0.2) re-runs ``setup`` before every timed call of a benchmark
that has one, and older runners before every sample; the time benchmarks that
change the registry set ``number = 1`` so that, with either runner, ``setup``
undoes what the previous call did (gives reservations back, re-admits a drained
node) outside the timing, and every call starts from the same state.

Only the public API is used: ``NodeRegistry`` methods, ``MigrationFlags``,
``pyscheduler.tools.workloads`` and ``Selection.path`` / ``decision()``. The path is a
``params`` axis, never the ``PYSCHEDULER_NO_EXTENSIONS`` switch (read once at
import): ``fast`` is ``MigrationFlags.all_on()``, ``legacy`` all flags off.
Without the compiled extension the ``fast`` cases are skipped.

Read over history, every figure is lower-is-better (asv flags a rise as a
regression): seconds per call or per decision, fast time ÷ legacy time, the
share of decisions on which the paths disagree, bytes per node. A benchmark
whose API a commit lacks raises ``NotImplementedError`` in ``setup`` (asv
reports it skipped, not failed): :func:`require` does that.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pyscheduler import MigrationFlags, NodeRegistry, Selection

try:  # the layered package (pyscheduler.tools); older commits kept it at the top
    from pyscheduler.tools.workloads import build_registry, make_jobs, make_workload
except ImportError:  # pragma: no cover - asv runs over history
    from pyscheduler.workloads import build_registry, make_jobs, make_workload

WORKLOADS = ["small", "10k"]
#: The large fleet: benchmarks on it derive from :class:`Base100k` (its own cache).
LARGE = "100k"
PATHS = ["fast", "legacy"]
SEED = 1

#: Jobs drawn per workload in ``setup_cache``; benchmarks read prefixes of it.
STREAM_JOBS = 10_000

CLOCK_NOW = 1_000.0


def fixed_clock() -> float:
    """The registries' clock: time stands still, so nothing goes stale while we measure."""
    return CLOCK_NOW


def flags_for(path: str) -> MigrationFlags:
    """``fast``: every flag on; ``legacy``: every flag off (spelled out, whatever the default)."""
    if path == "fast":
        return MigrationFlags.all_on()
    return MigrationFlags(
        use_management_registry=False, use_runtime_snapshot=False, use_lang_index=False,
        use_session_runtime=False,
    )  # fmt: skip


def require(obj: object, *names: str) -> None:
    """Raise ``NotImplementedError`` (asv: skip this case) when ``obj`` lacks any of
    ``names`` — an API added after the commit being measured."""
    missing = [name for name in names if not hasattr(obj, name)]
    if missing:
        raise NotImplementedError(f"this commit has no {', '.join(missing)}")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def per_call_seconds(run, undo, calls: int, rounds: int) -> float:
    """Seconds per call: the median over ``rounds`` of the time of ``run()`` divided by
    the ``calls`` it makes; ``undo(result)`` restores the state after each round,
    outside the timing."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - t0) / calls)
        undo(result)
    return median(samples)


def new_registry(cache: dict, workload: str, path: str) -> NodeRegistry:
    """A fresh registry of ``workload`` on ``path``, every node registered and
    heartbeating. Raises ``NotImplementedError`` (asv: skip the case) when the
    fast path is asked for and the build does not serve it."""
    registry = build_registry(cache[workload]["workload"], fixed_clock, flags=flags_for(path))
    if path == "fast":
        probe = registry.select_node(cache[workload]["jobs"][0])
        release_all(registry, [probe])
        if probe.path != "fast":
            raise NotImplementedError("the compiled fast path is not available in this build")
    return registry


def release_all(registry: NodeRegistry, selections: Iterable[Selection]) -> None:
    """Give back every place the selections reserved (the fleet's load stays as built)."""
    release = registry.release
    for selection in selections:
        if selection.reservation is not None:
            release(selection)


class Steady:
    """A registry for one benchmark case, plus what the last timed call left behind.

    ``Steady.get`` builds it on first use in the process and afterwards only
    calls :meth:`reset`, which releases the reservations the last call made.
    """

    _made: dict[tuple[str, str, str], Steady] = {}

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        self.pending: list[Selection] = []
        self.state: dict = {}

    @classmethod
    def get(cls, cache: dict, workload: str, path: str, purpose: str) -> Steady:
        key = (workload, path, purpose)
        steady = cls._made.get(key)
        if steady is None:
            steady = cls._made[key] = cls(new_registry(cache, workload, path))
        steady.reset()
        return steady

    def reset(self) -> None:
        pending, self.pending = self.pending, []
        release_all(self.registry, pending)


class Base:
    """Every benchmark class derives from this: one process, one shared cache."""

    processes = 1
    timeout = 300.0

    def setup_cache(self) -> dict:
        cache = {}
        for name in WORKLOADS:
            workload = make_workload(name, SEED)
            cache[name] = {"workload": workload, "jobs": make_jobs(workload, STREAM_JOBS, SEED)}
        return cache

    setup_cache.timeout = 600  # type: ignore[attr-defined]


class Base100k(Base):
    """Benchmarks on the ``100k`` fleet. Its own ``setup_cache`` (the ``100k``
    workload and its job stream only), so the other benchmarks never load it;
    each benchmark process builds its registry once from it (``Steady``), which
    takes a few seconds. Keep the number of these benchmarks small: every one
    of them builds a ``100k`` registry in its own process."""

    timeout = 600.0

    def setup_cache(self) -> dict:
        workload = make_workload(LARGE, SEED)
        return {LARGE: {"workload": workload, "jobs": make_jobs(workload, STREAM_JOBS, SEED)}}

    setup_cache.timeout = 900  # type: ignore[attr-defined]
