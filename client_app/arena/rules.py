"""The arena's rules: the fighters' numbers, Iudex's attack table, and the geometry of the arena.

See docs/soulsgym.md for what each number stands for and where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from client_app import iudex as I

DT = I.STEP_SECONDS
TAU = 2 * math.pi
ARENA_RADIUS = 22.0  # a walled disc around ARENA_CENTER: the fight stays well inside the coordinate box
BOSS_RADIUS = 1.0  # bodies never overlap closer than this

# The player (knight starting class, SoulsGym's Iudex stats).
WALK_STEP = 0.3  # metres per step, locked on (the recording: ≤ 0.4)
ROLL_STEP = 0.5  # metres per step for the first ROLL_MOVE_S of a roll (the recording: median 0.5)
ROLL_MOVE_S = 0.6
ROLL_IFRAMES = (0.05, 0.45)  # seconds into a roll during which hits pass through
ROLL_SP, LIGHT_SP, HEAVY_SP, PARRY_SP = 20.0, 20.0, 30.0, 10.0
SP_REGEN = 4.5  # per step while walking, standing or recovering
LIGHT = {"reach": 2.9, "arc": math.radians(60), "damage": 52.0, "at": 0.4, "poise": 1.0}  # 52: the recording
HEAVY = {"reach": 3.1, "arc": math.radians(50), "damage": 95.0, "at": 0.8, "poise": 2.0}
PARRY_WINDOW = (0.1, 0.35)
RIPOSTE = {"reach": 3.0, "damage": 260.0, "at": 1.0, "window": 2.6}
POISE_BREAK = 8.0  # poise points (light 1, heavy 2) that put Iudex in SABreak

# Iudex.
# The share of the attack table's damage (below) he deals by default. At full strength one wrong move
# in ten loses the fight (the scripted player wins all its fights, but 28% of them when a tenth of its
# actions are random), which leaves a learner with next to no won fights to learn from; at 0.4 the
# scripted player with a tenth of its actions random still wins 85%, while random play still loses
# all but a few per cent (bench/arena.py --boss-damage; docs/soulsgym.md has the figures).
# ``boss_damage`` sets it per campaign (env_kwargs), up to the table's full strength and beyond.
BOSS_DAMAGE = 0.4
BOSS_WALK_STEP = 0.17  # metres per step (the recording's median)
BOSS_STRAFE_STEP = 0.12
BOSS_TURN = 2.5 * DT  # radians per step when walking or standing
ATTACK_FACING = 0.6  # radians: he turns until the player is within this of his facing before attacking
STAGGER_S = {"DamageParryEnemy1": 3.0, "SABreak": 2.2, "ThrowDef": 4.6}
STAGGER_ANIMS = ("DamageParryEnemy1", "SABreak", "ThrowDef")


@dataclass(frozen=True)
class Hit:
    """One hit window of a boss attack: seconds into the animation, where it reaches, what it does."""

    start: float
    end: float
    reach: float  # metres from Iudex's centre
    arc: float  # half-angle in radians around his facing
    damage: float
    stagger: str  # the player's animation when hit
    parryable: bool = True


@dataclass(frozen=True)
class Attack:
    """A boss attack: a SoulsGym Iudex animation with its recorded length (or a plausible one)."""

    name: str
    duration: float
    hits: tuple[Hit, ...]
    lunge: float = 0.0  # metres moved forward during the wind-up (negative: a step back)
    track: float = 0.6  # fraction of the wind-up during which he turns after the player
    min_range: float = 0.0  # he picks it when the player stands within [min_range, max_range]
    max_range: float = 4.6
    weight: float = 1.0

    @property
    def windup(self) -> float:
        return self.hits[0].start

    @property
    def recovery_from(self) -> float:
        return self.hits[-1].end


def _deg(d: float) -> float:
    return math.radians(d)


# Durations: the longest each animation lasted in the recorded game (tests/data), ThrowAtk included.
ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("Attack3000", 1.67, (Hit(0.75, 0.95, 4.0, _deg(90), 95, "DamageMiddle"),)),
        Attack("Attack3001", 2.79, (Hit(1.35, 1.55, 4.5, _deg(35), 160, "DamageLarge", False),), lunge=1.5),
        Attack(
            "Attack3002",
            3.84,
            (
                Hit(0.9, 1.05, 3.8, _deg(80), 80, "DamageMiddle"),
                Hit(1.8, 1.95, 3.8, _deg(80), 80, "DamageMiddle"),
                Hit(2.7, 2.9, 4.5, _deg(60), 150, "DamageExLarge", False),
            ),
            lunge=1.0,
            weight=0.7,
        ),
        Attack(
            "Attack3004",
            3.16,
            (Hit(1.8, 2.0, 5.0, _deg(50), 121, "DamageMiddle", False),),
            lunge=3.5,
            min_range=3.5,
            max_range=8.5,
        ),
        Attack("Attack3005", 1.26, (Hit(0.45, 0.6, 2.6, _deg(60), 45, "DamagePush", False),), max_range=2.4),
        Attack("Attack3007", 2.49, (Hit(1.1, 1.35, 4.2, _deg(180), 110, "DamageLarge", False),)),
        Attack(
            "Attack3008",
            3.24,
            (
                Hit(1.0, 1.15, 4.0, _deg(70), 90, "DamageMiddle"),
                Hit(2.0, 2.2, 4.0, _deg(70), 120, "DamageLarge"),
            ),
            lunge=0.8,
        ),
        Attack("Attack3010", 1.4, (Hit(0.65, 0.8, 5.0, _deg(25), 100, "DamageMiddle"),), lunge=1.0),
        Attack("Attack3012", 1.8, (Hit(0.9, 1.1, 4.5, _deg(100), 119, "DamageMiddle"),)),
        Attack("Attack3013", 1.71, (Hit(0.7, 0.9, 3.5, _deg(90), 90, "DamageMiddle"),), lunge=-2.0),
        Attack(
            "Attack3014",
            2.17,
            (Hit(1.2, 1.4, 5.5, _deg(30), 108, "DamageMiddle"),),
            lunge=2.5,
            min_range=4.0,
            max_range=9.0,
        ),
        Attack(
            "ThrowAtk",
            6.02,
            (Hit(0.6, 0.8, 2.2, _deg(40), 174, "ThrowDef", False),),
            max_range=2.0,
            weight=0.5,
        ),
    )
}
CLOSE_ATTACKS = tuple(a for a in ATTACKS.values() if a.min_range == 0.0)
GAP_CLOSERS = tuple(a for a in ATTACKS.values() if a.min_range > 0.0)
#: When a player's stagger animation ends (the walk timing of SoulsGym's table).
PLAYER_ANIM_END = {name: t[2] for name, t in I.PLAYER_ANIMATION_TIMINGS.items()}
PLAYER_ANIM_END.update({"RollingMedium": 0.75, "ParryLeftStart": 0.93})
ATTACKING = frozenset(
    {"AttackRightLight1", "AttackRightLight2", "AttackRightLight3", "AttackRightHeavy1Sta",
     "AttackRightHeavy1End", "ParryLeftStart", "RollingMedium", "ThrowAtk"}
)  # fmt: skip
NEXT_LIGHT = {"AttackRightLight1": "AttackRightLight2", "AttackRightLight2": "AttackRightLight3"}
PLAYER_INIT_POSES = (
    (132.176, 575.064, -68.066, -2.768),
    (128.620, 588.938, -68.699, -1.954),
    (128.546, 597.277, -69.268, -1.239),
    (132.947, 603.929, -69.245, -0.735),
    (140.445, 607.224, -69.140, -0.081),
    (146.849, 606.306, -68.791, 0.264),
    (153.072, 600.071, -69.349, 1.162),
    (154.785, 592.327, -68.601, 1.686),
    (151.261, 586.145, -69.404, 2.208),
    (146.127, 581.390, -69.248, 2.785),
    (141.091, 578.185, -68.943, 3.055),
)  # fmt: skip  (soulsgym's coordinates.yaml, player_init_poses_random)


def wrap(angle: float) -> float:
    """An angle in [-pi, pi)."""
    return (angle + math.pi) % TAU - math.pi


def heading(dx: float, dy: float) -> float:
    """The game's yaw of a direction: yaw 0 faces -y, +pi/2 faces -x (see iudex.encode)."""
    return math.atan2(-dx, -dy)


def floor_z(x: float, y: float) -> float:
    # A gently tilted floor, so z varies like the recording's (-69.4 .. -67.3).
    return -68.8 + 0.015 * (x - I.ARENA_CENTER[0]) - 0.01 * (y - I.ARENA_CENTER[1])
