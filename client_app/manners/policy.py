"""The pure rule that turns what the sources read into "pause, because …" (no I/O, no clock of its own).

The watcher (``watcher.py``) reads the sources about once a second and hands the reading, with the
time, to ``Policy.decide``; tests hand it readings and times of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from client_app.manners.hours import Hours

DEFAULT_IDLE_MINUTES = 3.0


@dataclass(frozen=True)
class MannersConfig:
    """When the client makes way for the person at the machine (one field per command-line option)."""

    pause_on_input: bool = True  # pause on keyboard or mouse input (--no-pause-on-input turns it off)
    idle_minutes: float = DEFAULT_IDLE_MINUTES  # ... and play again after this long without input
    pause_while: tuple[str, ...] = ()  # program names: pause while any of them runs (--pause-while)
    hours: Hours | None = None  # play only within these hours, local time (--hours); None: any hour

    @property
    def watches_anything(self) -> bool:
        return self.pause_on_input or bool(self.pause_while) or self.hours is not None

    def describe(self) -> str:
        """The settings in one line, as ``status`` and the start of a run say them."""
        parts = []
        if self.pause_on_input:
            parts.append(f"on keyboard or mouse input, until {_minutes(self.idle_minutes)} without input")
        if self.pause_while:
            parts.append("while " + ", ".join(self.pause_while) + " runs")
        if self.hours is not None:
            parts.append(f"outside {self.hours}")
        return "pauses " + "; ".join(parts) if parts else "never pauses by itself"


@dataclass(frozen=True)
class Reading:
    """What the sources said at one poll."""

    idle_s: float | None  # seconds since the person's last keyboard or mouse input; None: cannot tell
    programs: tuple[str, ...] = ()  # the configured programs that run now
    minute_of_day: float = 0.0  # local time, minutes since midnight


@dataclass(frozen=True)
class Verdict:
    paused: bool
    reasons: tuple[str, ...] = ()  # why, in words for the volunteer; empty when playing

    def __str__(self) -> str:
        return "; ".join(self.reasons) if self.paused else "playing"


PLAY = Verdict(False)


class Policy:
    """Combines the sources: paused while any says the person needs the machine.

    Input only counts once it comes after ``started`` (the run's start, monotonic seconds): the key
    press or click that started the client does not pause it.
    """

    def __init__(self, config: MannersConfig, *, started: float):
        self.config = config
        self.started = started

    def decide(self, now: float, reading: Reading) -> Verdict:
        config, reasons = self.config, []
        idle = reading.idle_s
        if config.pause_on_input and idle is not None and idle < now - self.started:
            wait = config.idle_minutes * 60.0
            if idle < wait:
                reasons.append(
                    f"you used the keyboard or mouse {_seconds(idle)} ago "
                    f"(plays again after {_minutes(config.idle_minutes)} without input)"
                )
        for name in reading.programs:
            reasons.append(f"{name} is running")
        hours = config.hours
        if hours is not None and not hours.contains(reading.minute_of_day):
            reasons.append(
                f"outside the hours you set ({hours}; plays again at {hours.next_start(reading.minute_of_day)})"
            )
        return Verdict(bool(reasons), tuple(reasons)) if reasons else PLAY


def _seconds(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


def _minutes(m: float) -> str:
    return f"{m:g} min" if m >= 1 else f"{m * 60:g} s"
