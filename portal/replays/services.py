"""Keeping replays: store a validated trace, keep a bounded number per campaign, tell the live page.

A replay is written only for an evaluation result the relay recorded (``portal.relay.evaluation``),
from the trace it validated (``client_app.protocol.decode_trace``), never the bytes as they came: a
``.npy`` file of float32 written with ``allow_pickle=False`` and read back the same way.

Kept per campaign (``replays_prune``, after each new one), everything else deleted from storage too:

- the first win (``Replay.first_win``), for good: the campaign page's milestone;
- the best: won before lost, then the highest return;
- the ``KEEP_LATEST`` newest;
- one per checkpoint (the first to arrive) for the newest ``KEEP_VERSIONS`` evaluated versions.

So a campaign holds at most 2 + KEEP_LATEST + KEEP_VERSIONS replays of at most
``client_app.protocol.MAX_TRACE_BYTES`` each (about 12 MB).
"""

from __future__ import annotations

import io
import logging
import secrets

import numpy as np
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F

from client_app.protocol import FIGHT_FIELDS, EvalResult
from portal.campaigns.models import Campaign
from portal.livestats.services import campaign_group
from portal.replays.models import Replay
from portal.replays.selectors import replay_summary

log = logging.getLogger(__name__)

KEEP_LATEST = 3  # the newest replays kept, whatever they are
KEEP_VERSIONS = 40  # checkpoint versions (the newest evaluated) that keep one replay each


def _npy(trace: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(trace, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def replay_save(*, campaign: Campaign, result: EvalResult) -> Replay:
    """Store ``result``'s validated trace as a replay of ``campaign``, then prune its older ones."""
    trace = result.trace
    if trace is None:
        raise ValueError("an evaluation result without a trace has no replay")
    outcome = result.outcome or {}
    won = outcome.get("win") if result.outcome is not None else None
    data = _npy(trace)
    replay = Replay(
        campaign=campaign,
        model_version=result.model_version,
        kind=Replay.Kind.FIGHT if trace.shape[1] == len(FIGHT_FIELDS) else Replay.Kind.STEPS,
        episode_return=result.episode_return,
        length=result.episode_length,
        won=won,
        boss_hp_left=outcome.get("boss_hp"),
        player_hp_left=outcome.get("player_hp"),
        size_bytes=len(data),
    )
    replay.trace.save(f"v{result.model_version}-{secrets.token_hex(8)}.npy", ContentFile(data), save=False)
    try:
        try:
            with transaction.atomic():
                replay.first_win = bool(won) and not campaign.replays.filter(first_win=True).exists()
                replay.save()
        except IntegrityError:  # another process stored the first win a moment before
            replay.first_win = False
            replay.save()
    except BaseException:
        replay.trace.delete(save=False)  # no row points at it: do not leave it in storage
        raise
    replays_prune(campaign=campaign)
    return replay


def replays_kept(*, campaign: Campaign) -> set[int]:
    """The ids of the replays ``campaign`` keeps (see the module's docstring)."""
    replays = campaign.replays.all()
    kept = set(replays.filter(first_win=True).values_list("id", flat=True))
    best = replays.order_by(F("won").desc(nulls_last=True), "-episode_return", "created", "id").first()
    if best is not None:
        kept.add(best.id)
    kept.update(replays.order_by("-created", "-id").values_list("id", flat=True)[:KEEP_LATEST])
    versions = list(
        replays.order_by("-model_version").values_list("model_version", flat=True).distinct()[:KEEP_VERSIONS]
    )
    for version in versions:
        first = (
            replays.filter(model_version=version)
            .order_by("created", "id")
            .values_list("id", flat=True)
            .first()
        )
        kept.add(first)
    return kept


def replays_prune(*, campaign: Campaign) -> int:
    """Delete the replays ``campaign`` no longer keeps, with their files; returns how many."""
    kept = replays_kept(campaign=campaign)
    gone = 0
    for replay in campaign.replays.exclude(id__in=kept):
        replay.trace.delete(save=False)
        replay.delete()
        gone += 1
    return gone


async def replay_announce(*, replay: Replay) -> None:
    """Tell the campaign's open pages about a new replay, over their live websocket (best effort):
    the page's viewer loads it (``portal.livestats.consumers``' ``replay_new``)."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "replay.new", "replay": replay_summary(replay)}
    try:
        await layer.group_send(campaign_group(replay.campaign_id), event)
    except Exception:  # the live view is best-effort: the replay is stored and listed anyway
        log.exception("live replay notice failed for campaign %s", replay.campaign_id)
