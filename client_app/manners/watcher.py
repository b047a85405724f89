"""The manners poll: a daemon thread reads the sources and keeps the policy's latest verdict.

The env loop only reads ``Watcher.verdict`` (one attribute) between steps: a slow /proc scan or an X
server that takes its time never holds up a step. Input is read every ``poll_s`` (1 s), programs every
``programs_every_s`` (5 s); the hours need no source.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable

from client_app.manners.idle import InputSource, Unavailable, input_source
from client_app.manners.policy import PLAY, MannersConfig, Policy, Reading, Verdict
from client_app.manners.programs import ProgramWatch

log = logging.getLogger(__name__)


def local_minute() -> float:
    now = datetime.datetime.now()
    return now.hour * 60 + now.minute + now.second / 60


class Watcher:
    """Polls the sources of ``config`` in a thread; ``verdict`` says whether to pause, and why.

    ``fight``: a SoulsGym fight (the client's own key presses do not count as input). ``inputs`` and
    ``programs`` replace the machine's own sources (None: this OS's), ``minute`` the local clock.
    Sources that cannot work here are said once through ``say`` and left out.
    """

    def __init__(
        self,
        config: MannersConfig,
        *,
        fight: bool = False,
        say: Callable[[str], None] | None = None,
        inputs: InputSource | None = None,
        programs: ProgramWatch | None = None,
        minute: Callable[[], float] = local_minute,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 1.0,
        programs_every_s: float = 5.0,
        started: float | None = None,
    ):
        self.config, self.fight = config, fight
        self.say = say or log.info
        self.minute, self.clock = minute, clock
        self.poll_s, self.programs_every_s = poll_s, programs_every_s
        # Input counts from ``started`` on (default: now): the key press that started the client does not.
        self.policy = Policy(config, started=clock() if started is None else started)
        self.verdict: Verdict = PLAY
        self.unavailable: list[str] = []  # what could not be watched here, and why
        self._inputs, self._programs = inputs, programs
        self._running: tuple[str, ...] = ()
        self._next_programs = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False

    def _open(self) -> None:
        """Find the sources (in the poll's thread: an X connection stays in the thread that made it)."""
        self._opened = True
        if self.config.pause_on_input and self._inputs is None:
            try:
                self._inputs = input_source(fight=self.fight)
            except Unavailable as exc:
                self._unavailable(f"pausing on keyboard or mouse input is off: {exc}")
        if self.config.pause_while and self._programs is None:
            try:
                self._programs = ProgramWatch(self.config.pause_while)
            except Unavailable as exc:
                self._unavailable(f"pausing while {', '.join(self.config.pause_while)} runs is off: {exc}")

    def _unavailable(self, text: str) -> None:
        self.unavailable.append(text)
        self.say(text)

    def poll(self) -> Verdict:
        """Read the sources once and update ``verdict`` (the thread calls this; so can ``status``)."""
        if not self._opened:
            self._open()
        now = self.clock()
        idle = None
        if self.config.pause_on_input and self._inputs is not None:
            try:
                idle = self._inputs.idle_seconds()
            except Exception as exc:  # a source must never end the run
                log.debug("input source failed: %s", exc)
        if self._programs is not None and now >= self._next_programs:
            self._next_programs = now + self.programs_every_s
            try:
                self._running = self._programs.running()
            except Exception as exc:
                log.debug("program watch failed: %s", exc)
        verdict = self.policy.decide(
            now, Reading(idle_s=idle, programs=self._running, minute_of_day=self.minute())
        )
        self.verdict = verdict
        return verdict

    # -- the thread --------------------------------------------------------------------------------

    def start(self) -> Watcher:
        if self.config.watches_anything and self._thread is None:
            self._thread = threading.Thread(target=self._main, name="soulsai-manners", daemon=True)
            self._thread.start()
        return self

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a bug here must not stop the run: log it, keep the last verdict
                log.exception("the pause check failed")
            self._stop.wait(self.poll_s)
        if self._inputs is not None:
            self._inputs.close()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
