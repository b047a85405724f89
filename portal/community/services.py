"""Announcements and campaign listings: the write side (staff pages call these)."""

from __future__ import annotations

from portal.campaigns.models import Campaign
from portal.community.models import Announcement, CampaignListing


def announcement_save(
    *,
    announcement: Announcement | None = None,
    title: str,
    body: str = "",
    published: bool = True,
    pinned: bool = False,
    author=None,
) -> Announcement:
    """Create an announcement, or change ``announcement``."""
    announcement = announcement or Announcement(author=author)
    announcement.title, announcement.body = title.strip(), body.strip()
    announcement.published, announcement.pinned = published, pinned
    announcement.full_clean()
    announcement.save()
    return announcement


def announcement_delete(*, announcement: Announcement) -> None:
    announcement.delete()


def campaign_visibility_set(*, campaign: Campaign, visibility: str) -> CampaignListing:
    listing, _ = CampaignListing.objects.get_or_create(campaign=campaign)
    listing.visibility = visibility
    listing.full_clean()
    listing.save()
    return listing
