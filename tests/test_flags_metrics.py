"""Migration flags (docs/DESIGN.md §4) and the metrics containers behind ``NodeRegistry.metrics()``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import ConfigError, MigrationFlags
from pyscheduler.domain.hashing import fnv1a64
from pyscheduler.state.metrics import LATENCY_BUCKETS_S, Histogram, Metrics

FLAG_NAMES = [
    "use_management_registry",
    "use_runtime_snapshot",
    "use_lang_index",
    "use_session_runtime",
    "shadow_compare",
]

# --- MigrationFlags --------------------------------------------------------------------


def test_default_is_the_legacy_path():
    flags = MigrationFlags()
    assert all(getattr(flags, name) is False for name in FLAG_NAMES)
    assert flags.rollout_percent == 100
    assert not flags.any_on


def test_all_on_leaves_shadow_compare_off():
    flags = MigrationFlags.all_on()
    assert flags.use_management_registry and flags.use_runtime_snapshot
    assert flags.use_lang_index and flags.use_session_runtime
    assert flags.shadow_compare is False
    assert flags.rollout_percent == 100
    assert flags.any_on


@pytest.mark.parametrize("name", FLAG_NAMES[:4])
def test_any_on_sees_each_use_flag(name):
    assert MigrationFlags(**{name: True}).any_on


def test_shadow_compare_alone_is_not_any_on():
    assert not MigrationFlags(shadow_compare=True).any_on


@pytest.mark.parametrize("name", FLAG_NAMES)
@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_flags_must_be_bools(name, bad):
    with pytest.raises(ConfigError) as info:
        MigrationFlags(**{name: bad})
    assert f"MigrationFlags.{name}" in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [-1, 101, 50.0, "50", True, None])
def test_rollout_percent_range(bad):
    with pytest.raises(ConfigError) as info:
        MigrationFlags(rollout_percent=bad)
    assert "MigrationFlags.rollout_percent" in str(info.value) and repr(bad) in str(info.value)


def test_flags_dict_round_trip_and_unknown_flags():
    flags = MigrationFlags(use_lang_index=True, shadow_compare=True, rollout_percent=25)
    assert MigrationFlags.from_dict(flags.to_dict()) == flags
    assert set(flags.to_dict()) == {*FLAG_NAMES, "rollout_percent"}
    with pytest.raises(ConfigError, match="use_fast_path"):
        MigrationFlags.from_dict({"use_fast_path": True})


def test_flags_are_immutable():
    with pytest.raises(AttributeError):
        MigrationFlags().use_lang_index = True  # type: ignore[misc]


KEYS = [f"session-{i}" for i in range(5000)]


def test_in_rollout_edges():
    assert all(MigrationFlags(rollout_percent=100).in_rollout(k) for k in KEYS[:200])
    assert not any(MigrationFlags(rollout_percent=0).in_rollout(k) for k in KEYS[:200])
    assert MigrationFlags(rollout_percent=100).in_rollout("")


def test_in_rollout_is_fnv1a_of_the_utf8_key_mod_100():
    flags = MigrationFlags(rollout_percent=37)
    for key in ["", "a", "session-1", "会话-7"]:
        assert flags.in_rollout(key) == (fnv1a64(key.encode("utf-8")) % 100 < 37)


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_in_rollout_is_roughly_proportional(percent):
    flags = MigrationFlags(rollout_percent=percent)
    share = sum(flags.in_rollout(k) for k in KEYS) / len(KEYS)
    # 5000 keys: a binomial share's standard deviation is at most 0.7 %
    assert abs(share - percent / 100) < 0.03


@given(st.text(max_size=30), st.integers(0, 100), st.integers(0, 100))
def test_in_rollout_is_stable_and_monotonic(key, p, q):
    low, high = sorted((p, q))
    a = MigrationFlags(rollout_percent=low)
    assert (
        a.in_rollout(key)
        == a.in_rollout(key)
        == MigrationFlags(rollout_percent=low).in_rollout(key)
    )
    if a.in_rollout(key):  # raising the share never drops a key already rolled out
        assert MigrationFlags(rollout_percent=high).in_rollout(key)


# --- Histogram ----------------------------------------------------------------------------

BOUNDS = (1.0, 2.0, 5.0, 10.0)


def test_histogram_empty():
    h = Histogram(BOUNDS)
    assert h.count == 0 and h.sum == 0.0 and h.max == 0.0
    assert h.quantile(0.5) == 0.0 and h.quantile(0.99) == 0.0
    d = h.to_dict()
    assert d["count"] == 0 and d["p50"] == 0.0 and d["p99"] == 0.0
    assert d["buckets"] == {"1": 0, "2": 0, "5": 0, "10": 0, "+Inf": 0}


def test_histogram_buckets_are_le_upper_bounds():
    h = Histogram(BOUNDS)
    for v in [0.0, 1.0, 1.0000001, 2.0, 4.9, 5.0, 10.0, 10.5, 1000.0]:
        h.observe(v)
    assert h.counts == [2, 2, 2, 1, 2]
    assert h.to_dict()["buckets"] == {"1": 2, "2": 2, "5": 2, "10": 1, "+Inf": 2}
    assert h.count == 9
    assert h.max == 1000.0
    assert math.isclose(h.sum, 0 + 1 + 1.0000001 + 2 + 4.9 + 5 + 10 + 10.5 + 1000)


def test_histogram_quantiles():
    h = Histogram(BOUNDS)
    for v in [0.5] * 50 + [1.5] * 40 + [7.0] * 9 + [50.0]:
        h.observe(v)
    assert h.quantile(0.0) == 1.0
    assert h.quantile(0.5) == 1.0
    assert h.quantile(0.51) == 2.0
    assert h.quantile(0.9) == 2.0
    assert h.quantile(0.95) == 10.0
    assert h.quantile(0.99) == 10.0
    assert h.quantile(1.0) == 50.0  # overflow bucket: the largest value seen
    d = h.to_dict()
    assert (d["p50"], d["p99"]) == (1.0, 10.0)


@given(
    st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=60),
    st.floats(min_value=0, max_value=1),
)
def test_histogram_quantile_is_the_bucket_of_the_rank_value(values, q):
    h = Histogram(BOUNDS)
    for v in values:
        h.observe(v)
    ordered = sorted(values)
    rank_value = ordered[max(1, math.ceil(q * len(values))) - 1]
    expected = next((b for b in BOUNDS if rank_value <= b), max(values))
    got = h.quantile(q)
    assert got == expected
    assert got >= rank_value
    assert sum(h.counts) == h.count == len(values)
    assert h.max == max(values)


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=30))
def test_histogram_quantile_is_monotonic(values):
    h = Histogram(BOUNDS)
    for v in values:
        h.observe(v)
    qs = [h.quantile(q / 20) for q in range(21)]
    assert qs == sorted(qs)


def test_default_latency_buckets():
    assert list(LATENCY_BUCKETS_S) == sorted(set(LATENCY_BUCKETS_S))
    assert math.isclose(LATENCY_BUCKETS_S[0], 1e-6)
    assert math.isclose(LATENCY_BUCKETS_S[-1], 5.0)
    h = Histogram()
    h.observe(3e-6)
    h.observe(0.7)
    h.observe(60.0)
    buckets = h.to_dict()["buckets"]
    assert buckets["5e-06"] == 1 and buckets["1"] == 1 and buckets["+Inf"] == 1
    assert len(buckets) == len(LATENCY_BUCKETS_S) + 1


def test_default_latency_bucket_bounds_are_exact_decimals():
    assert all(b == float(f"{b:g}") for b in LATENCY_BUCKETS_S)
    h = Histogram()
    h.observe(5e-6)
    assert h.to_dict()["buckets"]["5e-06"] == 1


# --- Metrics -----------------------------------------------------------------------------


def test_metrics_counters_and_histograms():
    m = Metrics()
    m.inc("select.ok")
    m.inc("select.ok", 4)
    m.inc("heartbeat")
    m.observe("select.latency", 2e-6)
    m.observe("select.latency", 3e-3)
    m.observe("lock.wait", 0.0)
    snap = m.snapshot()
    assert snap["counters"] == {"heartbeat": 1, "select.ok": 5}
    assert list(snap["counters"]) == ["heartbeat", "select.ok"]
    assert list(snap["histograms"]) == ["lock.wait", "select.latency"]
    lat = snap["histograms"]["select.latency"]
    assert lat["count"] == 2 and lat["max"] == 3e-3
    assert math.isclose(lat["sum"], 2e-6 + 3e-3)
    assert set(lat) == {"count", "sum", "max", "p50", "p99", "buckets"}


def test_metrics_snapshot_is_a_copy():
    m = Metrics()
    m.inc("a")
    m.observe("h", 1e-3)
    snap = m.snapshot()
    m.inc("a")
    m.inc("b")
    m.observe("h", 1.0)
    assert snap["counters"] == {"a": 1}
    assert snap["histograms"]["h"]["count"] == 1
    snap["counters"]["a"] = 99
    assert m.snapshot()["counters"]["a"] == 2


def test_empty_metrics_snapshot():
    assert Metrics().snapshot() == {"counters": {}, "histograms": {}}
