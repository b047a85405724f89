"""The platform's processes: their command lines, and a small supervisor for `manage.py runplatform`.

The ``*_argv`` functions are the one definition of how the ASGI server, a Celery worker, Celery
beat and a client are started; `runplatform`, the test suite and the benches (through ``harness``)
all build their command lines here, so that a test starts what `make run` starts.

The supervisor starts processes, prefixes their output and stops them all. Each child runs in its own session (process group), so that stopping it also stops whatever it
forked (Celery's pool, uvicorn's reloader), and Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order: nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from client_app.protocol.framing import MAX_FRAME_BYTES

# The largest websocket message the server reads: the relay's frame cap plus room for a frame just
# over it to get the relay's readable `too_large` refusal; anything larger is closed (1009) unread.
WS_MAX_SIZE = MAX_FRAME_BYTES + 64 * 1024


def uvicorn_argv(*, host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The ASGI server (relay, pages and API) serving ``portal.asgi`` on host:port.

    Proxy headers are the portal's to judge (``SOULSAI_TRUSTED_PROXIES``, portal.core.clients):
    uvicorn's own handling would believe any X-Forwarded-For from loopback.
    """
    return [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", host, "--port", str(port),
            "--no-access-log", "--lifespan", "off", "--no-proxy-headers", "--ws-max-size", str(WS_MAX_SIZE),
            *extra]


# Learners (one thread each, for as long as a campaign runs) and beat's periodic tasks
# (CELERY_TASK_ROUTES) run on separate workers in `make run`, so that learners never starve the stats.
LEARNER_QUEUES = ("learner", "celery")
PERIODIC_QUEUES = ("periodic",)


def celery_worker_argv(
    *,
    concurrency: int = 4,
    beat_schedule: Path | None = None,
    node_name: str | None = None,
    queues: Sequence[str] = (*LEARNER_QUEUES, *PERIODIC_QUEUES),
) -> list[str]:
    """A Celery worker on ``queues`` (by default all: learners and periodic tasks), in threads.

    With ``beat_schedule`` it embeds beat (``-B``), keeping beat's schedule in that file.
    """
    argv = [sys.executable, "-m", "celery", "-A", "portal", "worker"]
    if beat_schedule is not None:
        argv.append("-B")
    argv += ["-Q", ",".join(queues), "-P", "threads", "-c", str(concurrency)]
    if node_name:
        argv += ["-n", node_name]
    argv += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if beat_schedule is not None:
        argv += ["-s", str(beat_schedule)]
    return argv


def celery_beat_argv(*, schedule: Path) -> list[str]:
    """Celery beat on its own, keeping its schedule in ``schedule``."""
    return [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO", "-s", str(schedule)]


def client_argv(*, server: str, spool_dir: Path, name: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The volunteer client (``python -m client_app run``) as a volunteer runs it; the token is not
    on it (every user of the machine can read a command line): see ``client_env``."""
    argv = [sys.executable, "-m", "client_app", "run", "--server", server]
    if name:
        argv += ["--name", name]
    return [*argv, "--spool-dir", str(spool_dir), *extra]


def client_env(env: Mapping[str, str], *, token: str) -> dict[str, str]:
    """``env`` with the machine token in ``SOULSAI_TOKEN``, where the client reads it."""
    return {**env, "SOULSAI_TOKEN": token}


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    essential: bool = True  # the platform stops when an essential child dies; others are restarted
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    _pump: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, *, out=None, width: int = 9):
        self.children: list[Child] = []
        self.out = out or sys.stdout
        self.width = width
        self._lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        with self._lock:
            try:
                self.out.write(f"{name:<{self.width}}| {line}\n")
                self.out.flush()
            except (OSError, ValueError):
                pass  # the terminal is gone (SIGHUP): keep draining the children's output, keep stopping

    def start(self, child: Child) -> Child:
        child.proc = subprocess.Popen(
            child.argv,
            env=child.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            bufsize=1,
            text=True,
            errors="replace",
        )
        child.started_at = time.monotonic()
        child._pump = threading.Thread(target=self._pump_output, args=(child, child.proc), daemon=True)
        child._pump.start()
        if child not in self.children:
            self.children.append(child)
        return child

    def _pump_output(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.say(child.name, line.rstrip("\n"))

    def check(self) -> Child | None:
        """Restart dead non-essential children; return the first essential child that died."""
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            if child.essential:
                return child
            if time.monotonic() - child.started_at > 5:
                child.restarts += 1
                self.say(child.name, f"exited with code {child.proc.returncode}; restarting (#{child.restarts})")
                self.start(child)
        return None

    def stop_all(self, timeout: float = 15.0) -> int:
        """SIGTERM every child's process group (newest first), then SIGKILL what is left."""
        alive = [c for c in reversed(self.children) if c.proc is not None and c.proc.poll() is None]
        for child in alive:
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in alive:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(child.name, "did not stop in time: killing it")
        for child in self.children:
            # Also sweep the group, in case a grandchild outlived its parent.
            self._signal(child, signal.SIGKILL)
            if child.proc is not None:
                child.proc.wait()
        return len(alive)

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        if child.proc is None:
            return
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
