"""The learner against the real Redis and the real test database (no mocks), through the portal's store."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.numpy import load as safetensors_load

from client_app.policy import Policy
from client_app.protocol import pack
from harness.processes import WaitTimeout, wait_for
from portal.campaigns.models import ModelVersion
from portal.campaigns.services import model_publish
from portal.core.redis import get_redis
from portal.training.runner import learner_run, learner_settings
from portal.training.store import CampaignStore
from tests.trainer.helpers import make_chunk, push_chunks
from trainer.config import config_for
from trainer.keys import CampaignKeys
from trainer.learner import LearnerRun
from trainer.lease import Lease

SMALL = {
    "learning_starts": 64,
    "batch_size": 32,
    "buffer_size": 5_000,
    "publish_every_updates": 20,
    "publish_min_seconds": 0,
    "checkpoint_every_versions": 2,
    "hidden": [32],
}


@pytest.fixture
def campaign(cartpole_campaign):
    cartpole_campaign.hyperparams = SMALL
    cartpole_campaign.save(update_fields=["hyperparams"])
    return cartpole_campaign


@pytest.fixture
def keys(campaign) -> CampaignKeys:
    return CampaignKeys(campaign.id)


def learner_stats(keys: CampaignKeys) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in get_redis().hgetall(keys.learner).items()}


@contextmanager
def when(keys: CampaignKeys, ready: Callable[[dict[str, str]], bool], action: Callable[[], object]):
    """In a thread that touches only Redis: run ``action`` once the learner's stats hash says ready."""
    done = threading.Event()

    def ready_or_done() -> bool:
        if done.is_set():
            return True
        stats = learner_stats(keys)
        # The learner's stats (it names its stream mark there before the rest, while it starts).
        return "heartbeat" in stats and ready(stats)

    def watch():
        try:
            wait_for(ready_or_done, timeout=300, what="the learner's stats to say ready", interval=0.05)
        except WaitTimeout:
            return  # the test's own assertions say what did not happen
        if not done.is_set():
            action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def set_status_when(keys: CampaignKeys, ready: Callable[[dict[str, str]], bool], status: str = "stopped"):
    return when(keys, ready, lambda: get_redis().set(keys.status, status))


def ingested(samples: int, updates: int = 0) -> Callable[[dict[str, str]], bool]:
    return lambda s: int(s["samples_ingested"]) >= samples and int(s["updates"]) >= updates


def versions(campaign) -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(campaign=campaign).order_by("version"))


def assert_stream_drained(keys: CampaignKeys) -> None:
    client = get_redis()
    assert client.xpending(keys.stream, keys.group)["pending"] == 0
    assert client.xlen(keys.stream) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "replay",
    [{}, {"n_step": 1, "prioritized": False}],
    ids=["n-step-prioritized", "one-step-uniform"],
)
def test_learner_publishes_rising_versions_and_drains_the_stream(campaign, keys, redis_client, replay):
    campaign.hyperparams = {**SMALL, **replay}
    campaign.save(update_fields=["hyperparams"])
    samples = push_chunks(redis_client, keys.stream, 16, 24)  # 384 samples -> 161 updates at 2 per update
    with set_status_when(keys, ingested(samples, updates=161)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"

    published = versions(campaign)
    numbers = [m.version for m in published]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 5
    config = config_for(campaign.env_id, campaign.hyperparams)
    for model in published:
        with model.weights.open("rb") as f:
            policy = Policy.from_bytes(f.read())
        assert policy.version == model.version
        assert (policy.spec.obs_dim, policy.spec.n_actions, policy.spec.hidden) == (4, 2, (32,))
        assert policy.epsilon == pytest.approx(config.epsilon(model.samples_total))
        # Every 2nd version is a checkpoint, and so is the final one written on exit.
        assert model.is_checkpoint == (model.version % 2 == 0 or model == published[-1])
        assert bool(model.state) == model.is_checkpoint
    assert [m.updates_total for m in published] == sorted(m.updates_total for m in published)

    campaign.refresh_from_db()
    assert campaign.model_version == numbers[-1]
    assert int(redis_client.hget(keys.model, "version")) == numbers[-1]
    assert_stream_drained(keys)
    assert not redis_client.exists(keys.lease)
    stats = learner_stats(keys)
    assert int(stats["samples_ingested"]) == samples and int(stats["updates"]) == published[-1].updates_total
    assert int(stats["version"]) == numbers[-1]
    assert {"updates_per_s", "td_loss", "epsilon", "heartbeat", "device", "device_name", "host"} <= set(stats)


@pytest.mark.django_db
def test_a_second_learner_finds_the_lease_held(campaign, keys, redis_client):
    redis_client.set(keys.lease, "another-learner", px=10_000)
    assert learner_run(campaign_id=campaign.id, max_seconds=30) == "lease_held"
    # It returned before doing anything: no consumer joined the stream, no stats were written.
    assert not redis_client.exists(keys.stream) and not redis_client.exists(keys.learner)
    assert redis_client.get(keys.lease) == b"another-learner"
    assert not versions(campaign)


@pytest.mark.django_db
def test_a_learner_that_loses_its_lease_stops_without_publishing(campaign, keys, redis_client, settings):
    settings.SOULSAI_LEASE_SECONDS = 1.5  # renewed every 0.5 s

    def steal_then_feed():
        redis_client.set(keys.lease, "usurper", px=10_000)
        push_chunks(redis_client, keys.stream, 8, 24)  # enough to learn and want to publish

    with when(keys, lambda stats: True, steal_then_feed):
        assert learner_run(campaign_id=campaign.id, max_seconds=30) == "lease_lost"
    assert redis_client.get(keys.lease) == b"usurper"
    assert not versions(campaign)


@pytest.mark.django_db
def test_a_resumed_learner_continues_from_the_last_checkpoint(campaign, keys, redis_client):
    first = push_chunks(redis_client, keys.stream, 8, 24, seed=0)
    with set_status_when(keys, ingested(first, updates=65)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"
    checkpoint = versions(campaign)[-1]
    assert checkpoint.is_checkpoint and checkpoint.updates_total == 65
    # A version published after the checkpoint (by a learner that then died) is never reused.
    with checkpoint.weights.open("rb") as f:
        stray = model_publish(campaign_id=campaign.id, version=checkpoint.version + 1, weights=f.read())

    redis_client.set(keys.status, "running")
    second = push_chunks(redis_client, keys.stream, 8, 24, seed=100)
    # The second run starts its replay ratio afresh: 64 samples to learn again, then 2 per update.
    with set_status_when(keys, ingested(first + second, updates=65 + 65)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"

    later = [m for m in versions(campaign) if m.version > stray.version]
    assert later and later[0].version == stray.version + 1
    assert later[0].updates_total > checkpoint.updates_total  # counters went on from the checkpoint
    assert later[-1].updates_total == 130 and later[-1].samples_total == first + second
    with later[-1].state.open("rb") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert (state["format"], state["algorithm"]) == (2, "dqn")
    assert state["agent"]["dqn"]["updates"] == 130 and state["agent"]["samples_total"] == first + second


@pytest.mark.django_db
def test_entries_left_pending_by_a_dead_consumer_are_claimed_and_ingested(campaign, keys, redis_client):
    redis_client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    push_chunks(redis_client, keys.stream, 4, 10)
    taken = redis_client.xreadgroup(keys.group, "dead-learner", {keys.stream: ">"}, count=4)[0][1]
    assert redis_client.xpending(keys.stream, keys.group)["pending"] == 4
    redis_client.xdel(keys.stream, taken[0][0])  # one was deleted while pending (no data left to ingest)
    push_chunks(redis_client, keys.stream, 2, 10, seed=50)

    # 50 samples: below learning_starts, so nothing is learnt or published; the run ends on its clock.
    assert learner_run(campaign_id=campaign.id, max_seconds=1.5) == "time_limit"
    assert int(learner_stats(keys)["samples_ingested"]) == 50
    consumers = [c["name"] for c in redis_client.xinfo_consumers(keys.stream, keys.group)]
    assert b"dead-learner" not in consumers
    assert not versions(campaign)
    # No checkpoint covers them: the five entries stay in the stream, held by the learner, and count
    # as read (not backlog); the next learner ingests them again, from a fresh agent.
    assert redis_client.xpending(keys.stream, keys.group)["pending"] == 5 == redis_client.xlen(keys.stream)
    assert int(learner_stats(keys)["held"]) == 5
    assert learner_run(campaign_id=campaign.id, max_seconds=1.5) == "time_limit"
    assert int(learner_stats(keys)["samples_ingested"]) == 50


def started(run: LearnerRun) -> LearnerRun:
    """What ``LearnerRun.run`` does before its loop."""
    run.stream.ensure_group()
    run.resume()
    run.ingest(run.stream.claim_pending())
    return run


def drive(run: LearnerRun, until: Callable[[], bool]) -> None:
    """``LearnerRun.run``'s loop, step by step, until ``until()``: a test decides where the learner dies."""
    deadline = time.monotonic() + 120
    while not until():
        assert time.monotonic() < deadline, "the learner did not get there in 120 s"
        run.step()


def new_run(campaign, redis_client, keys) -> tuple[LearnerRun, Lease]:
    store = CampaignStore()
    lease = Lease(redis_client, keys.lease, 20.0)
    assert lease.acquire()
    run = LearnerRun(
        store.campaign(campaign.id), store=store, lease=lease, client=redis_client, settings=learner_settings()
    )
    return started(run), lease


def checkpoints(campaign) -> list[ModelVersion]:
    return [m for m in versions(campaign) if m.is_checkpoint]


@pytest.mark.django_db
def test_a_learner_that_dies_between_checkpoints_loses_no_acknowledged_chunk(campaign, keys, redis_client):
    total = push_chunks(redis_client, keys.stream, 8, 24, seed=0)
    run, lease = new_run(campaign, redis_client, keys)
    drive(run, lambda: bool(checkpoints(campaign)) and run.agent.samples_total == total and not run.held)
    # Everything so far is in a checkpoint, so it left Redis; three more chunks are read, not learnt yet.
    assert redis_client.xlen(keys.stream) == 0
    total += push_chunks(redis_client, keys.stream, 3, 24, seed=100)
    drive(run, lambda: run.agent.samples_total == total)
    assert len(run.held) == 3 and redis_client.xpending(keys.stream, keys.group)["pending"] == 3
    lease.release()  # and the learner is gone: no final checkpoint, nothing acknowledged

    # The next learner resumes from the checkpoint and takes the three held chunks: nothing lost.
    with set_status_when(keys, ingested(total)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"
    assert int(learner_stats(keys)["samples_ingested"]) == total
    assert checkpoints(campaign)[-1].samples_total == total
    assert_stream_drained(keys)


class Killed(BaseException):
    """The learner's host dies here (not an Exception: nothing in the learner catches it)."""


@pytest.mark.django_db
def test_a_learner_killed_after_its_checkpoint_before_releasing_entries_ingests_none_twice(
    campaign, keys, redis_client
):
    total = push_chunks(redis_client, keys.stream, 8, 24, seed=0)
    run, lease = new_run(campaign, redis_client, keys)

    def die(ids):
        raise Killed

    run.stream.done = die  # the first checkpoint is stored, then the host dies before XACK/XDEL
    with pytest.raises(Killed):
        drive(run, lambda: False)
    lease.release()
    checkpoint = checkpoints(campaign)[-1]
    covered = checkpoint.samples_total
    assert 0 < covered and redis_client.xpending(keys.stream, keys.group)["pending"] * 24 >= covered

    # The successor finds every entry the checkpoint covers still pending: it deletes them unread.
    with set_status_when(keys, ingested(total)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"
    assert int(learner_stats(keys)["samples_ingested"]) == total  # not total + covered
    assert checkpoints(campaign)[-1].samples_total == total
    assert_stream_drained(keys)


@pytest.mark.django_db
def test_held_entries_are_not_backlog_and_past_the_hold_limit_a_checkpoint_releases_them(
    campaign, keys, redis_client, settings
):
    settings.SOULSAI_LEARNER_HOLD_CHUNKS = 4
    campaign.hyperparams = {**SMALL, "learning_starts": 10_000}  # nothing is learnt or published otherwise
    campaign.save(update_fields=["hyperparams"])
    run, lease = new_run(campaign, redis_client, keys)
    try:
        push_chunks(redis_client, keys.stream, 3, 10)
        drive(run, lambda: run.agent.samples_total == 30)
        assert len(run.held) == 3 and not versions(campaign)
        assert redis_client.xlen(keys.stream) == 3
        push_chunks(redis_client, keys.stream, 2, 10, seed=10)
        drive(run, lambda: run.agent.samples_total == 50 and not run.held)
    finally:
        lease.release()
    # The fifth held entry passed the limit: a checkpoint (no updates yet) covers them all.
    [checkpoint] = versions(campaign)
    assert checkpoint.is_checkpoint and checkpoint.samples_total == 50 and checkpoint.updates_total == 0
    assert run.held == [] and redis_client.xlen(keys.stream) == 0
    assert_stream_drained(keys)


@pytest.mark.django_db
def test_pause_writes_a_final_checkpoint(campaign, keys, redis_client):
    campaign.hyperparams = {**SMALL, "publish_every_updates": 10_000}
    campaign.save(update_fields=["hyperparams"])
    push_chunks(redis_client, keys.stream, 8, 24)
    with set_status_when(keys, ingested(192, updates=65), status="paused"):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "paused"

    published = versions(campaign)
    assert [m.version for m in published] == [1, 2]  # the first model at once, then the final checkpoint
    final = published[-1]
    assert final.is_checkpoint and final.state and final.updates_total == 65
    with final.state.open("rb") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert state["agent"]["dqn"]["updates"] == 65
    assert not redis_client.exists(keys.lease)


@pytest.mark.django_db
def test_a_damaged_checkpoint_is_skipped_for_an_older_one(campaign, keys, redis_client):
    push_chunks(redis_client, keys.stream, 8, 24)
    with set_status_when(keys, ingested(192, updates=65)):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "stopped"
    good = versions(campaign)[-1]
    with good.weights.open("rb") as f:
        model_publish(
            campaign_id=campaign.id,
            version=good.version + 1,
            weights=f.read(),
            state=b"not a checkpoint",
            is_checkpoint=True,
        )

    redis_client.set(keys.status, "running")
    assert learner_run(campaign_id=campaign.id, max_seconds=0.5) == "time_limit"
    stats = learner_stats(keys)
    assert (int(stats["updates"]), int(stats["samples_ingested"])) == (65, 192)
    assert int(stats["version"]) == good.version + 1


@pytest.mark.django_db
def test_a_checkpoint_can_keep_the_replay_buffer_and_its_config(campaign, keys, redis_client):
    campaign.hyperparams = {**SMALL, "checkpoint_replay": True, "publish_every_updates": 10_000}
    campaign.save(update_fields=["hyperparams"])
    push_chunks(redis_client, keys.stream, 8, 24)
    with set_status_when(keys, ingested(192, updates=65), status="paused"):
        assert learner_run(campaign_id=campaign.id, max_seconds=60) == "paused"
    final = versions(campaign)[-1]
    with final.state.open("rb") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert state["config"]["checkpoint_replay"] is True and state["config"]["batch_size"] == 32
    assert int(state["agent"]["replay"]["size"]) == 192

    # Resumed with nothing new in the stream, the learner has its buffer back at once.
    redis_client.set(keys.status, "running")
    assert learner_run(campaign_id=campaign.id, max_seconds=1.5) == "time_limit"
    assert int(learner_stats(keys)["buffer"]) == 192


@pytest.mark.django_db
def test_a_diverged_network_is_never_published_and_the_learner_goes_back_to_its_last_checkpoint(
    campaign, keys, redis_client, caplog
):
    store = CampaignStore()
    lease = Lease(redis_client, keys.lease, 20.0)
    assert lease.acquire()
    run = LearnerRun(
        store.campaign(campaign.id), store=store, lease=lease, client=redis_client, settings=learner_settings()
    )
    steps = {"pushed": push_chunks(redis_client, keys.stream, 8, 24, seed=0)}  # 65 updates: v1..v4

    def poison_then_feed():
        # The learner waits for data (nothing trains now): its network diverges, as a too-high
        # learning rate would make it, and more chunks come to learn from.
        with torch.no_grad():
            for parameter in run.agent.dqn.q.parameters():
                parameter.fill_(float("nan"))
        steps["pushed"] += push_chunks(redis_client, keys.stream, 8, 24, seed=100)

    def feed_again():
        steps["pushed"] += push_chunks(redis_client, keys.stream, 8, 24, seed=200)

    recovered_or_published = lambda s: int(s.get("recoveries", 0)) >= 1 or int(s["version"]) >= 5  # noqa: E731
    with (
        when(keys, lambda s: int(s["updates"]) >= 65 and int(s["version"]) >= 4, poison_then_feed),
        when(keys, recovered_or_published, feed_again),
        set_status_when(keys, lambda s: int(s["version"]) >= 5 and int(s["samples_ingested"]) >= 192),
    ):
        try:
            assert run.run(max_seconds=120) == "stopped"
        finally:
            lease.release()

    published = versions(campaign)
    assert [m.version for m in published] == list(range(1, len(published) + 1))
    for model in published:  # every published file is finite, and a client loads it
        with model.weights.open("rb") as f:
            data = f.read()
        assert all(np.isfinite(t).all() for t in safetensors_load(data).values()), f"v{model.version}"
        Policy.from_bytes(data)
    assert int(learner_stats(keys)["recoveries"]) == 1
    assert any("the network diverged" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    # It went back to the last checkpoint before the poison (v4, 61 updates) and learnt on from there.
    last_good = [m for m in published if m.version <= 4 and m.is_checkpoint][-1]
    after = [m for m in published if m.version > 4]
    assert after and after[0].updates_total == last_good.updates_total + SMALL["publish_every_updates"]


@pytest.mark.django_db
def test_non_finite_weights_are_not_published_even_as_the_final_checkpoint(campaign, keys, redis_client):
    store = CampaignStore()
    lease = Lease(redis_client, keys.lease, 20.0)
    assert lease.acquire()
    run = LearnerRun(
        store.campaign(campaign.id), store=store, lease=lease, client=redis_client, settings=learner_settings()
    )
    push_chunks(redis_client, keys.stream, 8, 24)  # 65 updates: v1..v4, the last checkpoint at 61

    def poison_then_stop():
        with torch.no_grad():  # no update runs now: the final checkpoint is the next thing to see it
            next(run.agent.dqn.q.parameters()).view(-1)[0] = float("inf")
        redis_client.set(keys.status, "stopped")

    with when(keys, lambda s: int(s["updates"]) >= 65 and int(s["version"]) >= 4, poison_then_stop):
        try:
            assert run.run(max_seconds=60) == "stopped"
        finally:
            lease.release()

    published = versions(campaign)
    assert [m.version for m in published] == [1, 2, 3, 4]  # no final checkpoint of broken weights
    assert int(learner_stats(keys)["recoveries"]) == 1
    assert run.agent.updates == published[-1].updates_total  # back at the last good checkpoint
    assert all(torch.isfinite(p).all() for p in run.agent.dqn.q.parameters())


@pytest.mark.django_db
def test_a_voided_machine_leaves_the_buffer_and_its_later_entries_are_skipped(campaign, keys, redis_client):
    honest = push_chunks(redis_client, keys.stream, 6, 24, seed=0, machine=11)
    poisoned = push_chunks(redis_client, keys.stream, 4, 24, seed=50, machine=12)
    run, lease = new_run(campaign, redis_client, keys)
    drive(run, lambda: run.agent.samples_total == honest + poisoned)
    machines = run.agent.buffer.machines[: len(run.agent.buffer)]
    assert (machines == 12).sum() == poisoned and (machines == 11).sum() == honest

    # Staff void machine 12 (portal.machines.services.token_void writes this key): the learner applies
    # it at its next housekeeping and says how many samples left.
    redis_client.hset(keys.voided, 12, 1)
    run.apply_voids()
    machines = run.agent.buffer.machines[: len(run.agent.buffer)]
    assert (machines == 12).sum() == 0 and len(run.agent.buffer) == honest
    assert int(redis_client.hget(keys.voided_removed, 12)) == poisoned
    # What it sent before the void and the learner had not read yet never reaches the buffer.
    push_chunks(redis_client, keys.stream, 3, 24, seed=80, machine=12)
    honest += push_chunks(redis_client, keys.stream, 2, 24, seed=90, machine=11)
    # Machine 12's entries come first in the stream: once 11's last ones are in, 12's were read too.
    drive(run, lambda: (run.agent.buffer.machines[: len(run.agent.buffer)] == 11).sum() == honest)
    machines = run.agent.buffer.machines[: len(run.agent.buffer)]
    assert (machines == 12).sum() == 0 and (machines == 11).sum() == honest
    lease.release()


@pytest.mark.django_db
def test_the_stats_count_samples_by_policy_lag_kept_and_dropped_as_stale_and_by_age(campaign, keys, redis_client):
    campaign.algorithm = "ppo"
    campaign.hyperparams = {"rollout_steps": 1024, "minibatch_size": 64, "max_staleness": 1, "hidden": [8]}
    campaign.save(update_fields=["algorithm", "hyperparams"])
    run, lease = new_run(campaign, redis_client, keys)
    run.version = 30  # as if 30 versions were out: no rollout fills up here, so none is published
    played = [(30, 10), (29, 20), (28, 30), (30, 5), (2, 40)]  # (model version, steps)
    cut_ago = [0, 3, 3, 30, 100_000]  # seconds before now each chunk was cut
    stored_ago = [0, 0, 3, 3, 100]  # and stored in the stream by the relay (the entry id's milliseconds)
    now_ms = int(time.time() * 1000)
    entries = []
    for i, (version, steps) in enumerate(played):
        chunk = dataclasses.replace(
            make_chunk(steps, seed=i), model_version=version, logp=np.zeros(steps, np.float32),
            made=int(time.time()) - cut_ago[i],
        )
        entry_id = f"{now_ms - 1000 * stored_ago[i]}-{i}".encode()
        entries.append((entry_id, {b"c": pack(chunk.to_message()), b"m": b"1"}))
    run.ingest(entries)
    run.write_stats()
    # Versions behind -> [kept, dropped]: PPO keeps 0 and 1 behind (max_staleness 1); 28 behind is
    # counted with the LAG_CAP (20) or more.
    lags = json.loads(learner_stats(keys)["policy_lag_samples"])
    assert lags == {"0": [15, 0], "1": [20, 0], "2": [0, 30], "20": [0, 40]}
    # And by how long after their cut they were ingested (whole seconds: the first may straddle one).
    ages = json.loads(learner_stats(keys)["chunk_age_samples"])
    assert ages.pop("<1", 0) + ages.pop("1-2", 0) == 10
    assert ages == {"2-5": 50, "20-60": 5, ">=60": 40}
    # Of which in the stream: the second chunk waited on the client's side, the fourth mostly there.
    in_stream = json.loads(learner_stats(keys)["stream_age_samples"])
    assert in_stream.pop("<1", 0) + in_stream.pop("1-2", 0) == 30
    assert in_stream == {"2-5": 35, ">=60": 40}
    assert run.agent.dropped_samples == 70 and run.agent.pending_steps == 35
    lease.release()


@pytest.mark.django_db
def test_a_ppo_learner_reads_what_fills_its_rollout_and_leaves_the_rest_in_the_stream(campaign, keys, redis_client):
    """A 256-step rollout of 32-step chunks trains on 8 chunks: the rest wait in the stream for the next
    rollout (they would otherwise be trained on by a policy an iteration older than needed)."""
    campaign.algorithm = "ppo"
    campaign.chunk_steps = 32
    campaign.hyperparams = {"rollout_steps": 256, "minibatch_size": 64, "hidden": [8]}
    campaign.save(update_fields=["algorithm", "chunk_steps", "hyperparams"])
    for i in range(40):
        chunk = dataclasses.replace(make_chunk(32, seed=i), logp=np.zeros(32, np.float32))
        redis_client.xadd(keys.stream, {"c": pack(chunk.to_message()), "m": "1"})
    run, lease = new_run(campaign, redis_client, keys)
    for _ in range(100):  # bounded: a few reads fill it
        if not run.agent.wants_data():
            break
        run.step()
    assert run.agent.pending_steps == 256
    assert redis_client.xpending(keys.stream, keys.group)["pending"] == 8  # read; the other 32 unread
    run.step()  # the iteration
    assert run.agent.ppo.iterations == 1 and run.agent.pending_steps == 0
    lease.release()
