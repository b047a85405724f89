"""Announcements and campaign listings: the read side."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.campaigns.models import Campaign
from portal.community.models import Announcement, CampaignListing


def announcement_list_published(*, limit: int = 5) -> QuerySet[Announcement]:
    return Announcement.objects.published()[:limit]


def campaign_visibility(*, campaign: Campaign) -> str:
    listing = CampaignListing.objects.filter(campaign=campaign).first()
    return listing.visibility if listing is not None else CampaignListing.Visibility.PUBLIC


def listed(queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
    """``queryset`` without unlisted campaigns (those are reachable by their link only)."""
    return queryset.exclude(listing__visibility=CampaignListing.Visibility.UNLISTED)
