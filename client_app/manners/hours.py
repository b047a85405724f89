"""Configured hours: ``--hours 22:00-08:00`` plays only between 22:00 and 08:00, local time.

Several ranges are separated by commas (``12:00-13:30,22:00-08:00``); a range whose end comes before
its start runs across midnight. ``24:00`` may end a range. Pure: the caller passes the time of day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
DAY = 24 * 60


class HoursError(ValueError):
    """The text is not a list of HH:MM-HH:MM ranges; the message says what is wrong."""


@dataclass(frozen=True)
class Hours:
    """Ranges of the day, in minutes since midnight: ``(start, end)``, ``end < start`` across midnight."""

    ranges: tuple[tuple[int, int], ...]

    def contains(self, minute: float) -> bool:
        """Whether ``minute`` (minutes since local midnight, 0 <= minute < 1440) is inside a range."""
        for start, end in self.ranges:
            if start < end and start <= minute < end:
                return True
            if start > end and (minute >= start or minute < end):
                return True
        return False

    def next_start(self, minute: float) -> str:
        """The time of day, HH:MM, at which the next range starts after ``minute``."""
        start = min((s for s, _ in self.ranges), key=lambda s: (s - minute) % DAY)
        return _fmt(start)

    def __str__(self) -> str:
        return ",".join(f"{_fmt(s)}-{_fmt(e)}" for s, e in self.ranges)


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute(text: str, whole: str, *, end: bool) -> int:
    match = _TIME.match(text.strip())
    if not match:
        raise HoursError(f"{whole!r}: {text.strip()!r} is not a time of day; write HH:MM, e.g. 22:00-08:00")
    hour, minute = int(match[1]), int(match[2])
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not end)):
        raise HoursError(
            f"{whole!r}: {text.strip()} is not a time of day (00:00 to 23:59; 24:00 may end a range)"
        )
    return hour * 60 + minute


def parse_hours(text: str) -> Hours:
    """``"22:00-08:00"`` (or several, comma-separated) as Hours; HoursError with the reason otherwise."""
    whole = (text or "").strip()
    if not whole:
        raise HoursError("no hours given; write HH:MM-HH:MM, e.g. 22:00-08:00")
    ranges = []
    for part in whole.split(","):
        if part.count("-") != 1:
            raise HoursError(
                f"{whole!r}: {part.strip()!r} is not a range; write HH:MM-HH:MM, e.g. 22:00-08:00"
            )
        a, b = part.split("-")
        start, end = _minute(a, whole, end=False), _minute(b, whole, end=True) % DAY
        if start == end:
            raise HoursError(
                f"{whole!r}: {part.strip()} starts and ends at the same time; to play at any hour, leave the hours out"
            )
        ranges.append((start, end))
    return Hours(tuple(ranges))
