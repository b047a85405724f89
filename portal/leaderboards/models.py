"""Contributions in hourly buckets: what each volunteer gave each campaign, hour by hour.

Rolled up by beat from the relay's per-machine counters in Redis (portal.leaderboards.services), so
boards over all time, 7 days or 24 hours add up a few buckets instead of scanning raw data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Contribution(models.Model):
    """Samples, episodes and wins one volunteer's machines gave one campaign within one hour (UTC)."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="contributions")
    # A deleted account's buckets stay (anonymised, user NULL): campaign, team and global totals keep them.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="contributions"
    )
    # The team the volunteer was in when the bucket was made: a team keeps what its members gave it.
    team = models.ForeignKey(
        "volunteers.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="contributions"
    )
    hour = models.DateTimeField(help_text="start of the hour, UTC")
    samples = models.BigIntegerField(default=0)
    episodes = models.BigIntegerField(default=0)
    wins = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user", "hour"], name="unique_contribution_hour")
        ]
        indexes = [models.Index(fields=["hour"], name="contribution_hour")]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.campaign_id} @ {self.hour:%Y-%m-%d %H:00}"


class MachineTally(models.Model):
    """How much of a machine's counters (Redis ``machine_*`` hashes) is already in Contribution rows."""

    token = models.OneToOneField("machines.MachineToken", on_delete=models.CASCADE, related_name="tally")
    samples = models.BigIntegerField(default=0)
    episodes = models.BigIntegerField(default=0)
    wins = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"tally of {self.token_id}"
