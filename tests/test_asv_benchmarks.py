"""The asv suite (asv_benchmarks/benchmarks) run in-process, once, the way asv
calls it: ``setup_cache`` once, then ``setup`` before every call of a benchmark.

This checks what asv cannot: that a benchmark leaves the registry as it found
it (so every timed call measures the same thing) and that the fast and legacy
paths agree on the whole fixed job stream (``track_fast_legacy_agreement`` must
be 1.0). Timing figures are not asserted.
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


def test_every_benchmark_class_runs_in_one_process():
    for cls in (
        selection.SelectNode, selection.SelectNodesBatch, selection.DecisionRate,
        selection.Agreement, registry.UpdateNodeHeartbeat, registry.PublishSnapshot,
        registry.SetPhase3Config, registry.Memory, registry.SnapshotSize,
    ):  # fmt: skip
        assert issubclass(cls, common.Base) and cls.processes == 1 and cls.timeout > 0


@pytest.mark.parametrize("path", common.PATHS)
@pytest.mark.parametrize(
    "cls, method",
    [
        (selection.SelectNode, "time_select_node"),
        (selection.SelectNodesBatch, "time_select_nodes_batch"),
    ],
)
def test_selection_benchmarks_give_every_place_back(cache, cls, method, path):
    bench = cls()
    bench.setup(cache, "small", path)
    reg = bench.steady.registry
    assert reservations(reg) == 0
    getattr(bench, method)(cache, "small", path)
    placed = [s for s in bench.steady.pending if s.ok]
    assert placed and {s.path for s in placed} == {path}
    assert reservations(reg) == len(placed)
    bench.setup(cache, "small", path)  # what asv does before the next call
    assert bench.steady.registry is reg and reservations(reg) == 0


@pytest.mark.parametrize("workload", common.WORKLOADS)
def test_fast_and_legacy_agree_on_the_whole_stream(cache, workload):
    bench = selection.Agreement()
    bench.setup(cache, workload)
    assert bench.track_fast_legacy_agreement(cache, workload) == 1.0
    assert bench.fast.metrics()["counters"].get("commits", 0) > 0


def test_speedup_and_rate_are_positive(cache):
    bench = selection.Agreement()
    bench.setup(cache, "small")
    assert bench.track_fast_legacy_speedup(cache, "small") > 0
    rate = selection.DecisionRate()
    rate.setup(cache, "small", "fast")
    assert rate.track_decisions_per_second(cache, "small", "fast") > 0
    assert reservations(rate.steady.registry) == 0


@pytest.mark.parametrize("path", common.PATHS)
def test_heartbeats_leave_the_state_alone(cache, path):
    bench = registry.UpdateNodeHeartbeat()
    bench.setup(cache, "small", path)
    reg = bench.steady.registry
    before = [reg.get_node(node_id) for node_id in reg.node_ids()]
    bench.time_update_node_heartbeat(cache, "small", path)
    assert len(bench.beats) == registry.HEARTBEAT_BLOCK
    after = [reg.get_node(node_id) for node_id in reg.node_ids()]
    assert [(v.status, v.running_jobs, v.cpu_usage) for v in after] == [
        (v.status, v.running_jobs, v.cpu_usage) for v in before
    ]


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
    assert 0 < size.track_snapshot_bytes_per_node(cache, "small") <= 300  # DESIGN §8
    memory = registry.Memory()
    memory.setup(cache, "fast")
    memory.peakmem_registry_10k(cache, "fast")
