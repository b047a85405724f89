"""One learner run in this process: the trainer's loop, given the portal's store, Redis and settings."""

from __future__ import annotations

from django.conf import settings

from portal.core.redis import get_redis
from portal.training.store import CampaignStore
from trainer.learner import LearnerSettings, Outcome, run_learner


def learner_settings() -> LearnerSettings:
    """The learner's settings from the portal's (read on each call: tests override them)."""
    return LearnerSettings(
        lease_seconds=settings.SOULSAI_LEASE_SECONDS,
        device=settings.SOULSAI_DEVICE,
        torch_threads=settings.SOULSAI_TORCH_THREADS,
    )


def learner_run(*, campaign_id: int, max_seconds: float | None = None) -> Outcome:
    """Run the campaign's learner here until it is paused, stopped, loses its lease or runs out of time.

    Returns why it stopped (``trainer.learner.run_learner``).
    """
    return run_learner(
        campaign_id,
        store=CampaignStore(),
        client=get_redis(),
        settings=learner_settings(),
        max_seconds=max_seconds,
    )
