"""Fleet files: a small fleet described in TOML, for ``pyscheduler explain`` and examples.

A fleet file is a list of ``[[nodes]]`` tables. Each is a node as
:meth:`NodeInfo.from_dict <pyscheduler.model.NodeInfo.from_dict>` accepts it
(``node_id`` is required here), plus an optional ``[nodes.heartbeat]`` table
(``cpu_usage``, ``memory_usage``, optional ``gpu_usage`` and ``current_jobs``)
applied right after registration::

    [[nodes]]
    node_id = "gpu-01"
    max_concurrent_jobs = 4
    installed_services = [
        { service_id = "asr", type = "ASR" },
        { service_id = "nmt", type = "NMT", state = "running" },
    ]
    language_capabilities = { asr = ["en", "zh"], nmt_languages = ["en", "zh"] }
    heartbeat = { cpu_usage = 30.0, memory_usage = 40.0, gpu_usage = 20.0, current_jobs = 1 }

A node without a heartbeat stays REGISTERING. Errors name the file, the node's
index and id, and the field: :class:`ConfigError` for the file itself (unreadable,
malformed TOML, no ``[[nodes]]``), :class:`InvalidRequestError` for a node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.config import CoreServicesConfig, Phase3Config
from ..domain.errors import ConfigError, InvalidHeartbeatError, InvalidRequestError, SchedulerError
from ..domain.flags import MigrationFlags
from ..domain.model import Heartbeat, NodeInfo
from ..domain.tomlfile import read_toml_file
from ..registry.node_registry import NodeRegistry

__all__ = ["FleetEntry", "fleet_from_dict", "load_fleet", "registry_from_fleet"]

HEARTBEAT_KEYS = ("cpu_usage", "memory_usage", "gpu_usage", "current_jobs")
_REQUIRED_HEARTBEAT_KEYS = ("cpu_usage", "memory_usage")


@dataclass(frozen=True)
class FleetEntry:
    """One node of a fleet file and the heartbeat it sends first (``None``: none yet)."""

    info: NodeInfo
    heartbeat: Heartbeat | None = None


def load_fleet(path: str | Path) -> tuple[FleetEntry, ...]:
    """Read a fleet file (see the module docstring)."""
    return fleet_from_dict(read_toml_file(path, "fleet file"), source=str(path))


def fleet_from_dict(data: Mapping[str, Any], source: str = "fleet") -> tuple[FleetEntry, ...]:
    """Build the entries of a fleet from parsed TOML (``{"nodes": [...]}``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a fleet must be a table, got {data!r}")
    unknown = sorted(set(data) - {"nodes"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)} (a fleet file holds [[nodes]] tables)"
        )
    if "nodes" not in data:
        raise ConfigError(f"{source}: no [[nodes]] tables")
    nodes = data["nodes"]
    if not isinstance(nodes, Sequence) or isinstance(nodes, (str, bytes)):
        raise ConfigError(
            f"{source}: 'nodes' must be an array of tables ([[nodes]]), got {nodes!r}"
        )
    entries: list[FleetEntry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(nodes):
        entry = _entry(raw, f"{source}: nodes[{i}]")
        node_id = entry.info.node_id
        assert node_id is not None
        if node_id in seen:
            raise InvalidRequestError(
                f"{source}: nodes[{i}]: node_id {node_id!r} duplicates nodes[{seen[node_id]}]"
            )
        seen[node_id] = i
        entries.append(entry)
    return tuple(entries)


def _entry(raw: Any, where: str) -> FleetEntry:
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(f"{where}: a node must be a table, got {raw!r}")
    fields = dict(raw)
    beat_raw = fields.pop("heartbeat", None)
    node_id = fields.get("node_id")
    if node_id is None:
        raise InvalidRequestError(f"{where}: missing required field 'node_id'")
    if isinstance(node_id, str):
        where = f"{where} ({node_id})"
    try:
        info = NodeInfo.from_dict(fields)
    except (SchedulerError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    return FleetEntry(
        info, None if beat_raw is None else _heartbeat(beat_raw, f"{where}.heartbeat")
    )


def _heartbeat(raw: Any, where: str) -> Heartbeat:
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(f"{where} must be a table, got {raw!r}")
    unknown = sorted(set(raw) - set(HEARTBEAT_KEYS))
    if unknown:
        raise InvalidRequestError(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))} (known: {', '.join(HEARTBEAT_KEYS)})"
        )
    for key in _REQUIRED_HEARTBEAT_KEYS:
        if key not in raw:
            raise InvalidRequestError(f"{where}: missing required field {key!r}")
    try:
        return Heartbeat(**dict(raw))
    except (InvalidHeartbeatError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None


def registry_from_fleet(
    entries: Sequence[FleetEntry],
    phase3: Phase3Config | None = None,
    core_services: CoreServicesConfig | None = None,
    *,
    clock: Callable[[], float] | None = None,
    flags: MigrationFlags | None = None,
) -> NodeRegistry:
    """A registry holding the fleet: every node registered, then the heartbeats applied."""
    registry = NodeRegistry(
        phase3, core_services, flags=flags, clock=time.monotonic if clock is None else clock
    )
    for entry in entries:
        registry.register_node_with_policy(entry.info)
    beats = [(entry.info.node_id, entry.heartbeat) for entry in entries if entry.heartbeat is not None]
    registry.update_node_heartbeats(beats)  # type: ignore[arg-type]
    return registry
