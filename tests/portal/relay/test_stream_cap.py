"""At the stream's hard cap the relay refuses new chunks rather than trimming acked ones."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from client_app import protocol as P
from client_app.protocol.codes import MAX_WAIT_MS
from portal.core.redis import get_async_redis
from portal.relay import services
from portal.relay.store import StoreOutcome
from trainer.keys import CampaignKeys


def chunk(chunk_id: str) -> tuple[P.Chunk, bytes]:
    c = P.Chunk(
        id=chunk_id,
        model_version=0,
        obs=np.zeros((5, 4), np.float32),
        actions=np.zeros(4, np.int64),
        rewards=np.ones(4, np.float32),
    )
    return c, P.pack(c.to_message())


def store(campaign_id: int, chunk_id: str) -> services.StoreResult:
    async def go():
        c, frame = chunk(chunk_id)
        return await services.chunk_store(
            client=get_async_redis(), campaign_id=campaign_id, machine_id=1, frame=frame, chunk=c
        )

    return asyncio.run(go())


@pytest.mark.django_db
def test_a_full_stream_refuses_new_chunks_and_keeps_every_acked_one(cartpole_campaign, redis_client, settings):
    settings.SOULSAI_STREAM_MAXLEN = 3
    keys = CampaignKeys(cartpole_campaign.id)
    assert [store(cartpole_campaign.id, f"c-{i}").outcome for i in range(3)] == [StoreOutcome.STORED] * 3

    refused = store(cartpole_campaign.id, "c-3")
    assert refused.outcome == StoreOutcome.FULL and not refused.acked
    assert not redis_client.exists(keys.dedup(1, "c-3")), "a refused chunk must not count as stored"
    # A resend of a chunk that is stored is still acknowledged, full or not.
    assert store(cartpole_campaign.id, "c-0").outcome == StoreOutcome.DUPLICATE
    ids = [P.unpack(fields[b"c"])["id"] for _, fields in redis_client.xrange(keys.stream)]
    assert ids == ["c-0", "c-1", "c-2"]
    assert int(redis_client.hget(keys.stats, "samples")) == 12

    # Once the learner took an entry (XACK + XDEL), the refused chunk goes in on its resend.
    redis_client.xdel(keys.stream, redis_client.xrange(keys.stream, count=1)[0][0])
    assert store(cartpole_campaign.id, "c-3").outcome == StoreOutcome.STORED
    assert int(redis_client.hget(keys.stats, "samples")) == 16


@pytest.mark.django_db
def test_the_stream_is_capped_in_bytes_too_and_keeps_every_acked_chunk(cartpole_campaign, redis_client, settings):
    settings.SOULSAI_STREAM_MAX_BYTES = 4096
    keys = CampaignKeys(cartpole_campaign.id)
    outcomes = [store(cartpole_campaign.id, f"b-{i}").outcome for i in range(40)]
    stored = outcomes.count(StoreOutcome.STORED)
    assert 1 <= stored < 40 and outcomes[stored:] == [StoreOutcome.FULL] * (40 - stored), outcomes
    ids = [P.unpack(fields[b"c"])["id"] for _, fields in redis_client.xrange(keys.stream)]
    assert ids == [f"b-{i}" for i in range(stored)]
    assert int(redis_client.hget(keys.stats, "samples")) == 4 * stored


@pytest.mark.django_db
def test_entries_the_learner_holds_are_not_backlog_but_count_toward_the_cap(cartpole_campaign, redis_client, settings):
    settings.SOULSAI_STREAM_HIGH_WATER = 2
    settings.SOULSAI_STREAM_MAXLEN = 6
    keys = CampaignKeys(cartpole_campaign.id)
    redis_client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    results = [store(cartpole_campaign.id, f"h-{i}") for i in range(4)]
    assert [r.backlog for r in results] == [1, 2, 3, 4]
    assert services.backoff_ms(results[-1].backlog) > 0  # past the high-water mark: clients slow down

    # The learner reads all four (held until a checkpoint covers them): nothing is waiting for it now.
    assert len(redis_client.xreadgroup(keys.group, "learner-a", {keys.stream: ">"}, count=10)[0][1]) == 4
    fifth = store(cartpole_campaign.id, "h-4")
    assert fifth.outcome == StoreOutcome.STORED and fifth.backlog == 1
    assert services.backoff_ms(fifth.backlog) == 0

    # Held entries are still in Redis: with them the stream is at its cap of six entries.
    assert store(cartpole_campaign.id, "h-5").outcome == StoreOutcome.STORED
    assert store(cartpole_campaign.id, "h-6").outcome == StoreOutcome.FULL


def test_a_learner_that_names_a_tighter_mark_gets_a_steeper_slow_down(settings):
    settings.SOULSAI_STREAM_HIGH_WATER = 64
    # The server's mark: 25 ms a chunk past it, up to 2 s at 80 chunks past it.
    assert [services.backoff_ms(b) for b in (64, 65, 68, 144)] == [0, 25, 100, 2000]
    # A DQN learner's mark of 8 chunks: 8 times steeper (200 ms a chunk), so clients that outpace the
    # learner settle a few chunks past 8, not some 60 past it.
    assert [services.backoff_ms(b, 8) for b in (8, 9, 12, 18)] == [0, 200, 800, 2000]
    # A mark above the server's keeps the server's slope.
    assert services.backoff_ms(130, 128) == 50


def test_a_live_learner_gets_clients_held_as_long_as_it_needs_to_work_through_the_backlog(settings):
    """Clients that outrun the learner even at 2 s an ack (eight unpaced ones on a slow learner) wait
    for as long as the learner needs to take the chunks past its mark, and no longer."""
    settings.SOULSAI_STREAM_HIGH_WATER = 64
    # A learner that takes 4 chunks a second of its work, 2 chunks' mark: 40 chunks past it take 10 s.
    assert services.backoff_ms(42, 2, drain_per_s=4.0) == 10_000
    assert services.backoff_ms(402, 2, drain_per_s=4.0) == MAX_WAIT_MS == 60_000  # what clients honour
    # Below the ramp's 2 s the ramp alone holds clients, however slow the learner: 2 chunks past a
    # mark of 2 wait 1.6 s (4 s of the learner's work), 3 chunks past it the learner's 6 s.
    assert services.backoff_ms(4, 2, drain_per_s=0.5) == 1600
    assert services.backoff_ms(5, 2, drain_per_s=0.5) == 6000
    # A fast learner: the ramp's 2 s at its end, nothing at or under the mark.
    assert services.backoff_ms(68, drain_per_s=1000.0) == 100
    assert services.backoff_ms(144, drain_per_s=1000.0) == 2000
    assert services.backoff_ms(64, drain_per_s=0.5) == 0
    # Without a live learner's rate (starting, or a standby about to take over) clients keep playing
    # at 2 s an ack: their chunks wait in the stream for the next learner.
    assert services.backoff_ms(200) == services.backoff_ms(20_000, 2) == 2000
    # Never shorter for a longer backlog.
    for mark, rate in ((2, 4.0), (8, 0.5), (64, 30.0), (128, 0.0)):
        waits = [services.backoff_ms(b, mark, drain_per_s=rate) for b in range(mark, mark + 400)]
        assert waits == sorted(waits)


@pytest.mark.django_db
def test_acks_hold_clients_by_the_drain_rate_only_while_the_learner_beats(cartpole_campaign, redis_client, settings):
    """The store script reads the learner's heartbeat and drain rate: a live learner that clients
    outrun gets them held past 2 s an ack; a campaign whose learner is starting or gone keeps taking
    chunks."""
    settings.SOULSAI_STREAM_HIGH_WATER = 64
    keys = CampaignKeys(cartpole_campaign.id)
    # A DQN learner's mark (800 ms a chunk past 2) and its measured rate: 0.25 chunks a second.
    redis_client.hset(keys.learner, mapping={"high_water": 2, "drain_chunks_per_s": 0.25})
    results = [store(cartpole_campaign.id, f"l-{i}") for i in range(6)]
    assert [r.wait_ms for r in results] == [0, 0, 800, 1600, 2000, 2000]
    assert not any(r.drain_per_s for r in results)  # no heartbeat: not live

    redis_client.hset(keys.learner, "heartbeat", time.time())
    beating = store(cartpole_campaign.id, "l-6")
    assert beating.drain_per_s == 0.25 and beating.backlog == 7 and beating.wait_ms == 20_000  # 5 chunks
    # A resend is answered with the same back-pressure.
    again = store(cartpole_campaign.id, "l-6")
    assert again.outcome == StoreOutcome.DUPLICATE and again.wait_ms == 20_000

    redis_client.hset(keys.learner, "heartbeat", time.time() - 60)  # its host died a minute ago
    orphan = store(cartpole_campaign.id, "l-7")
    assert orphan.drain_per_s == 0 and orphan.wait_ms == 2000
