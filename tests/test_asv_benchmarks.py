"""The asv suite (asv_benchmarks/benchmarks) run in-process, once, the way asv
calls it: ``setup_cache`` once, then ``setup`` before every call of a benchmark.

This checks what asv cannot: that a benchmark leaves the registry as it found
it (so every timed call measures the same thing), that the fast and legacy
paths agree on the whole fixed job stream (``track_fast_legacy_disagreement``
must be 0), that every figure reads lower-is-better with a unit, and that on
an older commit's API shape the benchmarks it lacks skip instead of failing.
Timing figures are only checked for being per call (bounded), never for speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asv_benchmarks"))

from benchmarks import common, registry, selection  # noqa: E402

sys.path.remove(str(ROOT / "asv_benchmarks"))

pytestmark = pytest.mark.hotpath


@pytest.fixture(scope="module")
def cache():
    return common.Base().setup_cache()


def reservations(reg) -> int:
    return reg.metrics()["gauges"]["reservations"]


def test_cache_holds_plain_data_that_pickles(cache):
    import pickle

    assert set(cache) == {"small", "10k"}
    again = pickle.loads(pickle.dumps(cache))
    assert again["small"]["jobs"][:50] == cache["small"]["jobs"][:50]
    assert len(cache["10k"]["workload"].nodes) == 10_000


CLASSES = (
    selection.SelectNode, selection.SelectNodesBatch, selection.Agreement, selection.SelectionBatches,
    registry.UpdateNodeHeartbeat, registry.UpdateNodeHeartbeatSubscribed, registry.UpdateNodeHeartbeats,
    registry.PublishSnapshot, registry.SetPhase3Config, registry.Memory, registry.SnapshotSize,
    selection.SelectNodeTail, selection.SelectNode100k, registry.SnapshotSize100k,
    registry.PublishDeltaOverFullRebuild,
)  # fmt: skip


def test_every_benchmark_class_runs_in_one_process():
    for cls in CLASSES:
        assert issubclass(cls, common.Base) and cls.processes == 1 and cls.timeout > 0


def _benchmarks(cls) -> list[str]:
    return sorted(n for n in dir(cls) if n.startswith(("time_", "track_", "peakmem_", "mem_")))


def test_every_figure_reads_lower_is_better_with_a_unit():
    """asv flags a rise as a regression: no figure may be a rate or a share of agreement."""
    for cls in CLASSES:
        for name in _benchmarks(cls):
            if name.startswith("track_"):
                unit = getattr(getattr(cls, name), "unit", None)
                assert unit in ("seconds", "ratio", "share", "bytes/node"), (cls, name, unit)
                assert not any(word in name for word in ("per_second", "speedup", "_agreement")), name


@pytest.mark.parametrize("path", common.PATHS)
def test_select_node_rounds_give_every_place_back(cache, path):
    bench = selection.SelectNode()
    bench.setup(cache, "small", path)
    reg = bench.steady.registry
    seconds = bench.track_select_node_seconds(cache, "small", path)
    assert 0 < seconds < 0.1  # per call, not per block
    assert reservations(reg) == 0
    bench.setup(cache, "small", path)  # what asv does before the next call
    assert bench.steady.registry is reg and reservations(reg) == 0


@pytest.mark.parametrize("path", common.PATHS)
def test_batch_rounds_give_every_place_back(cache, path):
    bench = selection.SelectNodesBatch()
    bench.setup(cache, "small", path)
    assert 0 < bench.track_batch_seconds_per_decision(cache, "small", path) < 0.01
    assert reservations(bench.steady.registry) == 0
    placed = [s for s in bench.steady.registry.select_nodes_batch(bench.jobs[:50]) if s.ok]
    assert placed and {s.path for s in placed} == {path}


@pytest.mark.parametrize("path", common.PATHS)
def test_column_batches_and_two_threads_give_every_place_back(cache, path):
    bench = selection.SelectionBatches()
    bench.setup(cache, "small", path)
    reg = bench.steady.registry
    counters = reg.metrics()["counters"]
    assert 0 < bench.track_columns_batch_seconds_per_decision(cache, "small", path) < 0.01
    assert reservations(reg) == 0
    assert 0 < bench.track_two_threads_over_one_time(cache, "small", path) < 100
    assert reservations(reg) == 0
    after = reg.metrics()["counters"]
    placed = after["selections"] - after["selections_failed"] - (counters["selections"] - counters["selections_failed"])
    assert placed > 0 and after["releases"] - counters["releases"] == placed  # every place given back by token
    assert {s.path for s in reg.select_nodes_batch(bench.columns[:20]) if s.ok} == {path}


@pytest.mark.parametrize("workload", common.WORKLOADS)
def test_fast_and_legacy_agree_on_the_whole_stream(cache, workload):
    bench = selection.Agreement()
    bench.setup(cache, workload)
    assert bench.track_fast_legacy_disagreement(cache, workload) == 0.0
    assert bench.fast.metrics()["counters"].get("commits", 0) > 0


def test_fast_over_legacy_time_is_a_ratio_below_one(cache):
    bench = selection.Agreement()
    bench.setup(cache, "small")
    assert 0 < bench.track_fast_over_legacy_time(cache, "small") < 1


@pytest.mark.parametrize(
    "cls", [registry.UpdateNodeHeartbeat, registry.UpdateNodeHeartbeatSubscribed, registry.UpdateNodeHeartbeats]
)
@pytest.mark.parametrize("path", common.PATHS)
def test_heartbeats_leave_the_state_alone(cache, path, cls):
    bench = cls()
    bench.setup(cache, "small", path)
    reg = bench.steady.registry
    before = [reg.get_node(node_id) for node_id in reg.node_ids()]
    assert 0 < bench.track_heartbeat_seconds(cache, "small", path) < 0.01  # per beat
    assert len(bench.beats) == registry.HEARTBEAT_BLOCK
    after = [reg.get_node(node_id) for node_id in reg.node_ids()]
    assert [(v.status, v.running_jobs, v.cpu_usage) for v in after] == [
        (v.status, v.running_jobs, v.cpu_usage) for v in before
    ]


@pytest.mark.hotpath
@pytest.mark.parametrize("path", common.PATHS)
def test_the_heartbeat_benchmarks_measure_the_compiled_and_the_python_beat(cache, path):
    """``UpdateNodeHeartbeat`` times the one-call beat of steady nodes;
    ``UpdateNodeHeartbeatSubscribed`` (a listener, subscribed once however
    often asv calls setup) the Python path."""
    compiled, python = registry.UpdateNodeHeartbeat(), registry.UpdateNodeHeartbeatSubscribed()
    for bench in (compiled, python, python):
        bench.setup(cache, "small", path)
        bench.track_heartbeat_seconds(cache, "small", path)
    assert compiled.steady.registry is not python.steady.registry
    assert len(python.steady.registry._listeners) == 1
    assert compiled.steady.registry._steady.applied >= 9 * registry.HEARTBEAT_BLOCK
    assert python.steady.registry._steady.applied == 0


class _OlderRegistry:
    """A registry of an older commit's API shape: no ``update_node_heartbeats``,
    and snapshots without ``bytes_per_node``."""

    def __init__(self, registry) -> None:
        self._registry = registry

    def __getattr__(self, name: str):
        if name == "update_node_heartbeats":
            raise AttributeError(name)
        if name == "snapshot":
            return lambda: _OlderSnapshot(self._registry.snapshot())
        return getattr(self._registry, name)


class _OlderSnapshot:
    def __init__(self, snap) -> None:
        self.version = snap.version


def test_on_an_older_api_shape_the_missing_benchmarks_skip_and_the_rest_run(cache, monkeypatch):
    """What asv does on a commit before an API existed: ``setup`` raises
    ``NotImplementedError`` (reported as skipped), never AttributeError (failed)."""
    real = common.build_registry
    monkeypatch.setattr(common, "build_registry", lambda *a, **kw: _OlderRegistry(real(*a, **kw)))
    monkeypatch.setattr(common.Steady, "_made", {})
    skipped, ran = [], []
    cases = [
        (registry.UpdateNodeHeartbeat, ("small", "legacy")),
        (registry.UpdateNodeHeartbeats, ("small", "legacy")),
        (registry.UpdateNodeHeartbeats, ("small", "fast")),
        (registry.SnapshotSize, ("small",)),
        (selection.SelectNode, ("small", "fast")),
    ]
    for cls, params in cases:
        bench = cls()
        try:
            bench.setup(cache, *params)
        except NotImplementedError as exc:
            skipped.append((cls.__name__, params, str(exc)))
            continue
        for name in _benchmarks(cls):
            getattr(bench, name)(cache, *params)
        ran.append(cls.__name__)
    assert [(name, why) for name, _, why in skipped] == [
        ("UpdateNodeHeartbeats", "this commit has no update_node_heartbeats"),
        ("UpdateNodeHeartbeats", "this commit has no update_node_heartbeats"),
        ("SnapshotSize", "this commit has no bytes_per_node"),
    ]
    assert ran == ["UpdateNodeHeartbeat", "SelectNode"]


def test_the_suite_imports_from_the_older_flat_layout(monkeypatch):
    """Commits before the layered tree kept the workloads at ``pyscheduler.workloads``."""
    import importlib

    from pyscheduler.tools import workloads

    monkeypatch.setitem(sys.modules, "pyscheduler.tools.workloads", None)  # ImportError
    monkeypatch.setitem(sys.modules, "pyscheduler.workloads", workloads)
    sys.path.insert(0, str(ROOT / "asv_benchmarks"))
    try:
        old_common = importlib.reload(common)
        assert old_common.make_workload is workloads.make_workload
    finally:
        sys.path.remove(str(ROOT / "asv_benchmarks"))
        monkeypatch.undo()
        importlib.reload(common)


def test_publish_registers_then_setup_removes(cache):
    bench = registry.PublishSnapshot()
    bench.setup(cache, "small")
    reg = bench.steady.registry
    nodes = len(reg.node_ids())
    first = bench.info.node_id
    version = reg.snapshot().version
    bench.time_publish_snapshot(cache, "small")
    assert len(reg.node_ids()) == nodes + 1 and reg.get_node(first).pool_ids
    assert reg.snapshot().version != version  # a new generation was published
    bench.setup(cache, "small")
    assert first not in reg.node_ids() and len(reg.node_ids()) == nodes
    assert bench.info.node_id != first  # the next call registers another id
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("path", common.PATHS)
def test_config_benchmark_alternates_two_configs(cache, path):
    bench = registry.SetPhase3Config()
    seen = []
    for _ in range(3):
        bench.setup(cache, "small", path)
        bench.time_set_phase3_config(cache, "small", path)
        reg = bench.steady.registry
        seen.append(reg.phase3_config.hash_seed)
        assert reservations(reg) <= 1
    assert seen[0] != seen[1] and seen[0] == seen[2]
    bench.setup(cache, "small", path)
    assert reservations(bench.steady.registry) == 0


def test_snapshot_size_and_memory(cache):
    size = registry.SnapshotSize()
    size.setup(cache, "small")
    assert 0 < size.track_snapshot_bytes_per_node(cache, "small") <= 200  # the budget
    memory = registry.Memory()
    memory.setup(cache, "fast")
    memory.peakmem_registry_10k(cache, "fast")


def test_select_node_tail_is_a_p99_per_call_and_gives_every_place_back(cache):
    bench = selection.SelectNodeTail()
    bench.setup(cache, "small")
    reg = bench.steady.registry
    p99 = bench.track_select_node_p99_seconds(cache, "small")
    assert 0 < p99 < 0.1  # one call, in seconds
    assert reservations(reg) == 0
    samples = [selection.select_percentile_seconds(reg, bench.jobs[:200], q) for q in (50, 99)]
    assert all(s > 0 for s in samples)


def test_percentile_is_the_nearest_rank_of_single_call_times(monkeypatch):
    class Timed:
        """select_node whose n-th call takes n clock ticks (a fake perf_counter_ns)."""

        def __init__(self):
            self.now = 0
            self.calls = 0

        def clock(self):
            return self.now

        def select_node(self, job):
            self.calls += 1
            self.now += self.calls  # the call's duration, in ns

            class Sel:
                reservation = None

            return Sel()

        def release(self, selection):  # pragma: no cover - nothing is reserved
            raise AssertionError

    for percent, want_ns in ((50, 50), (99, 99), (100, 100)):
        timed = Timed()
        with monkeypatch.context() as patch:
            patch.setattr(selection.time, "perf_counter_ns", timed.clock)
            got = selection.select_percentile_seconds(timed, range(100), percent)
        assert got == want_ns / 1e9, percent


def test_the_100k_benchmarks_have_their_own_cache_and_run_on_any_fleet(cache, monkeypatch):
    """The 100k classes never make the other benchmarks load the 100k fleet
    (their own ``setup_cache``); their code is checked here on the small fleet
    standing in for it (asv's smoke run in CI runs them on the real one)."""
    assert common.Base100k.setup_cache is not common.Base.setup_cache
    assert common.LARGE not in cache
    monkeypatch.setattr(common.Steady, "_made", {})
    stand_in = {common.LARGE: cache["small"]}
    bench = selection.SelectNode100k()
    bench.setup(stand_in)
    p50 = bench.track_select_node_p50_seconds(stand_in)
    p99 = bench.track_select_node_p99_seconds(stand_in)
    assert 0 < p50 <= p99 < 0.1
    assert reservations(bench.steady.registry) == 0
    size = registry.SnapshotSize100k()
    size.setup(stand_in)
    assert 0 < size.track_snapshot_bytes_per_node(stand_in) <= 200


def test_delta_publish_is_a_ratio_and_leaves_the_registry_as_it_was(cache):
    bench = registry.PublishDeltaOverFullRebuild()
    bench.setup(cache, "small")
    reg = bench.steady.registry
    nodes = reg.node_ids()
    deltas = reg.metrics()["counters"].get("snapshot_deltas", 0)
    assert 0 < bench.track_delta_over_full_rebuild(cache, "small") < 100
    assert reg.node_ids() == nodes and reg.verify_consistency() == []
    assert reg.metrics()["counters"]["snapshot_deltas"] >= deltas + 9  # the delta path was measured
