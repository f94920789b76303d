"""Prometheus export of ``NodeRegistry.metrics()``.

:class:`RegistryCollector` is a ``prometheus_client`` custom collector: each
scrape calls ``registry.metrics()`` once and turns the dict into metric
families with conventional names (``pyscheduler_*``, ``_total`` counters,
``_seconds`` histograms) and labels. Every series exists from the first
scrape: counters that were never incremented are exported as 0, and every
known reason, node status and lock has its series. ``docs/OPERATIONS.md``
lists every series and the ``metrics()`` key it comes from.

Usage (the ``metrics`` extra installs ``prometheus-client``)::

    from prometheus_client import start_http_server
    from pyscheduler.tools.prometheus import register_collector

    register_collector(registry)          # into prometheus_client.REGISTRY
    start_http_server(9108, addr="127.0.0.1")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..domain.model import NodeStatus, Reason
from ..registry.node_registry import NodeRegistry
from ..state.metrics import LATENCY_BUCKETS_S

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "pyscheduler.tools.prometheus needs prometheus-client: pip install 'pyscheduler[metrics]'"
    ) from exc

__all__ = ["LOCKS", "RegistryCollector", "register_collector"]

#: The instrumented locks whose wait / hold histograms are always exported.
LOCKS: tuple[str, ...] = ("registry", "management")

#: Plain counters: ``metrics()`` counter name -> (series name, help).
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("heartbeats", "heartbeats", "Heartbeats applied."),
    ("registrations", "registrations", "Node registrations accepted."),
    ("commits", "commits", "Reservations committed (the node took the job)."),
    ("releases", "releases", "Reservations released (the job did not run)."),
    ("reservations_expired", "reservations_expired", "Reservations dropped by sweep after their TTL."),
    ("config_changes", "config_changes", "Phase3 config replacements."),
    ("snapshots_built", "snapshots_built", "Runtime snapshot generations built."),
    ("shadow_compared", "shadow_compared", "Decisions computed on both paths in shadow mode."),
    ("shadow_mismatch", "shadow_mismatched", "Shadow-mode decisions where the two paths differed."),
    ("shadow_skipped", "shadow_skipped", "Shadow comparisons skipped: the loads moved in between."),
)

_PREFIX = "pyscheduler"


class RegistryCollector(Collector):
    """Exports one ``NodeRegistry``'s ``metrics()`` to Prometheus on every scrape."""

    def __init__(self, registry: NodeRegistry) -> None:
        if not isinstance(registry, NodeRegistry):
            raise TypeError(f"registry must be a NodeRegistry, got {registry!r}")
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        """The metric families of one ``metrics()`` reading."""
        data = self.registry.metrics()
        counters: Mapping[str, int] = data["counters"]
        histograms: Mapping[str, dict[str, Any]] = data["histograms"]
        bounds = _bounds(histograms)
        yield _selections(counters)
        yield _failures(counters)
        for key, name, help_text in _COUNTERS:
            yield CounterMetricFamily(f"{_PREFIX}_{name}", help_text, value=counters.get(key, 0))
        yield _slow_waits(counters)
        yield _select_seconds(histograms, bounds)
        yield _histogram(
            "snapshot_build_seconds", "Time to build one runtime snapshot generation.",
            [([], histograms.get("snapshot_build_s"))], [], bounds,
        )  # fmt: skip
        for kind, what in (("wait", "waiting to acquire"), ("hold", "holding")):
            series = [([lock], histograms.get(f"{lock}_lock_{kind}_s")) for lock in _locks(histograms)]
            yield _histogram(f"lock_{kind}_seconds", f"Time spent {what} an instrumented lock.",
                             series, ["lock"], bounds)  # fmt: skip
        yield from _gauges(data["gauges"])


def register_collector(
    registry: NodeRegistry, prometheus_registry: CollectorRegistry | None = None
) -> RegistryCollector:
    """Register a :class:`RegistryCollector` for ``registry`` (default: the
    global ``prometheus_client.REGISTRY``) and return it; unregister it with
    ``prometheus_registry.unregister(collector)``."""
    collector = RegistryCollector(registry)
    (REGISTRY if prometheus_registry is None else prometheus_registry).register(collector)
    return collector


def _selections(counters: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        f"{_PREFIX}_selections", "Selections made, by path served and result.", labels=["path", "result"]
    )
    total, failed = counters.get("selections", 0), counters.get("selections_failed", 0)
    legacy, legacy_failed = counters.get("legacy_selections", 0), counters.get("legacy_selections_failed", 0)
    family.add_metric(["legacy", "ok"], legacy - legacy_failed)
    family.add_metric(["legacy", "failed"], legacy_failed)
    family.add_metric(["fast", "ok"], (total - legacy) - (failed - legacy_failed))
    family.add_metric(["fast", "failed"], failed - legacy_failed)
    return family


def _failures(counters: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        f"{_PREFIX}_selection_failures", "Failed selections, by top reason.", labels=["reason"]
    )
    for reason in Reason:
        family.add_metric([reason.value], counters.get(f"failed.{reason.value}", 0))
    return family


def _slow_waits(counters: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        f"{_PREFIX}_slow_lock_waits",
        "Lock acquisitions that waited more than 10 ms, by lock and call site.",
        labels=["lock", "site"],
    )
    for key, n in counters.items():
        if key.startswith("slow_lock_wait."):
            _, lock, site = key.split(".", 2)
            family.add_metric([lock, site], n)
    return family


def _select_seconds(histograms: Mapping[str, dict[str, Any]], bounds: tuple[float, ...]) -> Metric:
    return _histogram(
        "select_seconds",
        "select_node latency: every legacy call; one fast-path call in 64 (sampled).",
        [(["legacy"], histograms.get("select_s")), (["fast"], histograms.get("select_fast_sampled_s"))],
        ["path"],
        bounds,
    )


def _locks(histograms: Mapping[str, dict[str, Any]]) -> list[str]:
    seen = {k[: -len("_lock_wait_s")] for k in histograms if k.endswith("_lock_wait_s")}
    return [*LOCKS, *sorted(seen - set(LOCKS))]


def _bounds(histograms: Mapping[str, dict[str, Any]]) -> tuple[float, ...]:
    """The bucket bounds ``metrics()`` reports (all its histograms share them)."""
    for hist in histograms.values():
        return tuple(float(le) for le in hist["buckets"] if le != "+Inf")
    return LATENCY_BUCKETS_S


def _histogram(
    name: str,
    help_text: str,
    series: list[tuple[list[str], dict[str, Any] | None]],
    labels: list[str],
    bounds: tuple[float, ...],
) -> Metric:
    """A histogram family; a series with no data yet is exported empty."""
    family = HistogramMetricFamily(f"{_PREFIX}_{name}", help_text, labels=labels)
    for label_values, hist in series:
        if hist is None:
            buckets = [(_le(b), 0.0) for b in bounds] + [("+Inf", 0.0)]
            family.add_metric(label_values, buckets, 0.0)
            continue
        cumulative, buckets = 0, []
        for le, n in hist["buckets"].items():
            cumulative += n
            buckets.append(("+Inf" if le == "+Inf" else _le(float(le)), float(cumulative)))
        family.add_metric(label_values, buckets, float(hist["sum"]))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _gauges(gauges: Mapping[str, Any]) -> Iterator[Metric]:
    by_status = GaugeMetricFamily(f"{_PREFIX}_nodes", "Connected nodes, by status.", labels=["status"])
    for status in NodeStatus:
        by_status.add_metric([status.value], gauges["nodes_by_status"].get(status.value, 0))
    yield by_status
    plain = (
        ("pools", "pools", "Pools, configured and generated."),
        ("generated_pools", "generated_pools", "Generated pools."),
        ("reservations", "reservations", "Live reservations."),
        ("topology_version", "topology_version", "Topology changes applied (a generation counter)."),
    )
    for key, name, help_text in plain:
        yield GaugeMetricFamily(f"{_PREFIX}_{name}", help_text, value=gauges[key])
    # Gauges the path in use does not keep are left out rather than exported as 0 or -1.
    optional = (
        ("sessions", "sessions", "Sessions held by the session runtime."),
        ("snapshot_version", "snapshot_generation", "Version of the current runtime snapshot."),
        ("management_in_sync", "management_in_sync", "1 when the management registry is in sync."),
    )
    for key, name, help_text in optional:
        if gauges.get(key) is not None:
            yield GaugeMetricFamily(f"{_PREFIX}_{name}", help_text, value=float(gauges[key]))
    path = GaugeMetricFamily(f"{_PREFIX}_path", "1 for the selection path in use.", labels=["path"])
    for name in ("fast", "legacy"):
        path.add_metric([name], 1.0 if gauges.get("path") == name else 0.0)
    yield path
