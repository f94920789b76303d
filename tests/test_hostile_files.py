"""Hostile config and fleet files: every loader answers with one ConfigError
(or the node's own named error), and the CLI prints one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyscheduler import (
    ConfigError,
    CoreServicesConfig,
    InvalidRequestError,
    Phase3Config,
    SchedulerError,
)
from pyscheduler.domain import limits
from pyscheduler.domain.tomlfile import parse_toml
from pyscheduler.tools.cli import main
from pyscheduler.tools.fleetfile import load_fleet

ROOT = Path(__file__).resolve().parents[1]
POOLS = str(ROOT / "examples" / "pools.toml")
FLEET = str(ROOT / "examples" / "fleet.toml")

DEEP_ARRAY = b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n"
DEEP_TABLE = b"x = " + b"{a = " * 5_000 + b"1" + b"}" * 5_000 + b"\n"
BAD_DOCUMENTS = {
    "deep array": (DEEP_ARRAY, "nested deeper"),
    "deep inline table": (DEEP_TABLE, "nested deeper"),
    "depth past the limit": (b"x = " + b"[" * 20 + b"]" * 20 + b"\n", "nested deeper than 16"),
    "not utf-8": (b"name = \"\xff\xfe\"\n", "not UTF-8"),
    "latin-1 comment": (b"# caf\xe9\nhash_seed = 1\n", "not UTF-8"),
    "400-digit integer": (b"hash_seed = " + b"9" * 400 + b"\n", "64-bit range"),
    "5000-digit integer": (b"hash_seed = " + b"9" * 5000 + b"\n", "malformed TOML"),
    "2**64": (b"hash_seed = 18446744073709551616\n", "64-bit range"),
    "malformed": (b"[[[\n", "malformed TOML"),
    "too large": (b"# " + b"a" * limits.MAX_CONFIG_BYTES + b"\n", "larger than"),
}


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_parse_toml_rejects_hostile_documents_with_config_error(name):
    data, fragment = BAD_DOCUMENTS[name]
    with pytest.raises(ConfigError, match=fragment):
        parse_toml(data, "doc")


def test_parse_toml_accepts_the_limits_themselves():
    nested = b"x = " + b"[" * (limits.MAX_CONFIG_DEPTH - 1) + b"1" + b"]" * (limits.MAX_CONFIG_DEPTH - 1)
    assert parse_toml(nested, "doc")["x"]
    assert parse_toml(f"hash_seed = {limits.MAX_CONFIG_INTEGER}", "doc")["hash_seed"] == 2**63 - 1
    assert parse_toml(f"v = {-limits.MAX_CONFIG_INTEGER}", "doc")["v"] == -(2**63 - 1)


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_every_loader_turns_a_hostile_file_into_config_error(name, tmp_path):
    data, _ = BAD_DOCUMENTS[name]
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    for load in (Phase3Config.from_toml, CoreServicesConfig.from_toml, load_fleet):
        with pytest.raises(ConfigError, match="bad.toml"):
            load(path)
    with pytest.raises(ConfigError):
        Phase3Config.from_toml_string(data)


def test_phase3_from_toml_string_checks_str_input_too():
    with pytest.raises(ConfigError, match="nested deeper"):
        Phase3Config.from_toml_string("x = " + "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ConfigError, match="64-bit"):
        Phase3Config.from_toml_string("hash_seed = " + "1" * 400)
    with pytest.raises(ConfigError):
        Phase3Config.from_toml_string(5)  # type: ignore[arg-type]
    assert Phase3Config.from_toml_string(Phase3Config().to_toml().encode()) == Phase3Config()


@pytest.mark.parametrize("value", ["1" * 400, "1e400", "inf", "nan", "-1e400"])
def test_overflowing_numbers_in_a_fleet_heartbeat_are_named_errors(value, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(
        f'[[nodes]]\nnode_id = "a"\nheartbeat = {{ cpu_usage = {value}, memory_usage = 1.0 }}\n'
    )
    with pytest.raises(SchedulerError):
        load_fleet(path)


def test_a_fleet_node_past_the_limits_names_the_node(tmp_path):
    path = tmp_path / "fleet.toml"
    langs = ", ".join(f'"l{i}"' for i in range(limits.MAX_LANGUAGES_PER_CAPABILITY + 1))
    path.write_text(f'[[nodes]]\nnode_id = "big"\nlanguage_capabilities = {{ asr = [{langs}] }}\n')
    with pytest.raises(InvalidRequestError, match=r"nodes\[0\] \(big\).*at most 256"):
        load_fleet(path)


def _one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_validate_config_prints_one_line_for_a_hostile_file(name, capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(BAD_DOCUMENTS[name][0])
    line = _one_line_error(capsys, "validate-config", str(path))
    assert line.startswith("pyscheduler validate-config: error:") and "bad.toml" in line


@pytest.mark.parametrize("name", ["400-digit integer", "deep array", "not utf-8"])
def test_explain_prints_one_line_for_a_hostile_config_or_fleet(name, capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(BAD_DOCUMENTS[name][0])
    line = _one_line_error(capsys, "explain", "--config", str(path), "--fleet", FLEET, "--job", "en:zh")
    assert "bad.toml" in line
    line = _one_line_error(capsys, "explain", "--config", POOLS, "--fleet", str(path), "--job", "en:zh")
    assert "bad.toml" in line


def test_explain_prints_one_line_for_an_overflowing_heartbeat(capsys, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text('[[nodes]]\nnode_id = "a"\nheartbeat = { cpu_usage = ' + "9" * 400 + ", memory_usage = 1.0 }\n")
    line = _one_line_error(capsys, "explain", "--fleet", str(path), "--job", "en:zh")
    assert "fleet.toml" in line
