"""The learner's lease while it starts up: renewed from a thread while the agent is built and a
checkpoint is read (seconds on a loaded host, longer than a short lease), and lost, with nothing
published, when another learner took it or the start-up ran past its limit."""

from __future__ import annotations

import time

import pytest

from trainer.lease import Lease, LeaseLost


def outlive(seconds: float) -> None:
    """Work that takes longer than the lease (what building the networks does on a loaded host)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)


def test_a_start_up_longer_than_the_lease_keeps_it(redis_client):
    lease = Lease(redis_client, "soulsai:test:lease:slow-start", 0.3)
    assert lease.acquire()
    with lease.kept_alive(limit_s=10):
        outlive(1.2)  # four lease lengths
    assert redis_client.get(lease.key) == lease.token.encode()
    assert lease.renew()
    lease.release()


def test_a_lease_taken_by_another_learner_meanwhile_is_lost(redis_client):
    lease = Lease(redis_client, "soulsai:test:lease:stolen", 0.3)
    assert lease.acquire()
    with pytest.raises(LeaseLost):
        with lease.kept_alive(limit_s=10):
            redis_client.set(lease.key, "the other learner", px=5000)
            outlive(0.5)
    assert redis_client.get(lease.key) == b"the other learner"  # not released by the loser
    redis_client.delete(lease.key)


def test_a_start_up_stuck_past_its_limit_gives_the_campaign_up(redis_client):
    lease = Lease(redis_client, "soulsai:test:lease:stuck", 0.3)
    assert lease.acquire()
    with pytest.raises(LeaseLost):
        with lease.kept_alive(limit_s=0.5):
            outlive(1.5)  # the renewals stop at 0.5 s; the key expires 0.3 s later
    assert redis_client.get(lease.key) is None  # free for a successor
