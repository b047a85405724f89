"""Reading the learners' state for staff: which host trains which campaign, on which device, and
which running campaigns wait for one.

Everything comes from Redis: each learner's stats hash (``trainer.keys.CampaignKeys.learner``, written
every second by ``trainer.learner``: ``host``, ``device``, ``device_name``, ``heartbeat``; or, from a
learner that could not start, ``error`` and ``error_at``), the lease, and the supervisor's note of since
when a campaign has had no learner (``portal.training.services.WAITING_KEY``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from django.conf import settings

from portal.core.redis import get_redis
from portal.training.services import HEARTBEAT_STALE_SECONDS, WAITING_KEY
from trainer.keys import CampaignKeys


@dataclass(frozen=True)
class LearnerReport:
    """One campaign's learner as staff see it."""

    host: str | None  # the host its learner runs (or last ran) on
    device: str | None  # "cpu", or "cuda (<GPU name>)"
    heartbeat_age: int | None  # seconds since its last heartbeat; None: no learner has run yet
    alive: bool  # it holds the lease, or its heartbeat is recent
    waiting: bool  # no learner for SOULSAI_LEARNER_WAIT_SECONDS or more ("waiting for a learner")
    error: str | None  # why the last learner could not start (SOULSAI_DEVICE=cuda without CUDA, ...)
    error_age: int | None  # seconds since that error


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value is not None else None


def _age(value: bytes | None, now: float) -> int | None:
    try:
        return max(0, int(now - float(value))) if value is not None else None
    except ValueError:
        return None


def learner_reports(*, campaign_ids: Iterable[int]) -> dict[int, LearnerReport]:
    """Each campaign's ``LearnerReport``, in one round trip; empty when Redis cannot be reached (the
    page then shows no learner figures rather than failing)."""
    ids = list(campaign_ids)
    if not ids:
        return {}
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    for campaign_id in ids:
        keys = CampaignKeys(campaign_id)
        pipe.hmget(keys.learner, "host", "device_name", "device", "heartbeat", "error", "error_at")
        pipe.exists(keys.lease)
        pipe.hget(WAITING_KEY, campaign_id)
    try:
        answers = pipe.execute()
    except redis.RedisError:
        return {}
    now = time.time()
    reports = {}
    for i, campaign_id in enumerate(ids):
        (host, device_name, device, heartbeat, error, error_at), lease, since = answers[3 * i : 3 * i + 3]
        heartbeat_age = _age(heartbeat, now)
        alive = bool(lease) or (heartbeat_age is not None and heartbeat_age < HEARTBEAT_STALE_SECONDS)
        waiting_for = _age(since, now)
        reports[campaign_id] = LearnerReport(
            host=_text(host),
            device=_text(device_name or device),
            heartbeat_age=heartbeat_age,
            alive=alive,
            waiting=not alive and waiting_for is not None and waiting_for >= settings.SOULSAI_LEARNER_WAIT_SECONDS,
            error=_text(error),
            error_age=_age(error_at, now),
        )
    return reports
