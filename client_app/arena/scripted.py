"""A hand-written Iudex player: the yardstick for the arena's difficulty and for learned policies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from client_app import iudex as I
from client_app.arena.rules import ALL_ATTACKS as ATTACKS
from client_app.arena.rules import HIT_JITTER, LIGHT_SP, ROLL_SP, STAGGER_ANIMS

#: How long before a hit's middle it rolls: the roll's invulnerability (0.05-0.45 s, from 0.02 s into
#: the step) is then centred on it, and covers it whether it lands a little early or late.
ROLL_LEAD = 0.3
#: The least time to Iudex's next possible hit for a swing to be safe: the light attack cannot be
#: rolled out of before 0.8 s, and the roll must start ROLL_LEAD before the hit.
SWING_SAFE = 0.9 + ROLL_LEAD
#: His quickest attack's first hit (Attack3005, 0.45 s): what a chained follow-up can bring at the soonest.
QUICKEST_HIT = min(a.hits[0].start for a in ATTACKS.values() if a.weight > 0)
#: What it counts on, in his pauses, before his next hit could land: he may attack at any moment, but
#: all his attacks except 3005 and 3013 (11% of his mix) take a second or more to land. The risk it takes.
IDLE_SOON = 1.2
REACH = 2.6  # metres (centre to centre) within which a light attack lands
ROLL_AWAY = 12  # roll back, out of the swing's reach: a hit that lands early or late still misses
ROLL_IN = 8  # roll forward, back into reach


def _next_hit_in(boss: str, t: float) -> tuple[float, float]:
    """Seconds until Iudex's next hit can land at the soonest, and its reach. Idle or walking, he may
    start an attack at once; in an attack, its next hit (early by the jitter), or past the last one, a
    chained follow-up's quickest hit after the attack's end."""
    attack = ATTACKS.get(boss)
    if boss in STAGGER_ANIMS:
        return math.inf, 0.0
    if attack is None:
        return IDLE_SOON, 4.5
    if boss == "ThrowAtk":
        return math.inf, 0.0
    for h in attack.hits:
        if t < h.end + HIT_JITTER[1]:
            return (h.start + h.end) / 2 - t, h.reach
    return max(0.0, attack.duration - t) + QUICKEST_HIT, 4.5


def scripted_action(obs: dict[str, Any]) -> int:
    """A hand-written Iudex player, the yardstick a learned policy should beat.

    Reads only the observation (and the attack tables, as a player who knows the fight): rolls through
    each hit just before its earliest moment, keeps enough stamina for that roll, strikes only when
    Iudex's next hit is far enough off to roll out of the swing in time (in his pauses, early in a long
    wind-up, when he is staggered, and after a combo's last hit), and walks back into reach.
    """
    p, b = obs["player_pose"], obs["boss_pose"]
    dist = math.hypot(float(p[0]) - float(b[0]), float(p[1]) - float(b[1]))
    boss = I.BOSS_ANIMATIONS[obs["boss_animation"]] if obs["boss_animation"] >= 0 else "?"
    t = float(np.asarray(obs["boss_animation_duration"]).flat[0])
    sp = float(np.asarray(obs["player_sp"]).flat[0])
    player = I.PLAYER_ANIMATIONS[obs["player_animation"]] if obs["player_animation"] >= 0 else "?"
    pt = float(np.asarray(obs["player_animation_duration"]).flat[0])
    allowed = I.allowed_actions(player, pt, sp)
    if player in ("DamageExLarge", "ThrowDef") and ROLL_AWAY in allowed:
        return ROLL_AWAY  # get up as soon as he can
    soon, reach = _next_hit_in(boss, t)
    if soon <= ROLL_LEAD and dist <= reach + 1.0:
        return ROLL_AWAY if ROLL_AWAY in allowed else I.NOOP
    if boss in STAGGER_ANIMS:  # staggered or parried: every swing is free (a light attack ripostes)
        if dist < REACH and I.LIGHT_ATTACK in allowed:
            return I.LIGHT_ATTACK
        return 0 if 0 in allowed else I.NOOP
    if dist < REACH and soon >= SWING_SAFE and sp >= LIGHT_SP + ROLL_SP and I.LIGHT_ATTACK in allowed:
        return I.LIGHT_ATTACK
    if sp < LIGHT_SP + ROLL_SP and dist < reach + 1.0:
        return I.NOOP  # let SP come back for the next roll rather than walk into his swing
    if dist > REACH + 3.0 and soon > 1.0 and sp >= LIGHT_SP + 2 * ROLL_SP and ROLL_IN in allowed:
        return ROLL_IN
    if dist > REACH - 0.4 and 0 in allowed:
        return 0
    return I.NOOP


def observation_from_encoded(v: np.ndarray) -> dict[str, Any]:
    """What ``scripted_action`` reads, recovered from an encoded observation (``iudex.encode``).

    The learner holds only encoded observations: this is how it checks that a step a client says its
    guide played is the guide's action (``guide_actions``). Poses come back as a distance on the x
    axis; a value the encoding clipped (a distance past 30 m, a duration past 10 s) comes back at the
    bound, where the player's choice no longer depends on it.
    """
    v = np.asarray(v, dtype=np.float32)
    player = int(np.argmax(v[I.PLAYER_ANIM_SLICE])) - 1  # slot 0 is "unknown": -1
    boss = int(np.argmax(v[I.BOSS_ANIM_SLICE])) - 1
    return {
        "player_pose": (0.0, 0.0, 0.0, 0.0),
        "boss_pose": (float(v[I.DISTANCE_INDEX]) * I.DISTANCE_SCALE, 0.0, 0.0, 0.0),
        "boss_animation": boss,
        "boss_animation_duration": float(v[I.BOSS_DURATION_INDEX]) * I.DURATION_SCALE,
        "player_sp": float(v[2]) * I.PLAYER_MAX_SP,
        "player_animation": player,
        "player_animation_duration": float(v[I.PLAYER_DURATION_INDEX]) * I.DURATION_SCALE,
    }


def guide_actions(obs: np.ndarray) -> np.ndarray:
    """The scripted player's action at each encoded observation of ``obs`` (rows), int64."""
    return np.fromiter(
        (scripted_action(observation_from_encoded(row)) for row in np.asarray(obs)), dtype=np.int64, count=len(obs)
    )
