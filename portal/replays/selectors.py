"""Reading replays: the list of a campaign's, one replay's frames as the viewer and the API show them."""

from __future__ import annotations

import io
import math
from typing import Any, TypedDict

import numpy as np
from django.http import HttpRequest
from django.urls import reverse

from client_app import iudex
from client_app.protocol import FIGHT_FIELDS, MAX_TRACE_BYTES, STEP_FIELDS
from portal.campaigns.models import Campaign
from portal.replays.models import Replay

#: What the viewer draws around Iudex: the longest reach of his attacks in the arena's rules
#: (client_app/arena/rules.py: the halberd sweeps reach about 3.2 m from his centre).
BOSS_REACH_M = 3.2
#: The walled disc the arena fights in (client_app/arena/rules.py ARENA_RADIUS, around ARENA_CENTER).
ARENA_RADIUS_M = 22.0


class ReplaySummary(TypedDict):
    id: int
    campaign: str
    model_version: int
    kind: str
    episode_return: float
    length: int
    won: bool | None
    boss_hp_left: float | None
    player_hp_left: float | None
    first_win: bool
    created: str
    url: str
    model_url: str


def _absolute(request: HttpRequest | None, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


def replay_summary(replay: Replay, request: HttpRequest | None = None) -> ReplaySummary:
    """A replay without its frames (the list, the live notice): URLs absolute with a ``request``."""
    slug = replay.campaign.slug
    return ReplaySummary(
        id=replay.pk,
        campaign=slug,
        model_version=replay.model_version,
        kind=replay.kind,
        episode_return=replay.episode_return,
        length=replay.length,
        won=replay.won,
        boss_hp_left=replay.boss_hp_left,
        player_hp_left=replay.player_hp_left,
        first_win=replay.first_win,
        created=replay.created.isoformat(),
        url=_absolute(request, replay.get_api_url()),
        model_url=_absolute(
            request, reverse("campaigns:model", kwargs={"slug": slug, "version": replay.model_version})
        ),
    )


def replay_list(*, campaign: Campaign, version: int | None = None) -> list[Replay]:
    """A campaign's kept replays, newest first (only ``version``'s with one)."""
    replays = campaign.replays.select_related("campaign")
    if version is not None:
        replays = replays.filter(model_version=version)
    return list(replays)


def replay_get(*, campaign: Campaign, replay_id: int) -> Replay | None:
    return campaign.replays.select_related("campaign").filter(pk=replay_id).first()


def first_win_get(*, campaign: Campaign) -> Replay | None:
    return campaign.replays.select_related("campaign").filter(first_win=True).first()


def replay_trace(replay: Replay) -> np.ndarray:
    """The stored trace, float32 (length, columns); read with ``allow_pickle=False`` and checked."""
    with replay.trace.storage.open(replay.trace.name, "rb") as handle:
        data = handle.read(2 * MAX_TRACE_BYTES)
    trace = np.load(io.BytesIO(data), allow_pickle=False)
    columns = len(FIGHT_FIELDS) if replay.kind == Replay.Kind.FIGHT else len(STEP_FIELDS)
    if trace.dtype != np.float32 or trace.ndim != 2 or trace.shape[1] != columns:
        raise ValueError(f"{replay.trace.name}: not a {replay.kind} trace")
    return trace


def _action_name(keys: tuple[str, ...]) -> str:
    if not keys:
        return "do nothing"
    if "roll" in keys:
        return "roll " + "-".join(k for k in keys if k != "roll")
    if keys[0] in ("lightattack", "heavyattack", "parry"):
        return {"lightattack": "light attack", "heavyattack": "heavy attack", "parry": "parry"}[keys[0]]
    return "walk " + "-".join(keys)


#: Names of Iudex's 20 actions, as the viewer shows the agent's choice.
ACTION_NAMES: tuple[str, ...] = tuple(_action_name(keys) for keys in iudex.ACTIONS)


def _column(values: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) if math.isfinite(v) else 0.0 for v in values]


def replay_detail(replay: Replay, request: HttpRequest | None = None) -> dict[str, Any]:
    """One replay as the API and the viewer read it: the summary, then its frames column by column."""
    trace = replay_trace(replay)
    fields = FIGHT_FIELDS if replay.kind == Replay.Kind.FIGHT else STEP_FIELDS
    integer = {"player_animation", "boss_animation", "phase", "action"}
    frames = {name: _column(trace[:, i], 0 if name in integer else 4) for i, name in enumerate(fields)}
    for name in integer & set(fields):
        frames[name] = [int(v) for v in frames[name]]
    detail: dict[str, Any] = {**replay_summary(replay, request), "fields": list(fields), "frames": frames}
    if replay.kind == Replay.Kind.FIGHT:
        detail["tables"] = {
            "player_animations": list(iudex.PLAYER_ANIMATIONS),
            "boss_animations": list(iudex.BOSS_ANIMATIONS),
            "actions": list(ACTION_NAMES),
        }
        detail["arena"] = {
            "center": list(iudex.ARENA_CENTER[:2]),
            "radius": ARENA_RADIUS_M,
            "boss_reach": BOSS_REACH_M,
            "step_seconds": iudex.STEP_SECONDS,
        }
    return detail
