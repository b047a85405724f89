"""Processes on loopback for tests and benches: free ports, a process with a log file, waiting for an event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (loopback by default) that nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class WaitTimeout(AssertionError):
    """What ``wait_for`` raises when the event did not happen in time; a test reports it as a failure."""


class LiveProcess:
    """A child process in its own process group (so that stopping it stops what it forked), whose
    stdout and stderr go to ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed by stop())
        self.proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far."""
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        """Raise RuntimeError with the end of the log if the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")

    def terminate(self) -> None:
        """SIGTERM the process group, without waiting (``stop`` waits)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within ``timeout`` seconds."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()


def wait_for(
    predicate: Callable[[], T], timeout: float, what: str, *procs: LiveProcess, interval: float = 0.2
) -> T:
    """Poll until ``predicate()`` is truthy and return its value.

    On time-out raise ``WaitTimeout`` naming ``what``, with the latest output of ``procs``: the
    processes whose logs say why it did not happen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    logs = "\n\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in procs)
    raise WaitTimeout(f"timed out waiting for {what}\n{logs}")


def answers_http(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers a GET with a 2xx or 3xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except OSError:
        return False


def wait_http(url: str, timeout: float, proc: LiveProcess) -> None:
    """Wait until ``url`` answers; fail at once, with its log, if ``proc`` (the server) exits first."""

    def up() -> bool:
        proc.check_alive()
        return answers_http(url)

    wait_for(up, timeout, f"{proc.name} to answer {url}", proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
