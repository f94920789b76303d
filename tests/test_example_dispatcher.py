"""examples/dispatcher_asyncio.py driven end to end over a real localhost socket.

Nodes heartbeat once (their interval is an hour) and their jobs never finish
while a test runs, so the registry's state is exactly what the test did. Every
wait is bounded by a deadline (``asyncio.wait_for``); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyscheduler import MigrationFlags, NodeRegistry, NodeStatus, Phase3Config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispatcher_asyncio.py"
DEADLINE_S = 10.0
HOUR = 3600.0


def _load_example():
    spec = importlib.util.spec_from_file_location("dispatcher_asyncio", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ex = _load_example()

ENGINES = [
    pytest.param("legacy", id="legacy"),
    pytest.param("fast", id="fast", marks=pytest.mark.hotpath),
]


def _registry(engine: str) -> NodeRegistry:
    flags = MigrationFlags.all_on() if engine == "fast" else MigrationFlags()
    return NodeRegistry(Phase3Config(pools=ex.DEFAULT_POOLS), flags=flags)


def _node(node_id: str, languages: list[str], max_jobs: int):
    return ex.SimulatedNode(
        node_id, languages, max_jobs=max_jobs, interval_s=HOUR, job_seconds=(HOUR, HOUR)
    )


async def _until(condition) -> None:
    """Yield to the loop until ``condition()`` holds, within the deadline."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), DEADLINE_S)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 2 * DEADLINE_S))


@pytest.mark.parametrize("engine", ENGINES)
def test_nodes_register_heartbeat_and_take_jobs_over_the_socket(engine):
    registry = _registry(engine)

    async def scenario() -> None:
        async with ex.Dispatcher(registry) as dispatcher:
            host, port = dispatcher.host, dispatcher.port
            assert host == "127.0.0.1" and port > 0
            a, b = _node("gpu-a", ["en", "zh"], 1), _node("gpu-b", ["en", "zh"], 2)
            c = _node("gpu-c", ["en", "ja"], 1)
            fleet = [a, b, c]
            client = None
            try:
                for node in fleet:
                    await node.connect(host, port)
                await asyncio.wait_for(asyncio.gather(*(n.ready.wait() for n in fleet)), DEADLINE_S)
                assert {n.status for n in fleet} == {"READY"}
                assert registry.pool_members(1) == ["gpu-a", "gpu-b"]
                assert registry.get_node("gpu-c").status is NodeStatus.READY

                client = await ex.Client().connect(host, port)
                # three places for zh -> en in pool 1 (gpu-a 1, gpu-b 2): all taken, then none
                replies = [await client.submit("zh", "en", session=f"s{k}") for k in range(3)]
                assert all(r["ok"] for r in replies), replies
                assert sorted(r["node_id"] for r in replies) == ["gpu-a", "gpu-b", "gpu-b"]
                assert {r["pool_id"] for r in replies} == {1}
                assert {r["path"] for r in replies} == {engine}
                full = await client.submit("zh", "en", session="s3")
                assert not full["ok"] and full["reason"] == "capacity_exceeded"
                assert "0/2 nodes available" in full["explain"]

                # each placed job reached its node, which accepted it; the registry committed it
                assert [j["job_id"] for j in a.received] == [
                    r["job_id"] for r in replies if r["node_id"] == "gpu-a"
                ]
                assert len(b.received) == 2 and len(b.running) == 2
                assert registry.get_node("gpu-b").running_jobs == 2
                assert registry.get_node("gpu-b").reserved_jobs == 0

                ja = await client.submit("en", "ja")
                assert ja["ok"] and ja["node_id"] == "gpu-c" and ja["pool_id"] == 2
                nowhere = await client.submit("fr", "ko")
                assert not nowhere["ok"] and nowhere["reason"] != "node_refused"
                assert [len(n.received) for n in fleet] == [1, 2, 1]

                # a node that drops its connection is disconnected: out of its pools
                await b.close()
                await _until(lambda: "gpu-b" not in dispatcher.nodes)
                assert registry.get_node("gpu-b").status is NodeStatus.OFFLINE
                assert registry.pool_members(1) == ["gpu-a"]
                stats = await client.request({"op": "stats"})
                assert stats["connected"] == ["gpu-a", "gpu-c"]
                assert stats["placed"] == {"gpu-a": 1, "gpu-b": 2, "gpu-c": 1}
            finally:
                if client is not None:
                    await client.close()
                for node in fleet:
                    await node.close()

    run(scenario())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_node_that_refuses_gets_its_reservation_back(engine):
    registry = _registry(engine)

    async def scenario() -> None:
        async with ex.Dispatcher(registry) as dispatcher:
            node = _node("gpu-a", ["en", "zh"], 2)
            client = None
            try:
                await node.connect(dispatcher.host, dispatcher.port)
                await asyncio.wait_for(node.ready.wait(), DEADLINE_S)
                node.max_jobs = 0  # the node is busier than the registry knows: it refuses
                client = await ex.Client().connect(dispatcher.host, dispatcher.port)
                reply = await client.submit("en", "zh")
                assert reply == {
                    "re": "submit",
                    "ok": False,
                    "reason": "node_refused",
                    "node_id": "gpu-a",
                }
                assert len(node.received) == 1 and not node.running
                view = registry.get_node("gpu-a")
                assert view.reserved_jobs == 0 and view.running_jobs == 0
                assert dispatcher.refused == 1
            finally:
                if client is not None:
                    await client.close()
                await node.close()

    run(scenario())


def test_a_bad_line_gets_an_error_and_the_connection_ends():
    registry = _registry("legacy")

    async def scenario() -> None:
        async with ex.Dispatcher(registry) as dispatcher:
            reader, writer = await asyncio.open_connection(dispatcher.host, dispatcher.port)
            try:
                writer.write(b"this is not json\n")
                await writer.drain()
                reply = json.loads(await asyncio.wait_for(reader.readline(), DEADLINE_S))
                assert reply["ok"] is False and reply["error"].startswith("bad message")
                assert await asyncio.wait_for(reader.read(), DEADLINE_S) == b""  # closed
            finally:
                writer.close()
                await writer.wait_closed()

    run(scenario())


def test_only_localhost():
    with pytest.raises(ValueError, match="localhost only"):
        ex.Dispatcher(_registry("legacy"), host="0.0.0.0")


def test_demo_places_jobs_and_stops_by_itself():
    result = run(ex.run_demo(nodes=6, jobs=40, engine="legacy", pace_s=0.0))
    outcome = result["outcome"]
    assert sum(outcome.values()) == 40
    assert outcome.get("placed", 0) > 0
    assert sum(result["placed_by_node"].values()) == outcome["placed"]
    assert result["nodes_ready"] == 6


def test_the_script_runs_and_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE), "--nodes", "4", "--jobs", "20", "--engine", "legacy",
         "--max-seconds", "60"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "20 jobs over 4 nodes (legacy path)" in proc.stdout
    assert "placed per node:" in proc.stdout
