"""Run the client from a window: a Runner in a background thread, controlled without ever blocking.

The window (client_app.gui) calls ``start``, ``pause``, ``resume``, ``stop`` and ``run_doctor``,
and polls ``snapshot()`` and ``take_lines()`` a few times a second. Every call returns at once: the
env loop, the network and the doctor's checks run in their own threads. Nothing here knows about
Tkinter, so the same logic is tested without a display.

Pausing stops the env loop between two steps; the partial chunk goes into the spool and everything
in the spool keeps being sent. Stopping ends the run the way Ctrl-C does: the partial chunk goes into
the spool, which stays on disk, and the next start (or the next ``soulsai-client run``) resends
whatever the server has not acknowledged.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import queue
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from client_app.connection import http_url, websocket_url
from client_app.doctor import Check
from client_app.manners import MannersConfig
from client_app.progress import RunSnapshot
from client_app.runner import DEFAULT_SPOOL_MB, EXIT_FAILED, EXIT_OK, PAUSED_FOR_YOU, RunConfig, Runner

log = logging.getLogger(__name__)

BOSSES = {
    "SoulsGymIudex-v0": "Iudex Gundyr",
    "SoulsGymIudexDemo-v0": "Iudex Gundyr (both phases)",
    "soulsai/IudexArena-v0": "Iudex Gundyr (simulator)",
}


class StartError(ValueError):
    """The settings cannot start a run; the message says what to fix."""


def with_scheme(server: str) -> str:
    """A bare ``host[:port]`` as a URL: http:// for this machine or a private network, else https://."""
    if "://" in server:
        return server
    host = server.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    try:
        local = ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost" or host.endswith((".local", ".lan"))
    return ("http://" if local else "https://") + server


def check_settings(server: str, token: str) -> tuple[str, str]:
    """The server address and token, cleaned, or StartError with what to fix."""
    server, token = (server or "").strip(), (token or "").strip()
    if not server:
        raise StartError("Enter the server's address, e.g. https://soulsai.example.org")
    server = with_scheme(server)
    try:
        websocket_url(server)
    except ValueError as exc:
        raise StartError(str(exc).replace("--server", "the server address")) from None
    if not token:
        raise StartError("Paste your machine token: the campaign's page on the portal shows it when you join")
    if any(ch.isspace() for ch in token) or not token.isascii() or not token.isprintable():
        raise StartError("The token holds spaces or unusual characters: copy it again from the portal")
    return server, token


def boss_name(campaign: dict) -> str:
    """The boss a campaign fights, or its environment for the non-game campaigns."""
    if campaign.get("boss"):
        return str(campaign["boss"])
    env_id = str(campaign.get("env_id") or "")
    return BOSSES.get(env_id, f"no boss ({env_id})" if env_id else "")


def campaign_page(server: str, campaign: dict) -> str | None:
    """The absolute address of the campaign's page on the portal, if the welcome named it."""
    url = campaign.get("url") or (f"campaigns/{campaign['slug']}/" if campaign.get("slug") else None)
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        return url
    return http_url(server).rstrip("/") + "/" + url.lstrip("/")


def plain_error(text: str | None) -> str | None:
    """Say a network error in words a player understands (the original stays in the log)."""
    if not text:
        return text
    if re.search(r"Connect call failed|Connection refused|Errno 111|WinError 1225|10061", text):
        return "The server does not answer: check the address, or the server may be down (retrying)."
    if re.search(r"Name or service not known|getaddrinfo failed|nodename nor servname|Errno -[23]", text):
        return "The server's name cannot be found: check the address and your internet connection."
    if re.search(r"timed out|TimeoutError", text):
        return "The server takes too long to answer (retrying)."
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "The server's HTTPS certificate is not valid: check the address (https:// vs http://)."
    return text


@dataclass(frozen=True)
class DoctorReport:
    """The doctor's checks: running while they run, then the list."""

    running: bool = False
    checks: tuple[Check, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> int:
        return sum(not c.ok for c in self.checks)


@dataclass(frozen=True)
class ControllerSnapshot:
    """What the window shows, read in one go."""

    state: str  # idle | starting | running | paused | stopping | stopped | failed
    run: RunSnapshot | None  # the current or last run's figures
    exit_code: int | None  # the last run's exit code once it ended
    server: str = ""
    doctor: DoctorReport = field(default_factory=DoctorReport)

    @property
    def campaign_url(self) -> str | None:
        return campaign_page(self.server, self.run.campaign) if self.run and self.run.campaign else None


class _LineWriter(io.TextIOBase):
    """A text stream that hands complete lines to a queue (the runner's stdout and stderr)."""

    def __init__(self, lines: queue.SimpleQueue[str]):
        self._lines = lines
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *complete, self._buffer = self._buffer.split("\n")
        for line in complete:
            if line:
                self._lines.put(line)
        return len(text)


class _QueueHandler(logging.Handler):
    def __init__(self, lines: queue.SimpleQueue[str]):
        super().__init__(logging.INFO)
        self._lines = lines
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)


class Controller:
    """Owns at most one run at a time (a Runner in a daemon thread) and the doctor's checks."""

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._thread: threading.Thread | None = None
        self._server = ""
        self._stopping = False
        self._doctor = DoctorReport()
        self._doctor_thread: threading.Thread | None = None

    # -- the run -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True from ``start`` until the run's thread has ended."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, config: RunConfig) -> None:
        """Start a run in the background; StartError (readable) for bad settings or a run going on."""
        server, token = check_settings(config.server_url, config.token)
        with self._lock:
            if self.running:
                raise StartError("The client is already running: stop it first")
            config.server_url, config.token = server, token
            config.machine = (config.machine or "").strip()[:60] or "unnamed"
            writer = _LineWriter(self._lines)
            runner = Runner(config, out=writer, err=writer)
            self._runner, self._server, self._stopping = runner, server, False
            self._thread = threading.Thread(
                target=self._run, args=(runner,), name="soulsai-runner", daemon=True
            )
            self._thread.start()

    def _run(self, runner: Runner) -> None:
        try:
            runner.run()
        except OSError as exc:  # e.g. the spool folder cannot be written
            runner.last_error = f"cannot write the spool: {exc}"
            self._lines.put(f"error: {runner.last_error}")
        except Exception:
            log.exception("the client crashed; please report this with the log")

    def pause(self) -> None:
        """Stop playing after the current step; chunks waiting in the spool are still sent."""
        if self._runner is not None and self.running:
            self._runner.pause()

    def resume(self) -> None:
        if self._runner is not None and self.running:
            self._runner.resume()

    def stop(self) -> None:
        """Ask the run to end (partial chunk into the spool, spool kept); returns at once."""
        runner = self._runner
        if runner is not None and self.running:
            self._stopping = True
            runner.request_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run's thread to end (not from the window's thread); True when it has."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def snapshot(self) -> ControllerSnapshot:
        """The state and figures now; cheap and never blocking."""
        runner = self._runner
        run = runner.snapshot() if runner is not None else None
        if run is not None and run.last_error:
            run = replace(run, last_error=plain_error(run.last_error))
        exit_code = run.exit_code if run is not None else None
        if runner is None:
            state = "idle"
        elif self.running:
            if self._stopping:
                state = "stopping"
            elif run.phase == "paused":
                state = "paused"
            elif run.phase in ("playing", "waiting for the game window", PAUSED_FOR_YOU):
                state = "running"
            else:
                state = "starting"
        else:
            state = "stopped" if exit_code == EXIT_OK else "failed"
            if exit_code is None:  # the thread ended without an exit code: it crashed
                exit_code = EXIT_FAILED
        return ControllerSnapshot(
            state=state, run=run, exit_code=exit_code, server=self._server, doctor=self._doctor
        )

    # -- the log -----------------------------------------------------------------------------------

    def take_lines(self, limit: int = 500) -> list[str]:
        """Log and progress lines since the last call (at most ``limit``)."""
        lines: list[str] = []
        while len(lines) < limit:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        return lines

    def log_handler(self) -> logging.Handler:
        """A logging handler that feeds ``take_lines`` (attach it to the ``client_app`` logger)."""
        return _QueueHandler(self._lines)

    # -- the doctor --------------------------------------------------------------------------------

    def run_doctor(
        self, server: str | None = None, token: str | None = None, env_id: str | None = None
    ) -> bool:
        """Run ``soulsai-client doctor``'s checks in a thread; False if they are already running."""
        with self._lock:
            if self._doctor.running:
                return False
            self._doctor = DoctorReport(running=True)
            args = ((server or "").strip() or None, (token or "").strip() or None, env_id)
            self._doctor_thread = threading.Thread(
                target=self._doctor_main, args=args, name="soulsai-doctor", daemon=True
            )
            self._doctor_thread.start()
            return True

    def _doctor_main(self, server: str | None, token: str | None, env_id: str | None) -> None:
        from client_app.doctor import run_checks

        try:
            # Never creates a SoulsGym env (it writes the game's memory; closing it kills the character),
            # and says so while a run plays the game.
            checks = tuple(run_checks(env_id, server, token, create_env=False, playing=self.running))
            self._doctor = DoctorReport(checks=checks)
        except Exception as exc:  # a check that crashes is a bug, shown instead of a silent window
            log.exception("the checks crashed")
            self._doctor = DoctorReport(error=f"the checks crashed: {type(exc).__name__}: {exc}")
        failed = self._doctor.failed
        self._lines.put(
            "checks: " + ("all passed" if not failed and not self._doctor.error else f"{failed} failed")
        )

    def wait_doctor(self, timeout: float | None = None) -> bool:
        thread = self._doctor_thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()


def run_config(
    *,
    server: str,
    token: str,
    machine: str,
    spool_dir: str | Path | None = None,
    max_sps: float = 0.0,
    manners: MannersConfig | None = None,
    max_upload_kbps: float = 0.0,
    spool_max_mb: int = 0,
) -> RunConfig:
    """A RunConfig as the window starts it: progress lines every 5 s, run until stopped; ``manners``,
    ``max_upload_kbps`` and ``spool_max_mb``: the saved settings (0: no upload cap, the default spool)."""
    return RunConfig(
        server_url=server,
        token=token,
        machine=machine,
        spool_dir=Path(spool_dir) if spool_dir else None,
        max_sps=max_sps,
        manners=manners,
        max_upload_kbps=max_upload_kbps,
        spool_max_mb=spool_max_mb or DEFAULT_SPOOL_MB,
    )
