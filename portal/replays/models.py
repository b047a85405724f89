"""Replays: the step-by-step traces of evaluation episodes, for anyone following a campaign to watch."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from portal.campaigns.models import Campaign


def replay_upload_to(instance: Replay, filename: str) -> str:
    return f"replays/{instance.campaign.slug}/{filename}"


class ReplayQuerySet(models.QuerySet):
    def wins(self) -> ReplayQuerySet:
        return self.filter(won=True)


class Replay(models.Model):
    """One evaluation episode's trace (``client_app.protocol.trace``), stored as a ``.npy`` file through
    the same storage as model files; a bounded number are kept per campaign (``services.replays_prune``)."""

    class Kind(models.TextChoices):
        FIGHT = "fight", "Boss fight"
        STEPS = "steps", "Steps"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="replays")
    model_version = models.PositiveIntegerField(help_text="the checkpoint that played it")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    episode_return = models.FloatField()
    length = models.PositiveIntegerField(help_text="steps")
    won = models.BooleanField(null=True, help_text="boss fights: did the agent win (None: not a boss fight)")
    boss_hp_left = models.FloatField(null=True, blank=True)
    player_hp_left = models.FloatField(null=True, blank=True)
    trace = models.FileField(upload_to=replay_upload_to, max_length=300)
    size_bytes = models.PositiveIntegerField(default=0)
    # The campaign's first evaluation win: kept for good as the campaign page's milestone.
    first_win = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ReplayQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"], condition=models.Q(first_win=True), name="one_first_win_per_campaign"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} replay {self.pk} (v{self.model_version})"

    def get_api_url(self) -> str:
        return reverse("api:replay", kwargs={"slug": self.campaign.slug, "replay_id": self.pk})
