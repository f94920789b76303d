"""The fuzz targets for untrusted input: TOML configs, fleet files, and what a
node sends (its registration and its heartbeats).

Each target takes raw bytes and checks one property: the input either works
or raises a :class:`pyscheduler.SchedulerError` — nothing else (no
``TypeError``, ``RecursionError``, ``UnicodeDecodeError``, ``OverflowError``) —
and a call that raised changed nothing. What works is checked further (a config
dumps back to an equal config; a registry stays consistent and both paths
agree). The ``fuzz_<name>.py`` scripts run them under atheris;
``tests/test_fuzz_corpus.py`` replays the checked-in corpora through them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyscheduler import (
    CoreServicesConfig,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    Phase3Config,
    SchedulerError,
    _compat,
)
from pyscheduler.tools.fleetfile import load_fleet, registry_from_fleet

__all__ = ["TARGETS", "core_services_toml", "fleet_file", "fuzz_argv", "node_ingestion", "phase3_toml"]

CORPUS = Path(__file__).resolve().parent / "corpus"
_SCRATCH = Path(tempfile.mkdtemp(prefix="pyscheduler-fuzz-"))


def _scratch_file(data: bytes) -> Path:
    """``data`` in a file (the loaders under test read paths)."""
    path = _SCRATCH / f"input-{os.getpid()}.toml"
    path.write_bytes(data)
    return path


def _attempt(call: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, error)`` for a SchedulerError; anything else propagates."""
    try:
        return True, call()
    except SchedulerError as exc:
        return False, exc


# -- TOML configs and fleet files --------------------------------------------------------


def phase3_toml(data: bytes) -> None:
    """``Phase3Config.from_toml_string`` and ``from_toml``: a config that loads dumps back equal."""
    ok, cfg = _attempt(lambda: Phase3Config.from_toml_string(data))
    ok_file, cfg_file = _attempt(lambda: Phase3Config.from_toml(_scratch_file(data)))
    assert ok == ok_file, (cfg, cfg_file)
    if ok:
        assert cfg == cfg_file
        assert Phase3Config.from_toml_string(cfg.to_toml()) == cfg
        assert Phase3Config.from_dict(cfg.to_dict()) == cfg


def core_services_toml(data: bytes) -> None:
    """``CoreServicesConfig.from_toml``: a config that loads round-trips through ``to_dict``."""
    ok, cfg = _attempt(lambda: CoreServicesConfig.from_toml(_scratch_file(data)))
    if ok:
        assert CoreServicesConfig.from_dict(cfg.to_dict()) == cfg


def _paths() -> list[MigrationFlags]:
    flags = [MigrationFlags()]
    if _compat.HAVE_HOTPATH:
        flags.append(MigrationFlags.all_on())
    return flags


def _clock() -> float:
    return 1_000.0


def fleet_file(data: bytes) -> None:
    """``load_fleet``: a fleet that loads builds a consistent registry on both paths,
    and both paths place a job the same way."""
    ok, entries = _attempt(lambda: load_fleet(_scratch_file(data)))
    if not ok:
        return
    decisions = set()
    for flags in _paths():
        reg = registry_from_fleet(entries, clock=_clock, flags=flags)
        assert reg.verify_consistency() == []
        assert len(reg.node_ids()) == len(entries)
        decisions.add(_probe(reg, entries[0].info if entries else None))
    assert len(decisions) == 1, decisions


def _probe(reg: NodeRegistry, info: NodeInfo | None) -> tuple:
    """The decision for a job in the first languages a node advertises."""
    caps = info.language_capabilities if info is not None else LanguageCapabilities()
    langs = sorted(caps.all_languages()) + ["en", "zh"]
    sel = reg.select_node(JobRequest(langs[0], langs[1] if langs[1] != langs[0] else "zz", routing_key="k"))
    if sel.reservation is not None:
        reg.release(sel)
    return sel.decision()


# -- what a node sends ------------------------------------------------------------------


def _observable(reg: NodeRegistry) -> tuple:
    """Everything a failed call must leave as it was."""
    ids = reg.node_ids()
    metrics = reg.metrics()
    return (
        tuple((nid, reg.get_node(nid)) for nid in ids),
        tuple((p, tuple(reg.pool_members(p.pool_id))) for p in reg.pools()),
        metrics["counters"],
        {k: v for k, v in metrics["gauges"].items() if k != "snapshot_version"},
    )


def _heartbeat(raw: Any) -> Heartbeat:
    """A heartbeat message as a dispatcher turns it into a ``Heartbeat``."""
    if not isinstance(raw, dict):
        raise _NotAMessage
    services = raw.get("installed_services")
    if isinstance(services, list):
        services = [InstalledService.from_dict(s) for s in services]
    caps = raw.get("language_capabilities")
    if isinstance(caps, dict):
        caps = LanguageCapabilities.from_dict(caps)
    return Heartbeat(
        raw.get("cpu_usage"),
        raw.get("memory_usage"),
        raw.get("gpu_usage"),
        raw.get("current_jobs", 0),
        services,
        caps,
    )


class _NotAMessage(Exception):
    """The fuzz input is not shaped like the messages under test (skipped)."""


def _messages(data: bytes) -> tuple[Any, list[Any], Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # not JSON: the transport's problem, not ours
        raise _NotAMessage from None
    if not isinstance(doc, dict):
        raise _NotAMessage
    beats = doc.get("beats", [])
    return doc.get("info"), beats if isinstance(beats, list) else [beats], doc.get("policy", "reject_duplicate")


def node_ingestion(data: bytes) -> None:
    """A registration and heartbeats, as JSON ``{"info": {...}, "beats": [...], "policy": ...}``,
    on a registry that already holds a node, on both paths."""
    try:
        raw_info, raw_beats, policy = _messages(data)
    except _NotAMessage:
        return
    ok, info = _attempt(lambda: NodeInfo.from_dict(raw_info))
    beats = []
    for raw in raw_beats[:8]:
        try:
            beats.append(_attempt(lambda raw=raw: _heartbeat(raw)))
        except _NotAMessage:
            continue
    decisions = {_ingest(flags, info if ok else None, policy, beats) for flags in _paths()}
    assert len(decisions) == 1, decisions


def _ingest(flags: MigrationFlags, info: NodeInfo | None, policy: Any, beats: list) -> tuple:
    """Register ``info`` and apply ``beats`` on a registry holding one node; every
    call that raises must leave it as it was. Returns a probe decision."""
    reg = NodeRegistry(Phase3Config(auto_generate_language_pools=True), flags=flags, clock=_clock)
    node_id = reg.register_node_with_policy(NodeInfo("seed", labels={"role": "existing"}))
    if info is not None:
        before = _observable(reg)
        registered, result = _attempt(lambda: reg.register_node_with_policy(info, policy))
        if registered:
            node_id = result
        else:
            assert _observable(reg) == before, result
    for built, hb in beats:
        if not built:
            continue
        before = _observable(reg)
        applied, result = _attempt(lambda hb=hb, node_id=node_id: reg.update_node_heartbeat(node_id, hb))
        if not applied:
            assert _observable(reg) == before, result
    assert reg.verify_consistency() == []
    return _probe(reg, info)

TOML_TARGETS = ("phase3_toml", "core_services_toml", "fleet_file")
TOML_DICT = Path(__file__).resolve().parent / "toml.dict"


def fuzz_argv(argv: list[str], target: str = "") -> list[str]:
    """libFuzzer's arguments, with a scratch output directory put first when every
    corpus directory named is a checked-in one (so a run never adds files to them),
    and the TOML dictionary for the TOML targets unless a ``-dict`` is given."""
    argv = list(argv)
    if target in TOML_TARGETS and not any(a.startswith("-dict=") for a in argv):
        argv.insert(1, f"-dict={TOML_DICT}")
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if dirs and all(Path(d).resolve().is_relative_to(CORPUS) for d in dirs):
        scratch = tempfile.mkdtemp(prefix="pyscheduler-fuzz-corpus-")
        print(f"new inputs go to {scratch}", file=sys.stderr)
        first = argv.index(dirs[0])
        return [*argv[:first], scratch, *argv[first:]]
    return argv


TARGETS: dict[str, Callable[[bytes], None]] = {
    "phase3_toml": phase3_toml,
    "core_services_toml": core_services_toml,
    "fleet_file": fleet_file,
    "node_ingestion": node_ingestion,
}
