"""A minimal asyncio dispatcher in front of pyscheduler.

One TCP server on localhost speaks line-delimited JSON (one object per line,
UTF-8). Worker nodes and job clients use the same port:

node → dispatcher
    ``{"op": "register", "node_id": "gpu-1", "languages": ["en", "zh"], "max_jobs": 4, "has_gpu": true}``
        → ``{"re": "register", "ok": true, "node_id": "gpu-1"}``
    ``{"op": "heartbeat", "cpu": 20.0, "memory": 40.0, "gpu": 30.0, "jobs": 1}``
        → ``{"re": "heartbeat", "ok": true, "status": "READY"}``
    ``{"op": "accept" | "refuse", "job_id": 7}`` answers a job the dispatcher pushed
    ``{"op": "done", "job_id": 7}`` (informational: the next heartbeat carries the count)

dispatcher → node (pushed)
    ``{"op": "job", "job_id": 7, "src": "zh", "tgt": "en", "session": "call-1"}``

client → dispatcher
    ``{"op": "submit", "src": "zh", "tgt": "en", "session": "call-1"}``
        → ``{"re": "submit", "ok": true, "node_id": "gpu-1", "pool_id": 1, "job_id": 7}``
        or ``{"re": "submit", "ok": false, "reason": "capacity_exceeded", "explain": "..."}``
    ``{"op": "stats"}`` → ``{"re": "stats", "ok": true, "nodes": ..., "nodes_ready": ..., ...}``

HTTP ``GET /metrics`` on a second localhost port (``metrics_port``; needs the
``metrics`` extra, ``prometheus-client``) serves the registry's metrics in the
Prometheus text format through :class:`pyscheduler.tools.prometheus.RegistryCollector`.

A submit is placed with ``select_node`` (which reserves the node), pushed to
the node's connection, and committed when the node accepts or released when it
refuses, does not answer in time, or is gone. A node's connection closing
disconnects it from the registry. A sweep runs every ``sweep_interval_s``.

Everything is bounded: the server listens on 127.0.0.1 only, accepts at most
``max_connections`` connections and lines of at most 64 KiB, and gives a node
``accept_timeout_s`` to answer. :func:`main` (``python
examples/dispatcher_asyncio.py --nodes 12 --jobs 200``) starts the dispatcher,
connects simulated nodes, submits jobs, prints what happened and stops by
itself, within ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from pyscheduler import (
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    Phase3Config,
    PoolConfig,
    SchedulerError,
    ServiceType,
)

LINE_LIMIT = 64 * 1024
SERVICES = tuple(
    InstalledService(f"{t.name.lower()}-1", t)
    for t in (ServiceType.ASR, ServiceType.NMT, ServiceType.TTS)
)

#: The example's pools: English to and from three languages, and a zh/ja pool.
DEFAULT_POOLS = (
    PoolConfig(1, "en-zh", ["en", "zh"]),
    PoolConfig(2, "en-ja", ["en", "ja"]),
    PoolConfig(3, "en-de", ["en", "de"]),
    PoolConfig(4, "ja-zh", ["ja", "zh"]),
)


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def read_message(reader: asyncio.StreamReader) -> dict | None:
    """The next JSON object on the stream, or ``None`` at its end."""
    line = await reader.readline()
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


# -- the dispatcher -----------------------------------------------------------------------


@dataclass
class _NodeConnection:
    node_id: str
    writer: asyncio.StreamWriter
    answers: dict[int, asyncio.Future[bool]] = field(default_factory=dict)


class Dispatcher:
    """The server: owns the network, asks ``registry`` every scheduling question."""

    def __init__(
        self,
        registry: NodeRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 256,
        accept_timeout_s: float = 2.0,
        sweep_interval_s: float = 1.0,
        metrics_port: int | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"this example listens on localhost only, not {host!r}")
        self.registry = registry
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.accept_timeout_s = accept_timeout_s
        self.sweep_interval_s = sweep_interval_s
        self.nodes: dict[str, _NodeConnection] = {}
        self.placed: Counter[str] = Counter()  # jobs committed, by node
        self.refused = 0
        self._job_ids = itertools.count(1)
        self._connections: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self.metrics_port = metrics_port  # None: no /metrics endpoint; 0: a free port
        self._metrics_server: asyncio.base_events.Server | None = None

    async def start(self) -> tuple[str, int]:
        """Listen; return the address actually bound (``port=0`` picks a free one)."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=LINE_LIMIT
        )
        self._sweeper = asyncio.create_task(self._sweep_forever())
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        if self.metrics_port is not None:
            try:
                await self._start_metrics()
            except BaseException:  # e.g. prometheus-client missing: close what is open
                await self.stop()
                raise
        return host, port

    async def _start_metrics(self) -> None:
        """Serve ``GET /metrics`` (Prometheus text format) on ``metrics_port``."""
        from prometheus_client import CollectorRegistry

        from pyscheduler.tools.prometheus import register_collector

        self._prometheus = CollectorRegistry()
        register_collector(self.registry, self._prometheus)
        self._metrics_server = await asyncio.start_server(
            self._serve_metrics, self.host, self.metrics_port, limit=LINE_LIMIT
        )
        self.metrics_port = self._metrics_server.sockets[0].getsockname()[1]

    async def _serve_metrics(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # the headers: nothing in them matters here
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._prometheus)
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"only GET /metrics is served\n"
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            await _close(writer)

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their handlers."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
            await self._metrics_server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            self.registry.sweep()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            writer.write(encode({"re": "connect", "ok": False, "error": "too many connections"}))
            await _close(writer)
            return
        self._connections.add(task)
        node: _NodeConnection | None = None
        try:
            while True:
                try:
                    message = await read_message(reader)
                except (ValueError, asyncio.LimitOverrunError) as exc:
                    writer.write(
                        encode({"re": "error", "ok": False, "error": f"bad message: {exc}"})
                    )
                    break
                if message is None:
                    break
                op = message.get("op")
                if op == "register":
                    node = self._register(message, writer)
                    writer.write(encode({"re": "register", "ok": True, "node_id": node.node_id}))
                elif op == "heartbeat" and node is not None:
                    status = self.registry.update_node_heartbeat(node.node_id, _heartbeat(message))
                    writer.write(encode({"re": "heartbeat", "ok": True, "status": status.name}))
                elif op in ("accept", "refuse") and node is not None:
                    answer = node.answers.pop(int(message["job_id"]), None)
                    if answer is not None and not answer.done():
                        answer.set_result(op == "accept")
                elif op == "done":
                    pass  # the node's next heartbeat reports its running count
                elif op == "submit":
                    # Waits for the node's answer (read by the node's own handler):
                    # one job in flight per client connection.
                    reply = await self._submit(message)
                    writer.write(encode(reply))
                elif op == "stats":
                    writer.write(encode(self._stats()))
                else:
                    writer.write(
                        encode({"re": str(op), "ok": False, "error": f"unexpected op {op!r}"})
                    )
                await writer.drain()
        except SchedulerError as exc:
            with contextlib.suppress(ConnectionError):
                writer.write(encode({"re": "error", "ok": False, "error": str(exc)}))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if node is not None and self.nodes.get(node.node_id) is node:
                del self.nodes[node.node_id]
                for answer in node.answers.values():
                    if not answer.done():
                        answer.set_result(False)
                with contextlib.suppress(SchedulerError):
                    self.registry.disconnect_node(node.node_id)
            await _close(writer)
            self._connections.discard(task)

    def _register(self, message: dict, writer: asyncio.StreamWriter) -> _NodeConnection:
        langs = [str(x) for x in message.get("languages", ())]
        info = NodeInfo(
            node_id=message.get("node_id"),
            has_gpu=bool(message.get("has_gpu", True)),
            max_concurrent_jobs=int(message.get("max_jobs", 4)),
            installed_services=SERVICES,
            language_capabilities=LanguageCapabilities(asr=langs, tts=langs, nmt_languages=langs),
        )
        node_id = self.registry.register_node_with_policy(info, policy="replace")
        node = self.nodes[node_id] = _NodeConnection(node_id, writer)
        return node

    async def _submit(self, message: dict) -> dict:
        job = JobRequest(
            str(message.get("src", "")),
            str(message.get("tgt", "")),
            session_id=message.get("session"),
        )
        selection = self.registry.select_node(job)
        if not selection.ok:
            return {
                "re": "submit",
                "ok": False,
                "reason": str(selection.breakdown.top_reason),
                "explain": selection.explain(),
            }
        node = self.nodes.get(selection.node_id)  # type: ignore[arg-type]
        job_id = next(self._job_ids)
        accepted = False
        if node is not None:
            answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            node.answers[job_id] = answer
            try:
                node.writer.write(encode({
                    "op": "job", "job_id": job_id, "src": job.src_lang, "tgt": job.tgt_lang,
                    "session": job.session_id,
                }))  # fmt: skip
                await node.writer.drain()
                accepted = await asyncio.wait_for(answer, self.accept_timeout_s)
            except (ConnectionError, asyncio.TimeoutError):
                accepted = False
            finally:
                node.answers.pop(job_id, None)
        if not accepted:
            self.registry.release(selection)
            self.refused += 1
            return {
                "re": "submit",
                "ok": False,
                "reason": "node_refused",
                "node_id": selection.node_id,
            }
        self.registry.commit(selection)
        self.placed[selection.node_id] += 1  # type: ignore[index]
        return {
            "re": "submit",
            "ok": True,
            "node_id": selection.node_id,
            "pool_id": selection.pool_id,
            "job_id": job_id,
            "path": selection.path,
        }

    def _stats(self) -> dict:
        gauges = self.registry.metrics().get("gauges", {})
        return {
            "re": "stats",
            "ok": True,
            "nodes": gauges.get("nodes"),
            "nodes_ready": gauges.get("nodes_ready"),
            "connected": sorted(self.nodes),
            "placed": dict(self.placed),
            "refused": self.refused,
        }


def _heartbeat(message: dict) -> Heartbeat:
    gpu = message.get("gpu")
    return Heartbeat(
        cpu_usage=float(message.get("cpu", 0.0)),
        memory_usage=float(message.get("memory", 0.0)),
        gpu_usage=None if gpu is None else float(gpu),
        current_jobs=int(message.get("jobs", 0)),
    )


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        await writer.wait_closed()


# -- simulated nodes and clients ----------------------------------------------------------------


class SimulatedNode:
    """A worker node: registers, heartbeats every ``interval_s`` and runs the jobs
    pushed to it for ``job_seconds`` (random in the range) while it has room."""

    def __init__(
        self,
        node_id: str,
        languages: list[str],
        *,
        max_jobs: int = 4,
        interval_s: float = 0.1,
        job_seconds: tuple[float, float] = (0.05, 0.3),
        seed: int = 0,
    ) -> None:
        self.node_id, self.languages, self.max_jobs = node_id, languages, max_jobs
        self.interval_s, self.job_seconds = interval_s, job_seconds
        self.rng = random.Random(f"{node_id}:{seed}")
        self.running: set[int] = set()
        self.received: list[dict] = []  # every job pushed to this node
        self.status: str | None = None
        self.ready = asyncio.Event()
        self._replies: asyncio.Queue[dict] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int) -> None:
        reader, self._writer = await asyncio.open_connection(host, port, limit=LINE_LIMIT)
        self._tasks.append(asyncio.create_task(self._read(reader)))
        await self._send({
            "op": "register", "node_id": self.node_id, "languages": self.languages,
            "max_jobs": self.max_jobs, "has_gpu": True,
        })  # fmt: skip
        reply = await self._replies.get()
        if not reply.get("ok"):
            raise RuntimeError(f"{self.node_id}: registration refused: {reply}")
        self._tasks.append(asyncio.create_task(self._beat()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writer is not None:
            await _close(self._writer)

    async def _send(self, message: dict) -> None:
        assert self._writer is not None
        self._writer.write(encode(message))
        await self._writer.drain()

    async def _beat(self) -> None:
        while True:
            await self._send({
                "op": "heartbeat", "cpu": round(self.rng.uniform(10, 60), 1),
                "memory": round(self.rng.uniform(20, 60), 1),
                "gpu": round(self.rng.uniform(10, 60), 1), "jobs": len(self.running),
            })  # fmt: skip
            reply = await self._replies.get()
            self.status = reply.get("status")
            if self.status == "READY":
                self.ready.set()
            await asyncio.sleep(self.interval_s)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await read_message(reader)) is not None:
            if message.get("op") == "job":
                await self._take(message)
            else:
                await self._replies.put(message)

    async def _take(self, job: dict) -> None:
        self.received.append(job)
        if len(self.running) >= self.max_jobs:
            await self._send({"op": "refuse", "job_id": job["job_id"]})
            return
        self.running.add(job["job_id"])
        await self._send({"op": "accept", "job_id": job["job_id"]})
        self._tasks.append(asyncio.create_task(self._run(job["job_id"])))

    async def _run(self, job_id: int) -> None:
        await asyncio.sleep(self.rng.uniform(*self.job_seconds))
        self.running.discard(job_id)
        await self._send({"op": "done", "job_id": job_id})


class Client:
    """A job submitter on its own connection: one request, one reply."""

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int) -> Client:
        self._reader, self._writer = await asyncio.open_connection(host, port, limit=LINE_LIMIT)
        return self

    async def request(self, message: dict) -> dict:
        assert self._reader is not None and self._writer is not None
        self._writer.write(encode(message))
        await self._writer.drain()
        reply = await read_message(self._reader)
        if reply is None:
            raise ConnectionError("the dispatcher closed the connection")
        return reply

    async def submit(self, src: str, tgt: str, session: str | None = None) -> dict:
        return await self.request({"op": "submit", "src": src, "tgt": tgt, "session": session})

    async def close(self) -> None:
        if self._writer is not None:
            await _close(self._writer)


# -- the demo ------------------------------------------------------------------------------------

LANGUAGE_SETS = (["en", "zh"], ["en", "ja"], ["en", "de"], ["ja", "zh"], ["en", "ja", "zh"])
PAIRS = (("zh", "en"), ("en", "zh"), ("ja", "en"), ("en", "de"), ("zh", "ja"), ("fr", "ko"))


async def run_demo(
    nodes: int = 12,
    jobs: int = 200,
    *,
    engine: str = "fast",
    seed: int = 1,
    concurrency: int = 4,
    pace_s: float = 0.05,
    metrics_port: int | None = None,
) -> dict:
    """Start a dispatcher on an ephemeral localhost port, connect ``nodes``
    simulated nodes, submit ``jobs`` jobs from ``concurrency`` clients (each
    waiting ``pace_s`` between its jobs), and return what happened (placed per
    node, rejections by reason)."""
    flags = MigrationFlags.all_on() if engine == "fast" else MigrationFlags()
    registry = NodeRegistry(Phase3Config(pools=DEFAULT_POOLS), flags=flags)
    rng = random.Random(seed)
    outcome: Counter[str] = Counter()
    async with Dispatcher(registry, metrics_port=metrics_port) as dispatcher:
        if metrics_port is not None:
            print(f"metrics: http://{dispatcher.host}:{dispatcher.metrics_port}/metrics", flush=True)
        fleet = [
            SimulatedNode(f"gpu-{k:02d}", LANGUAGE_SETS[k % len(LANGUAGE_SETS)],
                          max_jobs=rng.randint(1, 4), seed=seed)
            for k in range(nodes)
        ]  # fmt: skip
        try:
            for node in fleet:
                await node.connect(dispatcher.host, dispatcher.port)
            await asyncio.gather(*(node.ready.wait() for node in fleet))
            pairs = [rng.choice(PAIRS) for _ in range(jobs)]
            queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            for pair in pairs:
                queue.put_nowait(pair)

            async def submitter(k: int) -> None:
                client = await Client().connect(dispatcher.host, dispatcher.port)
                try:
                    while not queue.empty():
                        src, tgt = queue.get_nowait()
                        reply = await client.submit(src, tgt, session=f"call-{k}")
                        outcome["placed" if reply["ok"] else reply["reason"]] += 1
                        await asyncio.sleep(pace_s)
                finally:
                    await client.close()

            await asyncio.gather(*(submitter(k) for k in range(concurrency)))
            client = await Client().connect(dispatcher.host, dispatcher.port)
            try:
                stats = await client.request({"op": "stats"})
            finally:
                await client.close()
        finally:
            for node in fleet:
                await node.close()
    return {
        "outcome": dict(outcome),
        "placed_by_node": stats["placed"],
        "nodes_ready": stats["nodes_ready"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--engine", choices=("fast", "legacy"), default="fast")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve Prometheus metrics on this localhost port during the run (0: any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop by then at the latest"
    )
    args = parser.parse_args(argv)

    async def bounded() -> dict:
        return await asyncio.wait_for(
            run_demo(args.nodes, args.jobs, engine=args.engine, seed=args.seed,
                     metrics_port=args.metrics_port),
            args.max_seconds,
        )

    try:
        result = asyncio.run(bounded())
    except asyncio.TimeoutError:
        print(f"dispatcher demo did not finish within {args.max_seconds} s", file=sys.stderr)
        return 1
    print(f"{args.jobs} jobs over {args.nodes} nodes ({args.engine} path):")
    for what, n in sorted(result["outcome"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {what:<24} {n}")
    print(
        "placed per node: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result["placed_by_node"].items()))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
