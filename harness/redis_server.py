"""The operator's Redis configuration (``deploy/redis/redis.conf``), run for real by tests and benches.

Debian's ``redis-server`` with that very file, only what must differ on a shared machine overridden
on the command line (address, port, data folder, log and pid file), so a test or a bench keeps what
the file chooses: the append-only file, its fsync policy, ``maxmemory`` with ``noeviction``.

    server = start_redis_server(tmp_path / "redis")
    server.url                           # redis://127.0.0.1:PORT/0
    server.kill(); server = server.restart()   # SIGKILL, then start again from the append-only file
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

import redis

from harness.processes import ROOT, LiveProcess, free_port, wait_for

REDIS_SERVER = "/usr/bin/redis-server"
CONF = ROOT / "deploy" / "redis" / "redis.conf"


def redis_server_missing() -> str | None:
    """Why Debian's redis-server cannot be started here (a sentence), or None if it can."""
    if not os.access(REDIS_SERVER, os.X_OK):
        return f"{REDIS_SERVER} not found: apt-get install redis-server"
    return None


class RedisServer(LiveProcess):
    """redis-server with deploy/redis/redis.conf; ``url``, ``client()``, ``kill()``, ``restart()``."""

    folder: Path
    host: str
    port: int
    url: str
    extra: tuple[str, ...]
    password: str | None

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write; only what is in the append-only file survives."""
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def restart(self, timeout: float = 30) -> RedisServer:
        """A new server on the same folder and port: it loads the append-only file."""
        return start_redis_server(
            self.folder, host=self.host, port=self.port, extra=self.extra, password=self.password, timeout=timeout
        )


def start_redis_server(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra: Sequence[str] = (),
    password: str | None = None,
    timeout: float = 30,
) -> RedisServer:
    """redis-server with the operator's file on ``host``:``port`` (a free one by default), its data in
    ``folder``; ``extra`` are more ``--name value`` overrides; ``password``: its ``requirepass``, as the
    file asks of a server other hosts reach (protected mode refuses them without one). Returned once
    it answers PING."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    argv = [REDIS_SERVER, str(CONF), "--bind", host, "--port", str(port), "--dir", str(folder),
            "--logfile", "", "--pidfile", str(folder / "redis.pid"), *extra]  # fmt: skip
    if password:
        argv += ["--requirepass", password]
    server = RedisServer("redis", argv, os.environ, folder)
    server.folder, server.host, server.port, server.extra = folder, host, port, tuple(extra)
    server.password = password
    server.url = f"redis://:{password}@{host}:{port}/0" if password else f"redis://{host}:{port}/0"

    def answers() -> bool:
        server.check_alive()
        try:
            return bool(server.client().ping())
        except redis.RedisError:
            return False

    try:
        wait_for(answers, timeout, "redis-server to answer PING", server)
    except BaseException:
        server.stop()
        raise
    return server
