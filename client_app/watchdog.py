"""Keep playing when the game misbehaves: recreate the env and report the cut episode as truncated.

Dark Souls III crashes, SoulsGym loses track of the game (``InvalidPlayerStateError``,
``GameStateError``, pymem's ``MemoryReadError`` when a read hits a moved or closed process) and a
reset can hang for good (a stuck teleport, a lost window focus). ``ResilientEnv`` wraps the env so
that none of that stops the client: see its docstring for the exact contract.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

log = logging.getLogger(__name__)

#: Exception class names (anywhere in the exception's class hierarchy) that mean "the game is in a
#: bad state": soulsgym's and pymem's, matched by name because neither imports off Windows.
GAME_ERROR_NAMES = frozenset(
    {
        "SoulsGymException",
        "GameStateError",
        "InvalidStateError",
        "InvalidPlayerStateError",
        "InvalidBossStateError",
        "ResetNeeded",
        "LockOnFailure",
        "InjectionFailure",
        "RetriesExceededError",
        "MemoryReadError",
        "MemoryWriteError",
        "ProcessNotFound",
        "ProcessError",
        "WinAPIError",
        "PymemError",
    }
)


def is_game_error(exc: BaseException) -> bool:
    """True when the exception is one of SoulsGym's or pymem's game-state errors (by class name)."""
    return any(cls.__name__ in GAME_ERROR_NAMES for cls in type(exc).__mro__)


class EnvHung(TimeoutError):
    """A reset (or step) did not return within its time limit; ``thread`` is the one left running."""

    def __init__(self, message: str, thread: threading.Thread | None = None):
        super().__init__(message)
        self.thread = thread


class EnvUnrecoverable(RuntimeError):
    """The env kept failing after ``max_restarts`` recreations in a row: the client should stop."""


def _call_with_timeout(fn: Callable[[], Any], timeout: float | None, what: str) -> Any:
    """``fn()``, or EnvHung after ``timeout`` seconds (the hung call is left behind in its thread)."""
    if timeout is None:
        return fn()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed over to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"env-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise EnvHung(f"{what} did not return within {timeout:g} s", thread)
    if "error" in result:
        raise result["error"]
    return result["value"]


class ResilientEnv(gym.Wrapper):
    """An env that recreates itself when it fails, so that the episode loop carries on.

    Contract (what the caller sees):

    - ``step(action)``: when the wrapped env's ``step`` raises any ``Exception`` (or hangs past
      ``step_timeout_s``, if set), the wrapper closes that env (best effort, errors ignored),
      creates a fresh one with ``make()``, counts one restart and returns
      ``(last_obs, 0.0, False, True, info)``: the interrupted episode ends *truncated*, with the
      last observation the caller already saw as its final observation, and ``info`` holding
      ``"restarted": True`` and ``"restart_reason"`` (the error as text). The caller ends its
      current chunk as for any truncated episode (everything it made before stays valid) and calls
      ``reset()`` next, as always after an episode ends.
    - ``reset()``: when the wrapped env's ``reset`` raises, or does not return within
      ``reset_timeout_s``, the wrapper recreates the env and tries again; ``reset`` returns only
      a real first observation. The env left behind by a hung reset is abandoned (its thread keeps
      running; a game process cannot be interrupted from Python), not closed; ``on_abandon`` gets
      that thread, so that its key presses can be dropped (``gamewin.InputGate`` for SoulsGym).
    - When ``make()`` itself fails (the game is gone), that counts as a failed restart too.
    - After ``max_restarts`` failed attempts in a row with no successful reset in between,
      ``EnvUnrecoverable`` is raised with the last error: retrying cannot help, the volunteer must
      look at the game. A successful reset starts the count again.
    - ``restarts`` counts every recreation since the wrapper was made (reported in progress lines
      and stats); ``last_error`` is the latest failure as text. ``KeyboardInterrupt`` is never
      caught. Between attempts the wrapper sleeps ``restart_delay_s``, doubled per consecutive
      failure (capped at ``max_delay_s``), to give a restarting game time; ``give_up_after_s`` is
      the whole wait before ``EnvUnrecoverable`` (``envs.watchdog_settings`` sizes them per env:
      SoulsGym's first set-up and its 15-minute reloads take minutes, not 30 s).

    ``make`` is called once at construction; if that fails, the error propagates unchanged (a
    machine that cannot create the env at all is told why by ``make_env``).
    """

    def __init__(
        self,
        make: Callable[[], gym.Env],
        *,
        max_restarts: int = 5,
        reset_timeout_s: float | None = 120.0,
        step_timeout_s: float | None = None,
        restart_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        on_abandon: Callable[[threading.Thread | None], None] | None = None,
    ):
        super().__init__(make())
        self._make = make
        self.max_restarts = int(max_restarts)
        self.reset_timeout_s = reset_timeout_s
        self.step_timeout_s = step_timeout_s
        self.restart_delay_s = float(restart_delay_s)
        self.max_delay_s = float(max_delay_s)
        self.on_abandon = on_abandon
        self.restarts = 0
        self.last_error: str | None = None
        self._failures_in_a_row = 0
        self._last_obs: Any = None

    # -- gymnasium API -----------------------------------------------------------------------------

    def reset(self, **kwargs: Any):
        while True:
            try:
                obs, info = _call_with_timeout(
                    lambda: self.env.reset(**kwargs), self.reset_timeout_s, "reset"
                )
            except Exception as exc:
                self._recreate(exc, abandon=exc if isinstance(exc, EnvHung) else None)
                continue
            self._failures_in_a_row = 0
            self._last_obs = obs
            return obs, info

    def step(self, action: Any):
        try:
            obs, reward, terminated, truncated, info = _call_with_timeout(
                lambda: self.env.step(action), self.step_timeout_s, "step"
            )
        except Exception as exc:
            reason = self._recreate(exc, abandon=exc if isinstance(exc, EnvHung) else None)
            return self._last_obs, 0.0, False, True, {"restarted": True, "restart_reason": reason}
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    # -- recovery ----------------------------------------------------------------------------------

    @property
    def give_up_after_s(self) -> float:
        """How long, at most, the wrapper waits for the env to come back before giving up."""
        return sum(min(self.max_delay_s, self.restart_delay_s * 2**i) for i in range(self.max_restarts))

    def _recreate(self, exc: Exception, *, abandon: EnvHung | None) -> str:
        """Replace the env after ``exc``; raises EnvUnrecoverable past max_restarts in a row."""
        reason = original = f"{type(exc).__name__}: {exc}"
        kind = "the game failed" if is_game_error(exc) else "the environment failed"
        log.warning("%s (%s): restarting the environment", kind, reason)
        old = self.env
        if abandon is not None:
            if self.on_abandon is not None:
                self.on_abandon(abandon.thread)  # its key presses go nowhere from now on
        else:
            try:
                old.close()
            except Exception as close_exc:  # a crashed game often cannot be closed cleanly
                log.debug("closing the failed environment: %s", close_exc)
        while True:
            self._failures_in_a_row += 1
            self.last_error = reason
            if self._failures_in_a_row > self.max_restarts:
                raise EnvUnrecoverable(
                    f"the environment failed {self._failures_in_a_row} times in a row; last error: {reason}"
                ) from exc
            delay = min(self.max_delay_s, self.restart_delay_s * 2 ** (self._failures_in_a_row - 1))
            if delay > 0:
                time.sleep(delay)
            try:
                self.env = self._make()
            except Exception as make_exc:
                reason = f"{type(make_exc).__name__}: {make_exc}"
                log.warning("recreating the environment failed (%s)", reason)
                continue
            self.restarts += 1
            return original
