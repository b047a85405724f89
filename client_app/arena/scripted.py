"""A hand-written Iudex player: the yardstick for the arena's difficulty and for learned policies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from client_app import iudex as I
from client_app.arena.rules import ALL_ATTACKS as ATTACKS
from client_app.arena.rules import STAGGER_ANIMS


def scripted_action(obs: dict[str, Any]) -> int:
    """A simple hand-written Iudex player, the yardstick a learned policy should beat.

    Reads only the observation (and the attack tables above, as a player who knows the fight):
    stays close to Iudex, rolls forward-right through each hit as it is about to land, and strikes while
    he recovers from an attack or is staggered.
    """
    p, b = obs["player_pose"], obs["boss_pose"]
    dist = math.hypot(float(p[0]) - float(b[0]), float(p[1]) - float(b[1]))
    boss = I.BOSS_ANIMATIONS[obs["boss_animation"]] if obs["boss_animation"] >= 0 else "?"
    t = float(np.asarray(obs["boss_animation_duration"]).flat[0])
    sp = float(np.asarray(obs["player_sp"]).flat[0])
    player = I.PLAYER_ANIMATIONS[obs["player_animation"]] if obs["player_animation"] >= 0 else "?"
    pt = float(np.asarray(obs["player_animation_duration"]).flat[0])
    allowed = I.allowed_actions(player, pt, sp)
    attack = ATTACKS.get(boss)
    if boss in STAGGER_ANIMS:
        if dist < 2.6 and I.LIGHT_ATTACK in allowed:
            return I.LIGHT_ATTACK
        return 0 if 0 in allowed else I.NOOP
    if attack is not None:
        pending = [h for h in attack.hits if h.end > t]
        if pending:
            h = pending[0]
            if h.start - t <= 0.2 and dist <= h.reach + 0.6 and 9 in allowed:
                return 9  # roll forward-right, through the hit, to stay close for the punish
            return I.NOOP
        if attack.duration - t > 0.3 and dist < 2.6 and I.LIGHT_ATTACK in allowed and sp > 20:
            return I.LIGHT_ATTACK
    if dist > 2.4 and 0 in allowed:
        return 0
    return I.NOOP
