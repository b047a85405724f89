"""What staff tell the community (announcements) and how a campaign is listed (visibility)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AnnouncementQuerySet(models.QuerySet):
    def published(self) -> AnnouncementQuerySet:
        return self.filter(published=True)


class Announcement(models.Model):
    title = models.CharField(max_length=140)
    body = models.TextField(blank=True, help_text="plain text; blank lines separate paragraphs")
    published = models.BooleanField(default=True, help_text="shown on the home page")
    pinned = models.BooleanField(default=False, help_text="shown before the others")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = AnnouncementQuerySet.as_manager()

    class Meta:
        ordering = ["-pinned", "-created"]

    def __str__(self) -> str:
        return self.title


class CampaignListing(models.Model):
    """How a campaign is shown. Kept beside the campaign (one row per campaign, made when needed)."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public: listed on the home page, the campaign list and the API"
        UNLISTED = "unlisted", "Unlisted: only people with the link see it"

    campaign = models.OneToOneField("campaigns.Campaign", on_delete=models.CASCADE, related_name="listing")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.visibility}"
