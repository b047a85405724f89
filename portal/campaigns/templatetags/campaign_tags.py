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


@register.filter
def is_boss(campaign: Campaign) -> bool:
    """A boss fight (SoulsGym or the arena): its pages lead with the win rate."""
    from portal.livestats.services import is_boss_fight

    return is_boss_fight(campaign)


@register.filter
def needs_game(campaign: Campaign) -> bool:
    """A campaign that plays the real Dark Souls III (SoulsGym), not the arena or a training env."""
    from client_app.envs import is_soulsgym

    return is_soulsgym(campaign.env_id)


@register.filter
def percent(value: float | None) -> str:
    """0.4567 → '46%'; None → '—' (no figure yet)."""
    if value is None:
        return "—"
    return f"{value * 100:.0f}%"


@register.simple_tag
def fight_summary(campaign: Campaign):
    """{% fight_summary campaign as fight %}: the campaign's FightSummary (win rate, trend, boss HP)."""
    from portal.campaigns.selectors import fight_summary as summary

    return summary(campaign=campaign)


@register.simple_tag
def game_version() -> str:
    """The Dark Souls III version SoulsGym's memory addresses are for (client_app.gamewin)."""
    from client_app.gamewin import GAME_VERSION

    return GAME_VERSION
