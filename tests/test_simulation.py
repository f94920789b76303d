"""The simulation engine: reproducible decisions, consistent bookkeeping, the report."""

from __future__ import annotations

import json

import pytest
from helpers import decisions

from pyscheduler import MigrationFlags, Reason
from pyscheduler.tools.simulation import SimulationReport, VirtualClock, simulate
from pyscheduler.tools.workloads import make_workload


@pytest.fixture(scope="module")
def report() -> SimulationReport:
    return simulate("small", 1500, seed=4)


def test_same_seed_makes_the_same_decisions(report):
    assert decisions(simulate("small", 1500, seed=4)) == decisions(report)


def test_different_seed_makes_other_decisions(report):
    assert decisions(simulate("small", 1500, seed=5)) != decisions(report)


def test_report_bookkeeping_adds_up(report):
    assert report.jobs == 1500
    assert 0 < report.successes <= 1500
    assert report.success_rate == report.successes / 1500
    assert sum(report.rejections.values()) == report.failures
    assert all(isinstance(r, Reason) for r in report.rejections)
    assert sum(p.placed for p in report.pool_usage) == report.successes
    assert report.path in ("legacy", "fast")
    lat = report.latency_us
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report.select_time_s <= report.wall_time_s
    assert report.decisions_per_s == pytest.approx(report.jobs / report.select_time_s)
    assert report.simulated_time_s == pytest.approx(1500 * report.job_interval_s)
    for pool in report.pool_usage:
        assert 0 <= pool.in_use <= pool.capacity
        assert 0.0 <= pool.utilization <= 1.0


def test_heartbeats_and_sweeps_run_in_simulated_time(report):
    wl = make_workload("small", 4)
    interval = wl.phase3.heartbeat_interval_s
    # every node beats once per interval (from a random phase)
    expected = len(wl.nodes) * report.simulated_time_s / interval
    assert abs(report.heartbeats - expected) <= len(wl.nodes)
    assert report.sweeps == int(report.simulated_time_s // 5.0)
    # the never-ready nodes (a core service down) go DEGRADED at the first sweep after warm-up
    assert report.simulated_time_s > wl.phase3.warmup_s
    assert report.nodes_marked_by_sweep >= 1


def test_without_heartbeats_the_fleet_fills_up():
    quiet = simulate("small", 1500, seed=4, heartbeats=False)
    assert quiet.heartbeats == 0
    # nobody reports finished jobs, so the registry only sees capacity being used up
    assert (
        quiet.rejections.get(Reason.CAPACITY_EXCEEDED, 0)
        + quiet.rejections.get(Reason.HEARTBEAT_STALE, 0)
        > 0
    )
    assert quiet.successes < simulate("small", 1500, seed=4).successes


def test_to_dict_is_json(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["jobs"] == 1500
    assert data["rejections"] == {r.value: n for r, n in report.rejections.items()}
    assert len(data["pool_usage"]) == len(report.pool_usage)


def test_accepts_a_workload_object():
    wl = make_workload("small", 2)
    assert decisions(simulate(wl, 200, seed=2)) == decisions(simulate("small", 200, seed=2))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jobs": 0},
        {"jobs": 1.5},
        {"jobs": 10, "job_interval_s": 0.0},
        {"jobs": 10, "job_duration_s": (5.0, 1.0)},
        {"jobs": 10, "sweep_interval_s": 0},
        {"jobs": 10, "workload": "1m"},
    ],
)
def test_bad_options_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        simulate(**kwargs)


def test_virtual_clock_moves_only_forward():
    clock = VirtualClock(2.0)
    assert clock() == 2.0
    assert clock.advance(0.5) == 2.5 and clock() == 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.mark.hotpath
def test_fast_path_makes_the_same_decisions_as_legacy(report):
    fast = simulate("small", 1500, seed=4, flags=MigrationFlags.all_on())
    assert fast.path == "fast"
    assert decisions(fast) == decisions(report)
