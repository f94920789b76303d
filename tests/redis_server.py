"""Fixtures for the cluster tests: a real ``redis-server`` on 127.0.0.1.

Loaded from ``conftest.py`` (``pytest_plugins``). The server listens on a free
localhost port, keeps nothing on disk and lives in a temporary directory
(:class:`pyscheduler.cluster.RedisServer`). When ``redis-server`` or redis-py
is missing the tests that use these fixtures FAIL with the reason (CI
installs both); deselect them with ``-m "not redis"``.

- ``redis_server``: one server for the session; each test gets its own key
  prefix through ``redis_env``, so tests never see each other's keys.
- ``redis_env``: ``.url``, a unique ``.prefix``, and ``.client`` (redis-py,
  bytes) to look at or tamper with what is stored.
- ``own_redis``: a server of the test's own, which it may kill and restart.
- ``tls_files``: a self-signed certificate, key and CA file for 127.0.0.1
  (made with the ``openssl`` command).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyscheduler.cluster import RedisServer, find_redis_server


def _need_redis() -> None:
    if find_redis_server() is None:
        pytest.fail(
            "redis-server is not installed: the cluster tests need a real Redis. Install it "
            "(Debian/Ubuntu: apt-get install redis-server; .ci/run does) or deselect them "
            "with -m 'not redis'",
            pytrace=False,
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.fail(
            "redis-py is not installed: pip install -e '.[dev]' (or '.[redis]'), "
            "or deselect the cluster tests with -m 'not redis'",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@dataclass
class RedisEnv:
    url: str
    prefix: str
    client: Any
    server: RedisServer


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


@pytest.fixture
def redis_env(redis_server: RedisServer) -> Iterator[RedisEnv]:
    client = _client(redis_server.url)
    env = RedisEnv(redis_server.url, f"t-{uuid.uuid4().hex[:10]}", client, redis_server)
    try:
        yield env
    finally:
        client.close()


@pytest.fixture
def own_redis() -> Iterator[RedisEnv]:
    _need_redis()
    server = RedisServer()
    server.start()
    client = _client(server.url)
    try:
        yield RedisEnv(server.url, "own", client, server)
    finally:
        client.close()
        server.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "the openssl command is not installed (Debian/Ubuntu: apt-get install openssl; "
            ".ci/run does); it makes the test certificate for rediss://",
            pytrace=False,
        )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key), str(cert)
