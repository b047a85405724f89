"""Machine tokens: what a volunteer's client presents to the relay, one per machine and campaign."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class MachineTokenQuerySet(models.QuerySet):
    def active(self) -> MachineTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def flagged(self) -> MachineTokenQuerySet:
        return self.filter(flagged_at__isnull=False)


class MachineToken(models.Model):
    """Stored hashed: the plain token is shown once, when it is made (portal.machines.services)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="machine_tokens")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="machine_tokens")
    name = models.CharField(max_length=60)
    prefix = models.CharField(max_length=16, unique=True, help_text="public part, shown in lists and logs")
    key_hash = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    client_version = models.CharField(max_length=32, blank=True)
    reported_name = models.CharField(
        max_length=60, blank=True, help_text="the machine name its client gave at its latest connection"
    )
    samples = models.BigIntegerField(default=0)
    episodes = models.BigIntegerField(default=0)
    # Rolled up from Redis by sync_stats: chunks refused for good, and when the relay flagged the
    # machine for sending bad data (it is throttled until staff unflag it).
    rejections = models.BigIntegerField(default=0)
    flagged_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When staff voided the machine's data (portal.machines.services.token_void): the learner keeps
    # none of its samples and its credit was taken back.
    voided_at = models.DateTimeField(null=True, blank=True)
    # Why the roll-up found its experience odd against the pool (trainer.machine_stats.Evidence.as_json:
    # score, episodes, residuals [statistic, its mean, the pool's median, residual]); null if never.
    outlier_evidence = models.JSONField(null=True, blank=True)

    objects = MachineTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
