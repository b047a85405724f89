"""The upload cap: a token bucket the sender asks before each frame (``--max-upload-kbps``).

Frames are never split: the relay takes a chunk as one websocket message. A frame waits until the
bucket holds its size in bytes (at most one second's allowance, so a frame bigger than that still
goes, only later), and its bytes are then taken even if that leaves the bucket in debt: the next
frame waits for the debt to be paid. Over any stretch of T seconds at most ``rate * T`` bytes plus
one second's allowance go out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

KB = 1024  # --max-upload-kbps counts KB of 1024 bytes, as --spool-max-mb counts MB of 1024 KB


class TokenBucket:
    """``rate`` bytes per second on average, bursts of at most ``burst`` bytes (default: one second's).

    ``clock`` is the monotonic clock (a test passes its own); not thread-safe (the sender's loop owns it).
    """

    def __init__(
        self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ):
        if not rate > 0:
            raise ValueError(f"the upload cap must be more than 0 bytes/s, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def reserve(self, size: int) -> float:
        """Take ``size`` bytes' tokens; returns the seconds to wait before sending them (0: now)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        wait = max(0.0, (min(size, self.burst) - self._tokens) / self.rate)
        self._tokens -= size
        return wait
