"""Starting learners: queue one for a campaign unless one runs or is queued already."""

from __future__ import annotations

import logging
import time
import uuid

import redis
from celery import current_app
from django.conf import settings

from portal.core.redis import get_redis
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

# The task names that routing (CELERY_TASK_ROUTES), beat (CELERY_BEAT_SCHEDULE) and messages already
# queued use: they keep the module path the tasks had when they lived in the trainer.
RUN_LEARNER_TASK = "trainer.tasks.run_learner"
SUPERVISE_LEARNERS_TASK = "trainer.tasks.supervise_learners"
LEARNER_QUEUE = "learner"

LAUNCHING_TTL_SECONDS = 60  # a queued learner that never started stops blocking a new one after this

# hash: campaign id -> unix time since when the running campaign has had no learner (the supervisor
# keeps it; pages read it through learner_waiting)
WAITING_KEY = "soulsai:learners:waiting"
# A learner writes its heartbeat every second (trainer.learner); one this old is gone.
HEARTBEAT_STALE_SECONDS = 30.0


def learner_ensure(*, campaign_id: int) -> bool:
    """Queue a learner for the campaign unless one holds the lease or is already queued.

    Returns whether a learner task was queued.
    """
    keys = CampaignKeys(campaign_id)
    client = get_redis()
    if client.exists(keys.lease):
        return False
    if not client.set(keys.launching, 1, nx=True, ex=LAUNCHING_TTL_SECONDS):
        return False
    if _learner_queued(campaign_id):
        # Still waiting for a free learner thread: one message per campaign, however long it waits,
        # so the queue holds at most one learner per running campaign.
        return False
    # By name: the task module (portal.training.tasks) calls the campaigns' services, which call this.
    current_app.send_task(
        RUN_LEARNER_TASK,
        args=[campaign_id],
        queue=LEARNER_QUEUE,
        ignore_result=True,
        task_id=f"{_task_id_prefix(campaign_id)}{uuid.uuid4().hex}",
    )
    log.info("campaign %s: learner queued", campaign_id)
    return True


def _task_id_prefix(campaign_id: int) -> str:
    return f"learner-c{campaign_id}-"


# Messages a worker looks at, at most: the queue holds one per waiting campaign, so this is plenty.
QUEUE_SCAN_LIMIT = 10_000


def _learner_queued(campaign_id: int) -> bool:
    """Whether the broker still holds this campaign's learner task: waiting in the learner queue, or
    taken by a worker that has no free thread for it yet (kombu's Redis transport: its "unacked" hash)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return False  # another broker: the launching key's time-out alone bounds the repeats
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    needle = f'"{_task_id_prefix(campaign_id)}'.encode()
    broker = get_redis() if url == settings.REDIS_URL else redis.Redis.from_url(url)
    try:
        pipe = broker.pipeline(transaction=False)
        pipe.lrange(f"{prefix}{LEARNER_QUEUE}", 0, QUEUE_SCAN_LIMIT - 1)
        pipe.hvals(f"{prefix}unacked")
        waiting, taken = pipe.execute()
    except redis.RedisError:
        return False
    return any(needle in message for message in (*waiting, *taken))


def learner_alive(*, campaign_id: int) -> bool:
    """Whether a learner runs the campaign now: it holds the lease, or its heartbeat is recent."""
    keys = CampaignKeys(campaign_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.exists(keys.lease)
    pipe.hget(keys.learner, "heartbeat")
    lease, heartbeat = pipe.execute()
    try:
        recent = heartbeat is not None and time.time() - float(heartbeat) < HEARTBEAT_STALE_SECONDS
    except ValueError:
        recent = False
    return bool(lease) or recent


# Deletes a stopped campaign's stream (its consumer group with it) unless a learner holds the lease:
# checked and deleted in one step, so no learner starts reading between. Returns the entries deleted,
# or -1 when a learner holds the lease.
_RETIRE_STREAM = """
if redis.call('GET', KEYS[3]) ~= 'stopped' then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local left = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return left
"""


def stream_retire(*, campaign_id: int) -> int:
    """A stopped campaign's experience stream leaves Redis once no learner holds the campaign.

    Stopping is final: no learner trains the campaign again, and the relay stores nothing for it, so
    what is left in its stream (entries read by the last learner and in no checkpoint, or never read)
    would stay in Redis's memory for good. Returns the entries deleted (0: none or no stream), or -1
    while a learner still holds the lease (it writes its final checkpoint, then lets go), -2 when
    Redis does not say the campaign is stopped.
    """
    keys = CampaignKeys(campaign_id)
    left = int(get_redis().eval(_RETIRE_STREAM, 3, keys.stream, keys.lease, keys.status))
    if left > 0:
        log.info("campaign %s: stopped; its stream's last %d entries deleted", campaign_id, left)
    return left


def learner_watch(*, campaign_id: int, running: bool) -> None:
    """The supervisor's note of since when a running campaign has had no learner (cleared otherwise)."""
    client = get_redis()
    if running and not learner_alive(campaign_id=campaign_id):
        client.hsetnx(WAITING_KEY, campaign_id, round(time.time(), 3))
    else:
        client.hdel(WAITING_KEY, campaign_id)


def learner_waiting(*, campaign_id: int) -> bool:
    """Whether a running campaign has been without a learner for SOULSAI_LEARNER_WAIT_SECONDS or more.

    False when that is not known (Redis unreachable): pages then say their figures are the last known.
    """
    try:
        since = get_redis().hget(WAITING_KEY, campaign_id)
        if since is None or time.time() - float(since) < settings.SOULSAI_LEARNER_WAIT_SECONDS:
            return False
        return not learner_alive(campaign_id=campaign_id)  # a learner that started since the last look
    except (redis.RedisError, ValueError):
        return False
