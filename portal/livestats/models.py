"""Campaign figures over time: one snapshot every few seconds, thinned out as it ages."""

from __future__ import annotations

from django.db import models


class CampaignSnapshot(models.Model):
    """A campaign's rolled-up figures at one moment, with the rates derived from the previous one."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField(db_index=True)
    samples_total = models.BigIntegerField(default=0)
    episodes_total = models.BigIntegerField(default=0)
    updates_total = models.BigIntegerField(default=0)
    wins_total = models.BigIntegerField(default=0)
    clients_active = models.PositiveIntegerField(default=0)
    model_version = models.PositiveIntegerField(default=0)
    mean_return = models.FloatField(
        null=True, blank=True, help_text="mean of the latest (up to 100) episodes"
    )
    win_rate = models.FloatField(null=True, blank=True, help_text="wins / episodes over the last few minutes")
    boss_hp_left = models.FloatField(
        null=True, blank=True, help_text="boss fights: mean boss HP left (a fraction) over the latest fights"
    )
    eval_return = models.FloatField(null=True, blank=True)
    samples_per_s = models.FloatField(null=True, blank=True)
    updates_per_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["campaign", "at"], name="snapshot_campaign_at")]

    def __str__(self) -> str:
        return f"{self.campaign_id} @ {self.at:%Y-%m-%d %H:%M:%S}"
