"""One learner run in this process: the trainer's loop, given the portal's store, Redis and settings."""

from __future__ import annotations

from django.conf import settings

from portal.campaigns.models import Campaign
from portal.core.logs import log_context
from portal.core.redis import get_redis
from portal.training.store import CampaignStore
from trainer.learner import LearnerSettings, Outcome, run_learner


def learner_settings() -> LearnerSettings:
    """The learner's settings from the portal's (read on each call: tests override them)."""
    return LearnerSettings(
        lease_seconds=settings.SOULSAI_LEASE_SECONDS,
        device=settings.SOULSAI_DEVICE,
        torch_threads=settings.SOULSAI_TORCH_THREADS,
        hold_chunks=settings.SOULSAI_LEARNER_HOLD_CHUNKS,
    )


def learner_run(*, campaign_id: int, max_seconds: float | None = None) -> Outcome:
    """Run the campaign's learner here until it is paused, stopped, loses its lease or runs out of time.

    Returns why it stopped (``trainer.learner.run_learner``).
    """
    # Every line of the run names the campaign (portal.core.logs); the trainer itself knows no Django.
    slug = Campaign.objects.filter(pk=campaign_id).values_list("slug", flat=True).first()
    with log_context(campaign=campaign_id, campaign_slug=slug):
        return run_learner(
            campaign_id,
            store=CampaignStore(),
            client=get_redis(),
            settings=learner_settings(),
            max_seconds=max_seconds,
        )
