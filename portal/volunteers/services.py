"""Volunteers and teams, the write side: page visibility, teams, staff moderation, data export."""

from __future__ import annotations

import redis
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.core.redis import get_redis
from portal.leaderboards.models import Contribution
from portal.machines.models import MachineToken
from portal.volunteers.models import Profile, Team
from portal.volunteers.selectors import CREDIT_TABLE_KEY

TEAM_NAME_MAX = 60


def boards_forget() -> None:
    """Drop the cached boards and credit table, so a name hidden or changed leaves them at once
    (the next request, or beat's next refresh, computes them again)."""
    try:
        r = get_redis()
        keys = [*r.scan_iter(match="soulsai:leaderboard:*", count=500), CREDIT_TABLE_KEY]
        r.delete(*keys)
    except redis.RedisError:
        pass  # the boards expire within a minute anyway


def profile_get_or_create(*, user) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def profile_set_hidden(*, user, hidden: bool) -> Profile:
    """The volunteer's choice: hide their public page (and their name on boards) or show it."""
    profile = profile_get_or_create(user=user)
    profile.hidden = hidden
    profile.save(update_fields=["hidden"])
    boards_forget()
    return profile


def _clean_team_name(name: str) -> tuple[str, str]:
    name = " ".join(str(name).split())
    if not name:
        raise ValidationError("A team needs a name.")
    if len(name) > TEAM_NAME_MAX:
        raise ValidationError(f"A team name has at most {TEAM_NAME_MAX} characters.")
    slug = slugify(name)[:70]
    if not slug:
        raise ValidationError("A team name needs at least one letter or digit.")
    return name, slug


@transaction.atomic
def team_create(*, founder, name: str, description: str = "") -> Team:
    """A new team with ``founder`` as its first member (leaving any team they were in)."""
    name, slug = _clean_team_name(name)
    description = " ".join(str(description).split())[:300]
    if Team.objects.filter(name__iexact=name).exists() or Team.objects.filter(slug=slug).exists():
        raise ValidationError(f"There is already a team called “{name}”.")
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug, description=description, founder=founder)
    except IntegrityError as exc:  # made by someone else in between
        raise ValidationError(f"There is already a team called “{name}”.") from exc
    team_join(user=founder, team=team)
    return team


def team_join(*, user, team: Team) -> Profile:
    """``user`` joins ``team`` (leaving their old one): their credit from now on counts for it."""
    if team.name_hidden:
        raise ValidationError("This team is hidden by the staff.")
    profile = profile_get_or_create(user=user)
    profile.team, profile.team_joined = team, timezone.now()
    profile.save(update_fields=["team", "team_joined"])
    return profile


def team_leave(*, user) -> Profile:
    """``user`` leaves their team; what they gave it stays with it."""
    profile = profile_get_or_create(user=user)
    profile.team, profile.team_joined = None, None
    profile.save(update_fields=["team", "team_joined"])
    return profile


# ---- staff moderation (each audit-logged) --------------------------------------------------------


@transaction.atomic
def user_rename(*, actor, user, new_username: str):
    User = get_user_model()
    new_username = str(new_username).strip()
    field = User._meta.get_field(User.USERNAME_FIELD)
    field.run_validators(new_username)
    if not new_username or len(new_username) > field.max_length:
        raise ValidationError("Not a valid username.")
    if User.objects.filter(username__iexact=new_username).exclude(pk=user.pk).exists():
        raise ValidationError(f"The username “{new_username}” is taken.")
    old = user.username
    user.username = new_username
    user.save(update_fields=["username"])
    transaction.on_commit(boards_forget)
    audit_record(actor=actor, action=AuditEntry.Action.RENAME, target=user, detail=f"was {old}")
    return user


@transaction.atomic
def user_name_hide(*, actor, user, hidden: bool = True) -> Profile:
    """Staff hide (or show again) an offensive username: boards say "hidden volunteer", no page."""
    profile = profile_get_or_create(user=user)
    profile.name_hidden = hidden
    profile.save(update_fields=["name_hidden"])
    transaction.on_commit(boards_forget)
    audit_record(
        actor=actor, action=AuditEntry.Action.HIDE_NAME, target=user, detail="hidden" if hidden else "shown"
    )
    return profile


@transaction.atomic
def team_rename(*, actor, team: Team, new_name: str) -> Team:
    name, slug = _clean_team_name(new_name)
    if Team.objects.filter(slug=slug).exclude(pk=team.pk).exists():
        raise ValidationError(f"There is already a team called “{name}”.")
    old = team.name
    team.name, team.slug = name, slug
    team.save(update_fields=["name", "slug"])
    transaction.on_commit(boards_forget)
    audit_record(actor=actor, action=AuditEntry.Action.RENAME, target=f"team {name}", detail=f"was {old}")
    return team


@transaction.atomic
def team_name_hide(*, actor, team: Team, hidden: bool = True) -> Team:
    team.name_hidden = hidden
    team.save(update_fields=["name_hidden"])
    transaction.on_commit(boards_forget)
    audit_record(
        actor=actor, action=AuditEntry.Action.HIDE_NAME, target=f"team {team.name}",
        detail="hidden" if hidden else "shown",
    )  # fmt: skip
    return team


# ---- the volunteer's own data --------------------------------------------------------------------


def user_data_export(*, user) -> dict:
    """Everything the portal holds about ``user`` (docs/privacy: the download on their profile).

    Machine tokens appear by name and prefix: the secret itself is never stored, only its hash.
    """
    profile = Profile.objects.filter(user=user).select_related("team").first()
    machines = [
        {
            "name": t.name,
            "campaign": t.campaign.slug,
            "token_prefix": t.prefix,
            "created": t.created.isoformat(),
            "last_seen": t.last_seen.isoformat() if t.last_seen else None,
            "client_version": t.client_version,
            "active": t.is_active,
            "samples": t.samples,
            "episodes": t.episodes,
            "rejections": t.rejections,
        }
        for t in MachineToken.objects.filter(user=user).select_related("campaign").order_by("created")
    ]
    contributions = [
        {"campaign": slug, "hour": hour.isoformat(), "steps": s, "episodes": e, "wins": w}
        for slug, hour, s, e, w in Contribution.objects.filter(user=user)
        .order_by("hour", "campaign__slug")
        .values_list("campaign__slug", "hour", "samples", "episodes", "wins")
    ]
    return {
        "account": {
            "username": user.username,
            "email": user.email,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
        },
        "public_page_hidden": bool(profile and profile.hidden),
        "team": profile.team.name if profile and profile.team else None,
        "machines": machines,
        "contributions": contributions,
    }
