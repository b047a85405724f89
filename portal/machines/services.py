"""Machine tokens: made when a volunteer joins a campaign, shown once, stored hashed, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.core.redis import get_redis
from portal.machines.models import MachineToken
from portal.relay.fanout import REVOKED, notice_publish
from trainer.keys import CampaignKeys
from trainer.machine_stats import Evidence, outlier_scores, parse_sums

TOKEN_PREFIX = "sai_"


def _hash(raw: str) -> str:
    # Tokens are 190 bits of randomness, so a fast hash is enough (as for GitHub's or Stripe's keys).
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user, campaign: Campaign, name: str) -> tuple[MachineToken, str]:
    """Make a machine token for ``user`` on ``campaign``; returns the row and the plain token.

    Raises ValidationError for a campaign that takes no more volunteers (stopped).
    """
    if campaign.status == Campaign.Status.STOPPED:
        raise ValidationError("This campaign has stopped: it takes no more volunteers. Pick a running campaign.")
    name = (name or "").strip()[:60] or "my machine"
    for _ in range(5):
        prefix = secrets.token_hex(6)
        if not MachineToken.objects.filter(prefix=prefix).exists():
            break
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    token = MachineToken.objects.create(
        user=user, campaign=campaign, name=name, prefix=prefix, key_hash=_hash(raw)
    )
    return token, raw


@transaction.atomic
def token_join(*, user, campaign: Campaign, name: str) -> tuple[MachineToken, str]:
    """What a volunteer's Join does: ``token_create`` within the account's cap of live tokens.

    Raises ValidationError, saying what to do, when ``user`` already holds
    ``SOULSAI_TOKENS_PER_ACCOUNT`` live tokens (revoked ones do not count). Demo clients and benches,
    which the operator runs, make tokens with ``token_create`` directly.
    """
    # Two joins at once must not both pass the count: hold the user's row until the token exists.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    cap = settings.SOULSAI_TOKENS_PER_ACCOUNT
    if MachineToken.objects.active().filter(user=user).count() >= cap:
        raise ValidationError(
            f"You have {cap} live machine tokens, the most one account may hold. Revoke one you no longer "
            f"use on your profile ({reverse('accounts:profile')}), then join again."
        )
    return token_create(user=user, campaign=campaign, name=name)


def token_authenticate(*, raw: str) -> MachineToken | None:
    """The active token that ``raw`` is, with its user and campaign, or None."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    prefix = raw[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = (
        MachineToken.objects.active()
        .select_related("user", "campaign")
        .filter(prefix=prefix)
        .first()
    )
    if token is None or not hmac.compare_digest(token.key_hash, _hash(raw)):
        return None
    if not token.user.is_active:
        return None
    return token


def token_record_client(*, token_id: int, client_version: str, reported_name: str = "") -> None:
    """Note that the token's machine connected now, with this client version and the name its client
    gave (its host name by default: staff tell machines apart by it)."""
    name = "".join(ch for ch in str(reported_name)[:200] if ch.isprintable()).strip()[:60]
    MachineToken.objects.filter(pk=token_id).update(
        client_version=client_version[:32], reported_name=name, last_seen=timezone.now()
    )


@transaction.atomic
def token_revoke(*, token: MachineToken) -> MachineToken:
    """Revoke a token: refused at its next connection, and dropped at once where it is connected.

    The relay's store script refuses chunks of tokens in the campaign's ``revoked`` set, and a
    notice tells every ASGI process to close the token's open connections (4401).
    """
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        campaign_id, token_id = token.campaign_id, token.pk
        transaction.on_commit(lambda: _announce_revocation(campaign_id, token_id))
    return token


def tokens_revoke_for_user(*, user) -> int:
    """Revoke every live token of ``user`` (deactivated or about to be deleted); returns how many.

    Each is a full revocation: in the database now, in Redis and on live connections on commit.
    """
    tokens = list(MachineToken.objects.active().filter(user=user))
    for token in tokens:
        token_revoke(token=token)
    return len(tokens)


def token_deleted(*, token: MachineToken) -> None:
    """A token row is being deleted: if it was live, announce its revocation on commit.

    Its id stays in the campaign's ``revoked`` set (ids are never reused), so the store script
    refuses the connection's next chunk even where the notice was missed.
    """
    if token.revoked_at is None and token.pk is not None:
        campaign_id, token_id = token.campaign_id, token.pk
        transaction.on_commit(lambda: _announce_revocation(campaign_id, token_id))


def _announce_revocation(campaign_id: int, token_id: int) -> None:
    get_redis().sadd(CampaignKeys(campaign_id).revoked, token_id)
    notice_publish(kind=REVOKED, campaign_id=campaign_id, machine=token_id)


def token_unflag(*, token: MachineToken) -> MachineToken:
    """Clear a machine's bad-data flag (staff looked into it): its throttling ends at once."""
    keys = CampaignKeys(token.campaign_id)
    pipe = get_redis().pipeline()
    pipe.hdel(keys.flagged, token.pk)
    pipe.delete(keys.bad_window(token.pk))
    pipe.execute()
    if token.flagged_at is not None:
        token.flagged_at = None
        token.save(update_fields=["flagged_at"])
    return token


# Take a machine's counters to zero and mark it voided, atomically (the relay's store script may be
# adding to them): returns what the counters held, so that the credit loses exactly that.
VOID_LUA = """
local lost = {}
for i = 1, 3 do
  lost[i] = tonumber(redis.call('HGET', KEYS[i], ARGV[1]) or '0')
  redis.call('HSET', KEYS[i], ARGV[1], 0)
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
return lost
"""


@dataclass(frozen=True)
class VoidResult:
    """What a void took back: the machine's counters as they stood (its credit lost as much)."""

    samples: int
    episodes: int
    wins: int


def token_void(*, token: MachineToken) -> VoidResult:
    """Void everything a machine sent: the learner drops its samples, its counters and credit go back.

    The token is revoked too (data it sent later would be voided all the same). Redis first, in one
    script: the token joins the campaign's ``revoked`` set (the relay refuses its next chunk) and its
    ``voided`` hash, which the learner reads at its next housekeeping (about once a second) to remove
    the machine's samples from its replay buffer or pending rollout and to skip its unread stream
    entries; its per-machine counters go to zero. Then the database: its credit loses what those
    counters held (``contributions_void``), and the void is recorded so that a Redis that lost its
    data gets it back (``campaign_redis_sync``). Voiding twice takes back only what came in between.
    """
    from portal.leaderboards.models import MachineTally
    from portal.leaderboards.services import contributions_void

    keys = CampaignKeys(token.campaign_id)
    now = timezone.now()
    client = get_redis()
    client.sadd(keys.revoked, token.pk)
    with transaction.atomic():
        # Locked before the counters move, so a roll-up cannot credit them in between.
        tally = MachineTally.objects.select_for_update().filter(token=token).first()
        lost = client.eval(
            VOID_LUA,
            4,
            keys.machine_samples,
            keys.machine_episodes,
            keys.machine_wins,
            keys.voided,
            token.pk,
            int(now.timestamp()),
        )
        result = VoidResult(*(int(n) for n in lost))
        # Only what a roll-up credited comes off the boards: the rest (sent since the last roll-up)
        # was never credited, and with the counters at zero it never will be.
        credited = {
            field: min(getattr(result, field), getattr(tally, field) if tally is not None else 0)
            for field in ("samples", "episodes", "wins")
        }
        contributions_void(token=token, **credited)
        token.voided_at = token.voided_at or now
        token.samples = token.episodes = 0
        token.save(update_fields=["voided_at", "samples", "episodes"])
        token_revoke(token=token)
    return result


# Rows per statement of machines_figures_sync: 6 parameters each, far below SQLite's and PostgreSQL's
# limits (32,766 and 65,535 per statement), and a bounded statement however many machines send.
FIGURES_SYNC_ROWS = 1000


@dataclass(frozen=True)
class MachineFigures:
    """A machine's live figures from Redis (None: Redis holds none; the row keeps its own)."""

    pk: int
    samples: int | None
    episodes: int | None
    rejections: int | None
    last_seen: datetime
    flagged_at: datetime | None = None  # set on the row only where it has none (unflagging is staff's)


def machines_figures_sync(*, campaign_id: int, figures: Sequence[MachineFigures]) -> int:
    """Write the campaign's machines' live figures into their rows; returns the rows changed.

    One statement per FIGURES_SYNC_ROWS machines (a VALUES list joined to the table, changed rows
    only), not a read of every row and an UPDATE each: at 5,000 sending machines every 2 s the
    roll-up read and wrote them one by one (bench/rollup.py). Machines of other campaigns are not
    touched, whatever ``figures`` says.
    """
    if not figures:
        return 0
    meta, quote = MachineToken._meta, connection.ops.quote_name
    table = quote(meta.db_table)

    def bare(name: str) -> str:
        return quote(meta.get_field(name).column)

    def column(name: str) -> str:
        return f"{table}.{bare(name)}"

    postgres = connection.vendor == "postgresql"
    # PostgreSQL needs each VALUES column's type (a NULL alone has none); SQLite stores datetimes as
    # the text Django's adapter writes, which a cast would turn into a number.
    number = "CAST(%s AS bigint)"
    moment = "CAST(%s AS timestamp with time zone)" if postgres else "%s"
    differs = "IS DISTINCT FROM" if postgres else "IS NOT"
    row = f"({number}, {number}, {number}, {number}, {moment}, {moment})"
    adapt = connection.ops.adapt_datetimefield_value
    changed = 0
    with transaction.atomic():
        for start in range(0, len(figures), FIGURES_SYNC_ROWS):
            part = figures[start : start + FIGURES_SYNC_ROWS]
            # A VALUES list's columns are column1, column2, ... in SQLite and PostgreSQL alike (and a
            # statement that starts with WITH reports no row count through Python's sqlite3).
            sql = f"""
                UPDATE {table} SET
                    {bare("samples")} = COALESCE(v.column2, {column("samples")}),
                    {bare("episodes")} = COALESCE(v.column3, {column("episodes")}),
                    {bare("rejections")} = COALESCE(v.column4, {column("rejections")}),
                    {bare("last_seen")} = v.column5,
                    {bare("flagged_at")} = COALESCE({column("flagged_at")}, v.column6)
                FROM (VALUES {", ".join([row] * len(part))}) AS v
                WHERE {column("id")} = v.column1 AND {column("campaign")} = %s AND (
                    {column("samples")} <> COALESCE(v.column2, {column("samples")})
                    OR {column("episodes")} <> COALESCE(v.column3, {column("episodes")})
                    OR {column("rejections")} <> COALESCE(v.column4, {column("rejections")})
                    OR {column("last_seen")} {differs} v.column5
                    OR ({column("flagged_at")} IS NULL AND v.column6 IS NOT NULL)
                )
            """  # noqa: S608  (names from the model's meta, values as parameters)
            params: list = []
            for f in part:
                params += [f.pk, f.samples, f.episodes, f.rejections, adapt(f.last_seen), adapt(f.flagged_at)]
            params.append(campaign_id)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                changed += max(cursor.rowcount, 0)
    return changed


def machines_flag_outliers(*, campaign_id: int) -> list[Evidence]:
    """Score the campaign's machines against the pool and flag those past ``SOULSAI_OUTLIER_SCORE``.

    Called by the stats roll-up, at most every ``SOULSAI_OUTLIER_EVERY`` seconds per campaign (one
    HGETALL of the learner's per-machine sums). A flagged machine is throttled like one flagged for bad
    data and listed for staff with its evidence; every scored machine that is already flagged gets
    its evidence refreshed. Returns the evidence of the machines past the threshold.
    """
    keys = CampaignKeys(campaign_id)
    client = get_redis()
    if not client.set(f"{keys.tag}:outlier_check", 1, nx=True, ex=max(1, settings.SOULSAI_OUTLIER_EVERY)):
        return []
    scores = outlier_scores(parse_sums(client.hgetall(keys.machine_stats)))
    odd = [e for e in scores.values() if e.score >= settings.SOULSAI_OUTLIER_SCORE]
    if not odd:
        return []
    now = timezone.now()
    tokens = MachineToken.objects.filter(campaign_id=campaign_id, pk__in=[e.machine_id for e in odd])
    by_id = {token.pk: token for token in tokens}
    for evidence in odd:
        token = by_id.get(evidence.machine_id)
        if token is None or token.voided_at is not None:
            continue
        client.hsetnx(keys.flagged, token.pk, int(now.timestamp()))
        token.flagged_at = token.flagged_at or now
        token.outlier_evidence = evidence.as_json()
        token.save(update_fields=["flagged_at", "outlier_evidence"])
    return odd
