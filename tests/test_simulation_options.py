"""What ``simulate`` shows of its work: engines, node failures, heartbeat rate,
sessions, the timeline, the latency samples and the plot."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from helpers import decisions

from pyscheduler import MigrationFlags, Reason, _compat
from pyscheduler.tools.simulation import (
    ENGINES,
    PlotUnavailable,
    check_plotting,
    engine_flags,
    plot_report,
    simulate,
)
from pyscheduler.tools.workloads import make_workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# what simulate() runs without engine or flags: the registry default
DEFAULT_ENGINE = "fast" if _compat.HAVE_HOTPATH else "legacy"

@pytest.fixture(scope="module")
def plain():
    return simulate("small", 2000, seed=4)


@pytest.fixture(scope="module")
def failing():
    return simulate("small", 4000, seed=4, fail_rate=0.3)


def test_engine_names_map_to_flags():
    assert ENGINES == ("legacy", "fast", "shadow", "shadow-fast")
    legacy = engine_flags("legacy")
    assert not legacy.any_on and not legacy.shadow_compare
    assert engine_flags("fast") == MigrationFlags.all_on()
    shadow = engine_flags("shadow")  # serves legacy, computes fast beside it
    assert shadow.shadow_compare and not shadow.any_on
    shadow_fast = engine_flags("shadow-fast")  # serves fast, computes legacy beside it
    assert shadow_fast.shadow_compare and shadow_fast.use_runtime_snapshot
    with pytest.raises(ValueError, match="unknown engine"):
        engine_flags("turbo")
    with pytest.raises(ValueError, match="not both"):
        simulate("small", 10, engine="fast", flags=MigrationFlags())


def test_defaults_draw_exactly_as_explicit_values(plain):
    wl = make_workload("small", 4)
    explicit = simulate(
        "small", 2000, seed=4, heartbeat_interval_s=float(wl.phase3.heartbeat_interval_s),
        sessions=wl.sessions, fail_rate=0.0, engine="legacy",
    )  # fmt: skip
    assert decisions(explicit) == decisions(plain)
    assert plain.engine == DEFAULT_ENGINE and plain.sessions == wl.sessions
    assert plain.failures_injected.nodes == 0 and plain.shadow_compared is None


def test_heartbeat_interval_sets_the_rate(plain):
    fast_beats = simulate("small", 2000, seed=4, heartbeat_interval_s=3.0)
    assert fast_beats.heartbeat_interval_s == 3.0
    expected = 100 * fast_beats.simulated_time_s / 3.0
    assert abs(fast_beats.heartbeats - expected) <= 100
    assert fast_beats.heartbeats > 4 * plain.heartbeats


def test_heartbeats_slower_than_the_timeout_make_nodes_stale():
    slow = simulate("small", 3000, seed=4, heartbeat_interval_s=120.0)
    # the config's timeout (45 s) is unchanged: nodes go stale between beats
    assert (
        slow.rejections.get(Reason.HEARTBEAT_STALE, 0) + slow.rejections.get(Reason.OFFLINE, 0) > 0
    )
    assert slow.nodes_marked_by_sweep > 0


def test_sessions_bound_the_pairs_asked_for(plain):
    one = simulate("small", 2000, seed=4, sessions=1)
    assert one.sessions == 1
    pools_used = {p.pool_id for p in one.pool_usage if p.placed}
    assert len(pools_used) < len({p.pool_id for p in plain.pool_usage if p.placed})
    # one session asks for one pair: every placement or every rejection shares it
    assert one.successes in (0, 2000) or len(one.rejections) <= 2


def test_failures_take_nodes_down(failing):
    failed = failing.failures_injected
    assert failed.nodes == 30 and failed.silent + failed.disconnected == 30
    assert failed.silent > 0 and failed.disconnected > 0
    tl = failing.timeline
    assert tl.nodes_up[0] <= 100 and tl.nodes_up[-1] == 70
    assert np.all(np.diff(tl.nodes_up) <= 0)  # nodes fail and stay down
    assert tl.capacity_up[-1] < tl.capacity_up[0]
    # disconnected nodes left every pool; silent ones were found by the sweep
    members = sum(p.members for p in failing.pool_usage)
    healthy = simulate("small", 4000, seed=4)
    assert members < sum(p.members for p in healthy.pool_usage)
    assert failing.nodes_marked_by_sweep >= failed.silent


def test_failures_are_reproducible(failing):
    again = simulate("small", 4000, seed=4, fail_rate=0.3)
    assert decisions(again) == decisions(failing)
    assert again.failures_injected == failing.failures_injected


def test_every_node_failing_leaves_nothing_to_place():
    dead = simulate("small", 4000, seed=4, fail_rate=1.0)
    assert dead.failures_injected.nodes == 100
    assert dead.timeline.nodes_up[-1] == 0 and dead.timeline.fleet_in_use[-1] == 0
    assert dead.timeline.placed[-1] == 0  # nothing placeable at the end of the run


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_fail_rate_is_a_share(bad):
    with pytest.raises(ValueError, match="fail_rate"):
        simulate("small", 10, fail_rate=bad)


@pytest.mark.parametrize(
    "kwargs", [{"heartbeat_interval_s": 0.0}, {"sessions": 0}, {"sessions": 2.5}]
)
def test_bad_new_options_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        simulate("small", 10, **kwargs)


def test_timeline_adds_up(plain):
    tl = plain.timeline
    assert 1 < len(tl) <= 200
    assert int(tl.placed.sum()) == plain.successes
    assert int(tl.placed.sum() + tl.not_placed.sum()) == plain.jobs
    assert np.all(np.diff(tl.t) > 0) and tl.t[-1] == pytest.approx(plain.simulated_time_s)
    assert tl.pool_in_use.shape == (len(tl), len(tl.pool_ids))
    # the last sample is the end of the run: it agrees with the pool table
    last = dict(zip(tl.pool_ids, tl.pool_in_use[-1]))
    for usage in plain.pool_usage:
        assert last[usage.pool_id] == usage.in_use
        assert tl.pool_capacity[tl.pool_ids.index(usage.pool_id)] == usage.capacity
    util = tl.pool_utilization()
    assert np.all((util >= 0) & (util <= 1))


def test_latency_samples_match_the_percentiles(plain):
    lat = plain.latencies_ns
    assert lat.shape == (plain.jobs,) and np.all(lat > 0)
    assert plain.latency_us["p50"] == pytest.approx(np.percentile(lat, 50) / 1000)
    assert plain.select_time_s == pytest.approx(lat.sum() / 1e9)


def test_to_dict_carries_the_new_figures(failing):
    data = json.loads(json.dumps(failing.to_dict()))
    assert data["engine"] == DEFAULT_ENGINE and data["fail_rate"] == 0.3
    assert data["failures_injected"]["nodes"] == 30
    assert data["shadow"] is None
    timeline = data["timeline"]
    assert len(timeline["t"]) == len(failing.timeline)
    assert sum(timeline["placed"]) == failing.successes
    assert set(timeline["pool_utilization"]) == {str(p.pool_id) for p in failing.busiest_pools(10)}


@pytest.mark.hotpath
def test_shadow_engine_counts_no_mismatch(plain):
    for engine, served in (("shadow", "legacy"), ("shadow-fast", "fast")):
        shadow = simulate("small", 2000, seed=4, engine=engine)
        assert shadow.engine == engine and shadow.path == served
        assert shadow.serves.startswith(f"serves {served}, computes ")
        assert shadow.shadow_compared == 2000 and shadow.shadow_mismatches == 0
        assert decisions(shadow) == decisions(plain)
        assert shadow.to_dict()["shadow"] == {"compared": 2000, "mismatches": 0}


@pytest.mark.hotpath
def test_fast_engine_with_failures_decides_as_legacy(failing):
    fast = simulate("small", 4000, seed=4, fail_rate=0.3, engine="fast")
    assert fast.engine == "fast" and fast.path == "fast"
    assert decisions(fast) == decisions(failing)


def test_plot_writes_a_png(tmp_path, failing):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sim.png"
    plot_report(failing, str(out))
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path, plain):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(PlotUnavailable, match=r"pip install 'pyscheduler\[plot\]'"):
        check_plotting()
    with pytest.raises(PlotUnavailable):
        plot_report(plain, str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_a_single_level_run_has_one_candidate_set():
    from dataclasses import replace

    wl = make_workload("small", 4)
    flat = replace(wl, phase3=replace(wl.phase3, pools=(), tenant_overrides={}))
    report = simulate(flat, 500, seed=4)
    assert report.timeline.pool_ids == (None,)
    assert report.pool_usage[-1].pool_id is None
    assert report.timeline.pool_in_use[-1][0] == report.pool_usage[-1].in_use


def test_one_engine_map_for_one_process_and_several_instances():
    from pyscheduler import _compat
    from pyscheduler.tools import cluster_sim
    from pyscheduler.tools.engines import default_engine, describe_engine

    for name in ENGINES:
        assert cluster_sim._flags(name) == engine_flags(name)
        assert describe_engine(name).startswith("serves ")
    assert default_engine() == ("fast" if _compat.HAVE_HOTPATH else "legacy")
    assert cluster_sim._flags(None) == engine_flags(default_engine())
    with pytest.raises(ValueError, match="unknown engine"):
        describe_engine("turbo")
