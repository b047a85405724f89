"""A volunteer's public side (their page shown or hidden, their team) and teams.

Contributions themselves stay in portal.leaderboards (hourly buckets); each bucket remembers the team
its volunteer was in, so a team keeps what was given while its members were in it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

HIDDEN_NAME = "hidden volunteer"
HIDDEN_TEAM = "hidden team"
DELETED_NAME = "deleted volunteer"


class Team(models.Model):
    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=70, unique=True)
    description = models.CharField(max_length=300, blank=True)
    founder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    # Set by staff for an offensive name: the team shows as "hidden team" and its page is gone.
    name_hidden = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def public_name(self) -> str:
        return HIDDEN_TEAM if self.name_hidden else self.name


class Profile(models.Model):
    """One per volunteer, made when first needed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="volunteer")
    # The volunteer's choice: their page 404s for others, boards say "hidden volunteer".
    hidden = models.BooleanField(default=False)
    # Staff's: an offensive username, hidden the same way until renamed.
    name_hidden = models.BooleanField(default=False)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    team_joined = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"

    @property
    def is_public(self) -> bool:
        return not (self.hidden or self.name_hidden)
