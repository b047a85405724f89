"""The upload cap's token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from client_app.pacing import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_seconds_allowance_goes_at_once_then_frames_wait_for_their_bytes():
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)  # 1000 bytes/s, a burst of one second's
    assert bucket.reserve(600) == 0
    assert bucket.reserve(400) == 0
    assert bucket.reserve(500) == pytest.approx(0.5)  # the bucket is empty: 500 bytes take 0.5 s
    clock.now += 0.5
    assert bucket.reserve(250) == pytest.approx(0.25)
    clock.now += 10  # idle time fills the bucket up to one second's allowance, no more
    assert bucket.reserve(1000) == 0
    assert bucket.reserve(1) == pytest.approx(0.001)


def test_a_frame_bigger_than_the_burst_still_goes_and_the_next_pays_its_debt():
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    assert bucket.reserve(100) == 0
    assert bucket.reserve(3000) == pytest.approx(0.1)  # waits for a full bucket, not for 3000 bytes
    clock.now += 0.1
    assert bucket.reserve(1000) == pytest.approx(3.0)  # 2000 bytes of debt, then its own 1000


def test_the_average_over_many_frames_stays_under_the_rate():
    clock = Clock()
    bucket = TokenBucket(2048, clock=clock)
    start, sent = clock.now, 0
    for size in [700, 1500, 64, 5000, 300] * 40:
        clock.now += bucket.reserve(size)  # the sender sleeps, then sends
        sent += size
    assert sent <= 2048 * (clock.now - start) + 2048  # rate * time + one second's burst
    assert sent >= 2048 * (clock.now - start) * 0.95  # and the cap does not hold back much more


@pytest.mark.parametrize("rate", [0, -5])
def test_a_cap_of_nothing_is_refused(rate):
    with pytest.raises(ValueError, match="more than 0"):
        TokenBucket(rate)
