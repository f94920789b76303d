"""The Redis sync's log events are structured like the registry's: every
``log.`` call in ``pyscheduler/cluster`` passes ``extra=`` with a stable
``event`` name (and ``instance_id``), and docs/OPERATIONS.md lists each event."""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import Make, cluster_factory, counts, picks, wait_until
from helpers import beat, node_info

from pyscheduler.cluster import codec

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "pyscheduler" / "cluster"
DOC = (ROOT / "docs" / "OPERATIONS.md").read_text()
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
NESTED = "[" * 100_000 + "]" * 100_000


def _log_calls() -> Iterator[tuple[str, ast.Call]]:
    for path in sorted(CLUSTER.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log"):
                yield f"{path.name}:{node.lineno}", node


def _extra(call: ast.Call) -> dict[str, ast.expr]:
    for kw in call.keywords:
        if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
            return {k.value: v for k, v in zip(kw.value.keys, kw.value.values)
                    if isinstance(k, ast.Constant)}
    return {}


def _events() -> set[str]:
    out = set()
    for _, call in _log_calls():
        event = _extra(call).get("event")
        if isinstance(event, ast.Constant):
            out.add(event.value)
    return out


# -- static: every call site ------------------------------------------------------------


def test_every_cluster_log_call_passes_an_event_and_the_instance_id():
    calls = list(_log_calls())
    assert len(calls) >= 29
    missing = []
    for where, call in calls:
        extra = _extra(call)
        event = extra.get("event")
        if not (isinstance(event, ast.Constant) and isinstance(event.value, str)
                and event.value.startswith("cluster.")) or "instance_id" not in extra:
            missing.append(where)
    assert missing == []


def test_no_cluster_log_field_collides_with_a_log_record_attribute():
    reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    clashes = [(where, key) for where, call in _log_calls() for key in _extra(call)
               if key in reserved]
    assert clashes == []


def test_every_cluster_event_is_documented():
    events = _events()
    assert "cluster.malformed_entry" in events and len(events) >= 20
    rows = [line for line in DOC.splitlines() if line.startswith("| `pyscheduler.cluster` |")]
    documented = {line.split("|")[3].strip().strip("`") for line in rows}
    assert sorted(events - documented) == []
    assert sorted(documented - events) == []  # no row for an event the code no longer logs


# -- real scenarios against redis-server ------------------------------------------------


@pytest.fixture
def cluster(redis_env) -> Iterator[Make]:
    yield from cluster_factory(redis_env)


def _records(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "pyscheduler.cluster" and getattr(r, "event", None) == event]


@pytest.mark.redis
def test_a_poisoned_node_hash_logs_malformed_hash_with_its_fields(cluster, redis_env, caplog):
    caplog.set_level(logging.WARNING, logger="pyscheduler.cluster")
    (a, _sa), (b, sb) = cluster("a"), cluster("b")
    p = redis_env.prefix
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"), what="n1 on b")
    r = redis_env.client
    r.hset(f"{p}:node:evil", mapping={"owner": "x", "info": NESTED, "status": "ready", "g": 1})
    r.expire(f"{p}:node:evil", 60)
    r.sadd(f"{p}:nodes", "evil")
    resyncs = counts(sb)["resyncs"]
    r.delete(f"{p}:epoch")  # every instance reads Redis whole
    wait_until(lambda: counts(sb)["resyncs"] > resyncs and _records(caplog, "cluster.malformed_hash"),
               what="b resynced and logged the poisoned hash")
    records = [rec for rec in _records(caplog, "cluster.malformed_hash") if rec.instance_id == "b"]
    assert records, [rec.getMessage() for rec in caplog.records]
    rec = records[0]
    assert rec.levelno == logging.WARNING and rec.node_id == "evil"
    assert "nests deeper than" in rec.error
    assert rec.msg == "cluster sync %s: skipping malformed hash: %s"
    # data_lost: the deleted epoch reads as a restarted Redis
    assert any(rec.instance_id == "b" for rec in _records(caplog, "cluster.data_lost"))


@pytest.mark.redis
def test_a_poisoned_stream_entry_logs_malformed_entry_with_its_fields(cluster, redis_env, caplog):
    caplog.set_level(logging.WARNING, logger="pyscheduler.cluster")
    (a, _sa), (b, sb) = cluster("a"), cluster("b")
    p = redis_env.prefix
    r = redis_env.client
    gen = r.incr(f"{p}:gen")
    entry_id = r.xadd(f"{p}:events", {"e": codec.SEP.join([
        str(gen).encode(), b"x", str(time.time()).encode(), b"reg", b"evil", NESTED.encode()])})
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"), what="n1 on b after the poisoned entry")
    assert counts(sb)["malformed"] >= 1
    records = [rec for rec in _records(caplog, "cluster.malformed_entry") if rec.instance_id == "b"]
    assert records, [rec.getMessage() for rec in caplog.records]
    rec = records[0]
    assert rec.entry_id == entry_id.decode() and "nests deeper than" in rec.error
    assert rec.msg == "cluster sync %s: skipping malformed stream entry %r: %s"
