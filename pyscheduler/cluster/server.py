"""A throwaway ``redis-server`` for tests, ``simulate --instances`` and ``bench --cluster``.

It listens on 127.0.0.1 only, on a free port, keeps nothing on disk
(``--save '' --appendonly no``) and runs in a temporary directory that
:meth:`RedisServer.close` removes. ``stop()``/``start()`` restart it empty on
the same port, as a Redis without persistence comes back after a crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServerError", "find_redis_server"]


class RedisServerError(RuntimeError):
    """``redis-server`` is missing or did not start."""


def find_redis_server() -> str | None:
    """The path of ``redis-server`` (``$PYSCHEDULER_REDIS_SERVER`` first, then ``PATH``)."""
    explicit = os.environ.get("PYSCHEDULER_REDIS_SERVER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; ``url`` connects to it.

    ``password`` turns on ``requirepass`` (the URL then carries it).
    ``tls=(cert_file, key_file, ca_file)`` serves TLS only (``--port 0
    --tls-port``); the URL is then ``rediss://`` and trusts ``ca_file``.
    ``extra_args`` are passed to ``redis-server`` as they are.
    """

    def __init__(
        self,
        *,
        executable: str | None = None,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        exe = executable or find_redis_server()
        if not exe:
            raise RedisServerError(
                "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server); "
                "install it or give the URL of a running Redis"
            )
        self.executable = exe
        self.port = port or _free_port()
        self.password = password
        self.tls = None if tls is None else tuple(str(f) for f in tls)
        self.extra_args = tuple(extra_args)
        self.directory = Path(tempfile.mkdtemp(prefix="pyscheduler-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls[2]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _argv(self) -> list[str]:
        if self.tls is not None:
            cert, key, ca = self.tls
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                     "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        else:
            ports = ["--port", str(self.port)]
        argv = [
            self.executable,
            *ports,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            "--loglevel", "warning",
            "--daemonize", "no",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        return argv + list(self.extra_args)

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (empty) and wait until it answers."""
        if self.running:
            return self
        self._proc = subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                raise RedisServerError(
                    f"redis-server exited with status {self._proc.returncode} on port {self.port}: "
                    f"{err.strip() or self._log_tail()}"
                )
            if self._answers():
                return self
            time.sleep(0.01)
        self.kill()
        raise RedisServerError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=self.tls[2])
                    context.check_hostname = False
                    with context.wrap_socket(raw) as s:
                        s.sendall(b"PING\r\n")
                        reply = s.recv(64)
                else:
                    raw.sendall(b"PING\r\n")
                    reply = raw.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); its data is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> RedisServer:
        """Stop and start again, empty, on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
