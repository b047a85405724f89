"""What a run shows the volunteer: the command line's progress line and the window's figures.

Both read the same run (``client_app.runner.Runner``) and word the connection the same way
(``connection_label``). The command line prints ``progress_line`` every few seconds; the window
polls ``Runner.snapshot()``, a ``RunSnapshot``, a few times a second. Nothing here touches the
network or the env: these are figures and words only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client_app.policy import describe

if TYPE_CHECKING:
    from client_app.connection import ConnectionState
    from client_app.policy import Policy, RandomPolicy


@dataclass(frozen=True)
class RunSnapshot:
    """The live figures of one run, consistent enough for a window to show (``Runner.snapshot()``)."""

    phase: str  # starting | playing | paused (by the volunteer) | paused for you (manners) | finished
    connection: str  # connecting | connected | retrying | server busy | paused | stopped | failed
    campaign: dict[str, Any]  # the welcome's campaign (name, slug, env_id, algorithm, url); {} before it
    model_version: int  # the model this client plays; 0: random moves, no model yet
    server_model_version: int  # the newest model the server announced
    steps: int
    steps_per_s: float  # over the last few seconds
    episodes: int
    wins: int
    mean_return: float | None  # mean return of the last 10 episodes this machine played
    last_return: float | None
    spool: int  # chunks waiting on disk for the server's ack
    spool_dir: str | None
    acked: int  # chunks the server acknowledged in this run
    rejected: int  # chunks the server refused for good
    restarts: int  # game (env) restarts by the watchdog
    last_error: str | None  # the latest problem, as the client would print it
    exit_code: int | None  # set once the run is over
    pause_reasons: tuple[str, ...] = ()  # why the run makes way for the person at the machine (manners)
    held_back: str | None = None  # why a cap holds data back now (upload cap, spool full), in words


def connection_label(state: ConnectionState) -> str:
    """How the connection stands, in the words the progress line and the window show."""
    if state.fatal is not None:
        return "failed"
    if state.state == "connected" and state.campaign_status != "running":
        return state.campaign_status  # paused (or stopped) by the campaign's admins
    if state.state == "connected" and state.hold_s > 0:
        return "server busy"
    return state.state


def connection_label_words(label: str, campaign: dict | None = None) -> str:
    """connection_label as the window says it to a volunteer: pacing is normal, a pause is the staff's."""
    if label == "server busy":
        return "connected (the server paces its clients: normal)"
    if label == "paused":
        reason = str((campaign or {}).get("pause_reason") or "").strip()
        return "paused by the campaign's staff" + (f": {reason}" if reason else "")
    return label


class RecentRate:
    """Steps per second over the last five seconds or so: the window's figure, sampled at each poll."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)

    def update(self, now: float, steps: int) -> float:
        """Add the sample ``(now, steps)`` and return the rate since the oldest one kept (0.0 at first)."""
        samples = self._samples
        samples.append((now, steps))
        while len(samples) > 2 and now - samples[1][0] >= 5.0:
            samples.popleft()
        t0, steps0 = samples[0]
        return (steps - steps0) / (now - t0) if now - t0 > 0.05 else 0.0


def progress_line(
    state: ConnectionState,
    *,
    paused: bool,
    policy: Policy | RandomPolicy | None,
    steps: int,
    steps_per_s: float,
    episodes: int,
    returns: Sequence[float],
    wins: int,
    eval_episodes: int,
    spool: int,
    restarts: int,
    note: str | None = None,
    pause_reasons: Sequence[str] = (),
) -> str:
    """One line: connection, model, steps (and steps/s), episodes, recent return, spool.

    ``steps_per_s`` is over the time since the previous line; ``returns`` are the last episodes'.
    Figures that are usually zero (wins, evaluation episodes, game restarts, rejects) show only once
    they are not.
    """
    conn = connection_label(state)
    if paused:
        conn += " (paused by you)"
    elif pause_reasons:
        conn += " (paused for you: " + "; ".join(pause_reasons) + ")"
    model = describe(policy) if policy is not None else "none"
    if policy is not None and state.server_model_version > policy.version:
        model += f" (server has v{state.server_model_version})"
    mean = f"{sum(returns) / len(returns):.1f}" if returns else "-"
    parts = [
        conn,
        f"model {model}",
        f"{steps:,} steps ({steps_per_s:,.0f}/s)" if math.isfinite(steps_per_s) else f"{steps:,} steps",
        f"{episodes:,} episodes",
        f"mean return {mean} (last {len(returns)})",
        f"spool {spool}",
    ]
    if wins:
        parts.append(f"{wins} won")
    if eval_episodes:
        parts.append(f"{eval_episodes} evaluation episodes")
    if restarts:
        parts.append(f"{restarts} game restarts")
    if state.rejected:
        parts.append(f"{state.rejected} rejected")
    if state.upload_capped:
        parts.append(f"upload capped at {state.upload_kbps:g} KB/s")
    if note:
        parts.append(note)
    return " | ".join(parts)
