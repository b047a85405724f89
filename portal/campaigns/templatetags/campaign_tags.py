"""Template filters of campaign pages: what a campaign's badge says beyond its status."""

from __future__ import annotations

from django import template

from portal.campaigns.models import Campaign
from portal.training.services import learner_waiting

register = template.Library()


@register.filter
def waiting_for_learner(campaign: Campaign) -> bool:
    """A running campaign that has had no learner for a minute (SOULSAI_LEARNER_WAIT_SECONDS)."""
    return campaign.status == Campaign.Status.RUNNING and learner_waiting(campaign_id=campaign.id)
