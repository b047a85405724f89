"""Campaigns (one agent learning one fight) and the model versions their learner publishes."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

# Numeric dotted versions only: client_app.protocol.parse_version compares them part by part.
version_validator = RegexValidator(r"^\d{1,6}(\.\d{1,6}){0,3}$", "a version like 0.1.0 (numbers and dots)")


class CampaignQuerySet(models.QuerySet):
    def running(self) -> CampaignQuerySet:
        return self.filter(status=Campaign.Status.RUNNING)

    def public(self) -> CampaignQuerySet:
        return self.exclude(status=Campaign.Status.DRAFT)


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"

    class Algorithm(models.TextChoices):
        DQN = "dqn", "DQN"
        PPO = "ppo", "PPO"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    env_id = models.CharField("environment", max_length=120, help_text="gymnasium id, e.g. CartPole-v1")
    env_kwargs = models.JSONField(default=dict, blank=True)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.DQN)
    hyperparams = models.JSONField(default=dict, blank=True, help_text="overrides of the algorithm's defaults")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    observation_space = models.JSONField(default=dict, blank=True)
    action_space = models.JSONField(default=dict, blank=True)
    chunk_steps = models.PositiveIntegerField(default=128, help_text="steps per chunk clients send")
    min_client_version = models.CharField(
        max_length=32,
        default="0.1.0",
        validators=[version_validator],
        help_text="older clients are refused at the handshake and told to download the current one",
    )
    pause_reason = models.CharField(
        max_length=200, blank=True, help_text="why staff paused it, shown on its page and in the clients"
    )
    max_policy_lag = models.PositiveIntegerField(
        default=0,
        help_text="refuse chunks played by a model more than this many versions older than the "
        "current one (0: no limit); applies to connections made after the change",
    )

    # Figures rolled up from Redis by the stats task (portal.campaigns.tasks.sync_stats).
    model_version = models.PositiveIntegerField(default=0)
    samples_total = models.BigIntegerField(default=0)
    episodes_total = models.BigIntegerField(default=0)
    updates_total = models.BigIntegerField(default=0)
    clients_active = models.PositiveIntegerField(default=0)
    mean_return_recent = models.FloatField(null=True, blank=True)
    win_rate_recent = models.FloatField(null=True, blank=True, help_text="boss fights: share of the last 100 won")
    wins_total = models.BigIntegerField(default=0)
    first_win_at = models.DateTimeField(null=True, blank=True, help_text="boss fights: when the roll-up first saw a win")
    stalled_rate_recent = models.FloatField(
        null=True, blank=True, help_text="boss fights: share of the last 100 where neither side lost HP"
    )
    # Mean HP left (fractions) at the end of the same recent fights, over those that reported it.
    boss_hp_left_recent = models.FloatField(null=True, blank=True, help_text="boss fights: last 100's mean")
    player_hp_left_recent = models.FloatField(null=True, blank=True, help_text="boss fights: last 100's mean")
    # The newest checkpoint with a finished greedy evaluation (see ModelVersion.eval_*).
    eval_version = models.PositiveIntegerField(null=True, blank=True)
    eval_return = models.FloatField(null=True, blank=True)
    eval_win_rate = models.FloatField(null=True, blank=True, help_text="boss fights only")
    eval_boss_hp_left = models.FloatField(null=True, blank=True, help_text="boss fights only")
    eval_player_hp_left = models.FloatField(null=True, blank=True, help_text="boss fights only")
    # The roll-out gate (trainer.gating, applied by tasks.evaluations_sync): while the newest evaluated
    # checkpoint is held back, the best checkpoint is what reconnecting clients are welcomed with and
    # what the pages present as the agent; None: the newest version.
    agent_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="set by the roll-out gate while the newest checkpoint is held back"
    )

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("campaigns:detail", kwargs={"slug": self.slug})

    @property
    def accepts_experience(self) -> bool:
        return self.status == self.Status.RUNNING


def model_upload_to(instance: ModelVersion, filename: str) -> str:
    return f"models/{instance.campaign.slug}/{filename}"


class ModelVersion(models.Model):
    """One published set of weights. Every ``checkpoint_every``-th one is kept as a checkpoint."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    weights = models.FileField(upload_to=model_upload_to, max_length=300)
    state = models.FileField(upload_to=model_upload_to, max_length=300, blank=True)
    size_bytes = models.PositiveIntegerField(default=0)
    is_checkpoint = models.BooleanField(default=False, db_index=True)
    samples_total = models.BigIntegerField(default=0)
    updates_total = models.BigIntegerField(default=0)
    mean_return_recent = models.FloatField(null=True, blank=True)
    # Greedy evaluation episodes played by clients when the learner asked (checkpoints only):
    # their mean return, how many there were, and how many were won (None: no win/loss, not a boss fight),
    # and the mean boss and player HP left at their end, as fractions (None: not a boss fight).
    eval_return = models.FloatField(null=True, blank=True)
    eval_episodes = models.PositiveIntegerField(default=0)
    eval_wins = models.PositiveIntegerField(null=True, blank=True)
    eval_boss_hp_left = models.FloatField(null=True, blank=True)
    eval_player_hp_left = models.FloatField(null=True, blank=True)
    eval_return_std = models.FloatField(null=True, blank=True)  # the returns' sample standard deviation
    # Why the roll-out gate held this checkpoint back ("held back: v12 won 20% of 40 fights vs best
    # v9's 55% of 40"); empty: rolled out, or not judged (docs/trainer.md, "Roll-out gate").
    held_back = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["campaign", "version"], name="unique_campaign_version")]

    def __str__(self) -> str:
        return f"{self.campaign.slug} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("campaigns:model", kwargs={"slug": self.campaign.slug, "version": self.version})

    @property
    def eval_win_rate(self) -> float | None:
        if self.eval_wins is None or not self.eval_episodes:
            return None
        return self.eval_wins / self.eval_episodes

    def notice(self) -> dict:
        """What clients are told of this version: {version, url, sha256} (docs/protocol.md)."""
        return {"version": self.version, "url": self.get_absolute_url(), "sha256": self.sha256}
