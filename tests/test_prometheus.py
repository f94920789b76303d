"""The Prometheus export: every series from the start, values that match
``metrics()``, and a scrape of the example dispatcher's ``/metrics`` over HTTP."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("prometheus_client")  # the `metrics` extra (installed by `dev`)

from helpers import beat, node_info  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_example_dispatcher import DEADLINE_S, _node, _registry, ex, run  # noqa: E402

from pyscheduler import JobRequest, NodeStatus, Reason  # noqa: E402
from pyscheduler.tools.prometheus import LOCKS, RegistryCollector, register_collector  # noqa: E402

ENGINES = [
    pytest.param("legacy", id="legacy"),
    pytest.param("fast", id="fast", marks=pytest.mark.hotpath),
]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _scrape(registry) -> dict:
    prom = CollectorRegistry()
    register_collector(registry, prom)
    return _samples(generate_latest(prom).decode())


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_series_exists_at_zero_before_any_traffic(engine):
    samples = _scrape(_registry(engine))
    for path in ("fast", "legacy"):
        for result in ("ok", "failed"):
            assert _value(samples, "pyscheduler_selections_total", path=path, result=result) == 0
        assert _value(samples, "pyscheduler_select_seconds_count", path=path) == 0
    for reason in Reason:
        assert _value(samples, "pyscheduler_selection_failures_total", reason=reason.value) == 0
    for lock in LOCKS:
        assert ("pyscheduler_lock_wait_seconds_count", (("lock", lock),)) in samples
        assert ("pyscheduler_lock_hold_seconds_count", (("lock", lock),)) in samples
    for status in NodeStatus:
        assert _value(samples, "pyscheduler_nodes", status=status.value) == 0
    for name in ("commits", "releases", "heartbeats", "shadow_compared", "shadow_mismatched"):
        assert _value(samples, f"pyscheduler_{name}_total") == 0
    assert _value(samples, "pyscheduler_path", path=engine) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_series_follow_metrics_after_traffic(engine):
    registry = _registry(engine)
    for k in range(3):
        registry.register_node_with_policy(node_info(f"n{k}", ("en", "zh"), max_concurrent_jobs=1))
        registry.update_node_heartbeat(f"n{k}", beat())
    selections = [registry.select_node(JobRequest("zh", "en", session_id=f"s{k}")) for k in range(5)]
    assert [s.ok for s in selections] == [True, True, True, False, False]
    registry.commit(selections[0])
    registry.release(selections[1])

    samples = _scrape(registry)
    other = "legacy" if engine == "fast" else "fast"
    assert _value(samples, "pyscheduler_selections_total", path=engine, result="ok") == 3
    assert _value(samples, "pyscheduler_selections_total", path=engine, result="failed") == 2
    assert _value(samples, "pyscheduler_selections_total", path=other, result="ok") == 0
    reason = Reason.CAPACITY_EXCEEDED.value
    assert _value(samples, "pyscheduler_selection_failures_total", reason=reason) == 2
    assert _value(samples, "pyscheduler_commits_total") == 1
    assert _value(samples, "pyscheduler_releases_total") == 1
    assert _value(samples, "pyscheduler_reservations") == 1
    assert _value(samples, "pyscheduler_nodes", status="ready") == 3
    assert _value(samples, "pyscheduler_heartbeats_total") == 3
    timed = _value(samples, "pyscheduler_select_seconds_count", path=engine)
    assert timed == (5 if engine == "legacy" else 1)  # the fast path times 1 call in 64
    assert _value(samples, "pyscheduler_select_seconds_bucket", path=engine, le="+Inf") == timed


def test_histogram_buckets_are_cumulative_and_match_metrics():
    registry = _registry("legacy")
    for k in range(4):
        registry.select_node(JobRequest("zh", "en", session_id=f"s{k}"))
    hist = registry.metrics()["histograms"]["registry_lock_hold_s"]
    family = next(
        f for f in RegistryCollector(registry).collect() if f.name == "pyscheduler_lock_hold_seconds"
    )
    buckets = [s for s in family.samples if s.name.endswith("_bucket") and s.labels["lock"] == "registry"]
    values = [s.value for s in buckets]
    assert values == sorted(values)  # cumulative
    assert buckets[-1].labels["le"] == "+Inf" and values[-1] >= hist["count"]
    bounds = [float(s.labels["le"]) for s in buckets[:-1]]
    assert bounds == sorted(bounds) and len(bounds) == len(hist["buckets"]) - 1


def test_metrics_gauges_say_what_the_path_does_not_keep():
    gauges = _registry("legacy").metrics()["gauges"]
    assert gauges["snapshot_version"] is None  # no snapshot is built on the legacy path
    assert gauges["management_in_sync"] is None
    assert gauges["sessions"] is None
    assert gauges["path"] == "legacy"
    assert gauges["nodes_by_status"] == {s.value: 0 for s in NodeStatus}


@pytest.mark.hotpath
def test_metrics_gauges_on_the_fast_path():
    registry = _registry("fast")
    registry.select_node(JobRequest("zh", "en", session_id="call-1"))
    gauges = registry.metrics()["gauges"]
    assert gauges["snapshot_version"] == registry.snapshot().version
    assert gauges["management_in_sync"] is True
    assert gauges["sessions"] == 1
    assert gauges["path"] == "fast"


def test_collector_refuses_what_is_not_a_registry():
    with pytest.raises(TypeError, match="NodeRegistry"):
        RegistryCollector(object())  # type: ignore[arg-type]


async def _http_get(host: str, port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), DEADLINE_S)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


@pytest.mark.parametrize("engine", ENGINES)
def test_example_dispatcher_serves_metrics_over_http(engine):
    registry = _registry(engine)

    async def scenario() -> tuple[str, str, str]:
        async with ex.Dispatcher(registry, metrics_port=0) as dispatcher:
            assert dispatcher.metrics_port > 0
            fleet = [_node("gpu-a", ["en", "zh"], 2), _node("gpu-b", ["en", "zh"], 1)]
            client = None
            try:
                for node in fleet:
                    await node.connect(dispatcher.host, dispatcher.port)
                await asyncio.wait_for(asyncio.gather(*(n.ready.wait() for n in fleet)), DEADLINE_S)
                client = await ex.Client().connect(dispatcher.host, dispatcher.port)
                for k in range(5):  # three places: three placed, two capacity_exceeded
                    await client.submit("zh", "en", session=f"s{k}")
                status, body = await _http_get(dispatcher.host, dispatcher.metrics_port, "/metrics")
                missing, _ = await _http_get(dispatcher.host, dispatcher.metrics_port, "/other")
            finally:
                if client is not None:
                    await client.close()
                for node in fleet:
                    await node.close()
        return status, body, missing

    status, body, missing = run(scenario())
    assert status == "HTTP/1.1 200 OK" and missing == "HTTP/1.1 404 Not Found"
    samples = _samples(body)
    assert _value(samples, "pyscheduler_selections_total", path=engine, result="ok") == 3
    assert _value(samples, "pyscheduler_selections_total", path=engine, result="failed") == 2
    assert _value(samples, "pyscheduler_selection_failures_total", reason="capacity_exceeded") == 2
    assert _value(samples, "pyscheduler_commits_total") == 3
    assert _value(samples, "pyscheduler_select_seconds_count", path=engine) > 0
    assert _value(samples, "pyscheduler_select_seconds_sum", path=engine) > 0
    assert _value(samples, "pyscheduler_lock_hold_seconds_count", lock="registry") > 0
    assert _value(samples, "pyscheduler_lock_hold_seconds_sum", lock="registry") > 0
    assert _value(samples, "pyscheduler_nodes", status="ready") == 2
