"""The campaign's public figures for the window: how often the agent wins, why staff paused it, news.

The portal's ``GET /api/campaigns/<slug>/`` and ``GET /api/announcements/`` (docs/api.md) are public: no token is sent. One background
thread asks every ``every`` seconds; the window reads ``latest()`` without waiting. A failed request
keeps the last answer: these figures are a courtesy, never a reason to stop playing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from client_app.connection import http_url

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024  # a campaign's JSON is about 1 KB
MIN_GAP_S = 5.0  # refresh() asks again at most this often
KEPT = (
    "status", "win_rate_recent", "boss_hp_left_recent", "wins_total", "episodes_total", "pause_reason",
    "win_rate_then", "win_rate_then_at", "win_rate_trend",
)  # fmt: skip
TREND_WORDS = {"up": "▲ up from", "down": "▼ down from", "flat": "● about the same as"}  # the portal's cards
# Django's timesince units, largest first: naturaltime words the trend's date with two adjacent ones.
_UNITS = (
    (365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"), (3600, "hour"),
    (60, "minute"),
)  # fmt: skip


def api_url(server: str, slug: str) -> str:
    return http_url(server) + "api/campaigns/" + urllib.parse.quote(slug, safe="") + "/"


def fetch(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The campaign's figures that the window shows (KEPT); raises OSError or ValueError on failure."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) from http_url
        body = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise ValueError("the campaign's figures are too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("the campaign's figures are not an object")
    return {key: data.get(key) for key in KEPT}


def announcements_url(server: str) -> str:
    return http_url(server) + "api/announcements/"


def fetch_news(url: str, *, timeout: float = 10.0) -> str:
    """The newest announcement as one line ('Title: its text', at most 300 characters), '' when none."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) from http_url
        body = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise ValueError("the announcements are too large")
    items = json.loads(body).get("announcements") or []
    if not items or not isinstance(items[0], dict):
        return ""
    first = items[0]
    line = " ".join(f"{first.get('title') or ''}: {first.get('text') or ''}".split()).strip(": ")
    return "".join(ch for ch in line if ch.isprintable())[:300]


def ago_words(then: datetime, now: datetime) -> str:
    """How long ago ``then`` was, worded as the portal's pages word it (Django's naturaltime, in the past):
    'an hour ago', '23 hours ago', '1 day, 1 hour ago'."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return "a minute ago" if seconds < 120 else f"{seconds // 60} minutes ago"
    if seconds < 86400:
        return "an hour ago" if seconds < 7200 else f"{seconds // 3600} hours ago"
    parts: list[str] = []
    for size, name in _UNITS:
        count, seconds = divmod(seconds, size)
        if parts and not count:
            break  # timesince's two units are adjacent ones: "1 week" rather than "1 week, 3 hours"
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        if len(parts) == 2:
            break
    return ", ".join(parts) + " ago"


def trend_words(figures: dict[str, Any], now: datetime | None = None) -> str:
    """'▲ up from 12% 1 day ago' as the portal's campaign cards say it, '' when there is no trend yet."""
    words, then = TREND_WORDS.get(figures.get("win_rate_trend") or ""), figures.get("win_rate_then")
    if words is None or not isinstance(then, (int, float)):
        return ""
    try:
        then_at = datetime.fromisoformat(str(figures.get("win_rate_then_at")))
    except ValueError:
        return f"{words} {then * 100:.0f}%"
    if then_at.tzinfo is None:
        then_at = then_at.replace(tzinfo=UTC)
    return f"{words} {then * 100:.0f}% {ago_words(then_at, now or datetime.now(UTC))}"


def win_rate_words(figures: dict[str, Any], now: datetime | None = None) -> str:
    """'74% of the last 100 fights (boss HP left 18%), ▲ up from 12% 1 day ago', or '' when there is no win
    rate (not a boss fight)."""
    rate = figures.get("win_rate_recent")
    if not isinstance(rate, (int, float)):
        return ""
    text = f"{rate * 100:.0f}% of the last 100 fights"
    boss = figures.get("boss_hp_left_recent")
    if isinstance(boss, (int, float)):
        text += f" (boss HP left {boss * 100:.0f}%)"
    trend = trend_words(figures, now)
    return f"{text}, {trend}" if trend else text


class CampaignInfo:
    """Polls the campaign's public figures in a daemon thread until ``stop()``."""

    def __init__(self, server: str, slug: str, *, every: float = 30.0):
        self.url = api_url(server, slug)
        self.news_url = announcements_url(server)
        self.every = every
        self._latest: dict[str, Any] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._asked = 0.0  # time.monotonic() of the latest request
        self._thread = threading.Thread(target=self._loop, name="soulsai-campaign-info", daemon=True)
        self._thread.start()

    def latest(self) -> dict[str, Any]:
        return dict(self._latest)

    def refresh(self) -> None:
        """Ask again now (the campaign's status changed: its pause reason is news), at most every MIN_GAP_S."""
        if time.monotonic() - self._asked >= MIN_GAP_S:
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._asked = time.monotonic()
            try:
                latest = fetch(self.url)
            except (OSError, ValueError) as exc:
                log.debug("campaign figures from %s: %s", self.url, exc)
            else:
                try:
                    latest["news"] = fetch_news(self.news_url)
                except (OSError, ValueError, AttributeError) as exc:
                    latest["news"] = self._latest.get("news", "")
                    log.debug("announcements from %s: %s", self.news_url, exc)
                self._latest = latest
            self._wake.wait(self.every)
            self._wake.clear()
