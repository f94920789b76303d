"""Fleet files: loading, errors that name the node and the field, the example fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyscheduler import ConfigError, InvalidRequestError, NodeStatus, Phase3Config
from pyscheduler.tools.fleetfile import FleetEntry, fleet_from_dict, load_fleet, registry_from_fleet

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "examples" / "fleet.toml"
POOLS = ROOT / "examples" / "pools.toml"

NODE = """
[[nodes]]
node_id = "{id}"
installed_services = [{{ service_id = "asr", type = "ASR" }}, {{ service_id = "nmt", type = "NMT" }}]
language_capabilities = {{ asr = ["en", "zh"], nmt_languages = ["en", "zh"] }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_example_fleet_loads_and_builds_a_registry():
    entries = load_fleet(FLEET)
    assert len(entries) == 11
    assert all(isinstance(e, FleetEntry) for e in entries)
    registry = registry_from_fleet(entries, Phase3Config.from_toml(POOLS), clock=lambda: 0.0)
    assert registry.verify_consistency() == []
    status = {e.info.node_id: registry.get_node(e.info.node_id).status for e in entries}
    assert status["gpu-en-zh-05"] is NodeStatus.REGISTERING  # no heartbeat
    assert status["gpu-en-zh-04"] is NodeStatus.REGISTERING  # NMT in error
    assert status["gpu-en-zh-01"] is NodeStatus.READY
    assert registry.get_node("gpu-en-zh-02").running_jobs == 2
    assert registry.pool_members(5) == ["gpu-en-zh-03"]  # the only node with TONE


def test_a_node_without_heartbeat_table_has_none(tmp_path):
    (entry,) = load_fleet(write(tmp_path, NODE.format(id="a")))
    assert entry.heartbeat is None and entry.info.node_id == "a"


def test_heartbeat_table_is_applied(tmp_path):
    text = (
        NODE.format(id="a")
        + "heartbeat = { cpu_usage = 10, memory_usage = 20.5, current_jobs = 2 }\n"
    )
    (entry,) = load_fleet(write(tmp_path, text))
    assert entry.heartbeat is not None
    assert (entry.heartbeat.cpu_usage, entry.heartbeat.memory_usage) == (10.0, 20.5)
    assert entry.heartbeat.gpu_usage is None and entry.heartbeat.current_jobs == 2


@pytest.mark.parametrize(
    "extra, error, needles",
    [
        ("max_concurrent_jobs = 0\n", InvalidRequestError, ["nodes[1] (b)", "max_concurrent_jobs"]),
        ("colour = 'red'\n", InvalidRequestError, ["nodes[1] (b)", "colour"]),
        ("has_gpu = 'yes'\n", InvalidRequestError, ["nodes[1] (b)", "has_gpu"]),
        ("heartbeat = { cpu_usage = 150, memory_usage = 1 }\n", InvalidRequestError,
         ["nodes[1] (b).heartbeat", "cpu_usage"]),
        ("heartbeat = { cpu_usage = 1 }\n", InvalidRequestError, ["nodes[1] (b).heartbeat", "memory_usage"]),
        ("heartbeat = { cpu_usage = 1, memory_usage = 1, load = 3 }\n", InvalidRequestError,
         ["nodes[1] (b).heartbeat", "load"]),
        ("heartbeat = 5\n", InvalidRequestError, ["nodes[1] (b).heartbeat"]),
    ],
)  # fmt: skip
def test_a_bad_node_is_named_by_index_id_and_field(tmp_path, extra, error, needles):
    path = write(tmp_path, NODE.format(id="a") + NODE.format(id="b") + extra)
    with pytest.raises(error) as info:
        load_fleet(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_bad_service_state_is_named(tmp_path):
    text = NODE.format(id="a").replace('type = "NMT" }', 'type = "NMT", state = "sleeping" }')
    with pytest.raises(InvalidRequestError, match=r"nodes\[0\] \(a\).*state"):
        load_fleet(write(tmp_path, text))


def test_duplicate_and_missing_node_ids(tmp_path):
    with pytest.raises(InvalidRequestError, match=r"nodes\[1\].*'a'.*nodes\[0\]"):
        load_fleet(write(tmp_path, NODE.format(id="a") * 2))
    with pytest.raises(InvalidRequestError, match=r"nodes\[0\].*node_id"):
        fleet_from_dict({"nodes": [{"max_concurrent_jobs": 2}]})


@pytest.mark.parametrize(
    "text, needle",
    [
        ("nodes = \n", "malformed TOML"),
        ("enabled = true\n", "unknown key"),
        ("", "no [[nodes]]"),
        ("nodes = 3\n", "array of tables"),
    ],
)
def test_bad_fleet_files_are_config_errors(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_fleet(write(tmp_path, text))
    assert needle in str(info.value)


def test_a_node_that_is_not_a_table(tmp_path):
    with pytest.raises(InvalidRequestError, match=r"nodes\[0\]"):
        fleet_from_dict({"nodes": ["gpu-1"]})


def test_missing_fleet_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path / "absent.toml")
