"""The arena's rules: the fighters' numbers, Iudex's attack table, and the geometry of the arena.

See docs/soulsgym.md for what each number stands for and where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from client_app import iudex as I

DT = I.STEP_SECONDS
# Animation clocks advance this much per step (recorded at game_speed 3: a median 0.097 s a step, the
# player's and Iudex's alike), and an action's animation shows 0.08 s on the next observation, not 0.1
# (48 of the 102 recorded starts; a walk's Move shows 0.1): the key lands ACTION_LAG into the step. The
# mask's timings fall on the same steps as in the game: a roll allows nothing at 0.66 s and everything
# at 0.76 s, where 0.1 s steps from 0 would allow an attack one step earlier, at 0.7 s.
ANIM_DT, ACTION_LAG = 0.097, 0.02
TAU = 2 * math.pi
ARENA_RADIUS = 22.0  # a walled disc around ARENA_CENTER: the fight stays well inside the coordinate box
BOSS_RADIUS = 1.0  # bodies never overlap closer than this

# The player (knight starting class, SoulsGym's Iudex stats). Figures marked "recorded" are measured on
# tests/data/iudex_recorded_episodes.json (bench/arena_fidelity.py measures them the same way on the arena).
WALK_STEP = 0.15  # metres per step, locked on (recorded median 0.125, upper quartile 0.23)
ROLL_STEP = (
    0.6  # metres per step for the first ROLL_MOVE_S of a roll: a whole roll covers 3.6 m (recorded 3.65)
)
ROLL_MOVE_S = 0.6
ROLL_IFRAMES = (0.05, 0.45)  # seconds into a roll during which hits pass through
# Stamina costs (recorded: roll 16, light attack 20, parry 26-28, get-up roll 16 from full SP). The cost
# is paid in full whenever SP is above 0, so SP goes negative (recorded down to -60; SoulsGym declares
# Box(0, 95)).
ROLL_SP, LIGHT_SP, HEAVY_SP, PARRY_SP, GETUP_SP = 16.0, 20.0, 30.0, 27.0, 16.0
STEP_LIGHT_SP = 30.0  # the attack out of a roll (recorded once: 53 -> 23)
# A roll and a get-up pay at once; a light attack pays this far into its swing (recorded between 0.37 and
# 0.48 s, 3 of 3), a parry this far into it (between 0.17 and 0.29 s, 4 of 4): until then SP stands.
LIGHT_SP_AT, PARRY_SP_AT = 0.45, 0.25
SP_REGEN = 4.5  # per step while walking, standing, staggered or held (recorded: 4.3-4.6)
LIGHT = {"reach": 2.9, "arc": math.radians(60), "damage": 52.0, "at": 0.4, "poise": 1.0}  # 52: the recording
STEP_LIGHT = {"reach": 3.2, "arc": math.radians(60), "damage": 52.0, "at": 0.45, "poise": 1.0}
# The recording never shows a heavy attack: 27 presses of the key (action 17), 3 of them allowed, changed
# nothing. The arena does the same; True gives the knight's heavy attack below (docs/soulsgym.md: a
# recording that shows it would settle which).
HEAVY_ATTACK_WORKS = False
HEAVY = {"reach": 3.1, "arc": math.radians(50), "damage": 95.0, "at": 0.8, "poise": 2.0}
PARRY_WINDOW = (0.1, 0.35)
RIPOSTE = {"reach": 3.0, "damage": 260.0, "at": 1.0, "window": 2.6}
POISE_BREAK = 8.0  # poise points (light 1, heavy 2) that put Iudex in SABreak
ROLL_MAX_S = 1.5  # a roll's animation runs on until the next action (recorded up to 1.24 s), at most this
# Knocked down or released from the grab, the roll key gets him up (EStepDown) once the mask allows a
# roll (1.92 s, 6.91 s); without it he lies until this.
KNOCKDOWN_MAX = {"DamageExLarge": 3.72, "ThrowDef": 8.3}
GRAB_DAMAGE, GRAB_DAMAGE_AT = 174.0, 1.9  # the grab's damage lands this long into his ThrowAtk (recorded)
FLINCH_S = (0.45, 0.1)  # a hit during a roll's vulnerable frames: AddDamageStartFront, then AddDamageDefault
# Which hits only flinch a rolling player (recorded once: 3012's 119, a DamageMiddle hit, 0.47 s into a
# roll); a knock-down hit knocks him down whatever he does (recorded knock-downs: 2 of 9 hits).
ROLL_FLINCH = frozenset({"DamageMiddle", "DamagePush"})

# Iudex.
# The share of the attack table's damage he deals by default: full strength, as in the game (the
# recording's damage per hit and hits to die). ``boss_damage`` lowers it per campaign (env_kwargs) for an
# easier, labelled variant ("easy: boss_damage 0.4" in every page and figure that uses it).
BOSS_DAMAGE = 1.0
EASY_BOSS_DAMAGE = 0.4
BOSS_WALK_STEP = 0.17  # metres per step (recorded median)
BOSS_STRAFE_STEP = 0.145  # recorded median 0.14-0.15
BOSS_TURN = 2.5 * DT  # radians per step when walking or standing
ATTACK_FACING = 1.0  # radians: he turns until the player is within this of his facing before attacking
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
    lunge: float = 0.0  # most metres moved forward during the wind-up (negative: a step back)
    track: float = 0.6  # fraction of the wind-up during which he turns fast after the player
    weight: float = 1.0  # how often he picks it (the recorded counts)
    cut: float = 0.0  # the earliest a chained follow-up may cut it short (0: after its last hit + 0.2 s)
    max_range: float = 99.0  # he picks it only when the player is closer than this (the grab)

    @property
    def windup(self) -> float:
        return self.hits[0].start

    @property
    def recovery_from(self) -> float:
        return self.hits[-1].end

    @property
    def earliest_cut(self) -> float:
        return self.cut or min(self.duration, self.recovery_from + 0.2)


def _deg(d: float) -> float:
    return math.radians(d)


# Durations: the longest each animation lasted in the recorded game (tests/data). Weights: how often each
# started in the recording (20 attacks; 3012 four times, 3004 three, 3001, 3002 and 3005 twice, the rest
# once); the grab's reach (3010) is raised: it only holds within 2.6 m. Cuts: the recording's chained 3012
# ended at 1.01 s (three times), before its own hit (recorded at 1.71 s): a feint into the next swing;
# 3004 at 2.15 and 2.75 s. Hit times: recorded where a hit landed (3000 1.57 s, 3002 1.95 and 2.68 s,
# 3004 1.86 s, 3005 0.58-0.62 s, 3012 1.71 s, 3014 1.30 s, the grab's slam 1.85 s), else plausible.
# Reach: plausible, but never shorter than where a recorded hit landed (3000 at 4.3-4.6 m, 3012 at
# 4.3-4.7 m from his centre, the distance before and after the step it landed in).
ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("Attack3000", 1.67, (Hit(1.45, 1.65, 4.8, _deg(90), 95, "DamageMiddle"),), lunge=3.0),
        Attack(
            "Attack3001",
            2.79,
            (Hit(1.35, 1.55, 4.5, _deg(35), 160, "DamageExLarge", False),),
            lunge=2.5,
            weight=2,
        ),
        Attack(
            "Attack3002",
            3.84,
            (
                Hit(0.9, 1.05, 3.8, _deg(80), 80, "DamageMiddle"),
                Hit(1.8, 1.95, 3.8, _deg(80), 80, "DamageMiddle"),
                Hit(2.7, 2.9, 4.5, _deg(60), 150, "DamageExLarge", False),
            ),
            lunge=3.0,
            weight=2,
        ),
        Attack(
            "Attack3004",
            3.16,
            (Hit(1.8, 2.0, 5.0, _deg(50), 121, "DamageMiddle", False),),
            lunge=5.0,
            weight=3,
            cut=2.1,
        ),
        Attack(
            "Attack3005", 1.26, (Hit(0.45, 0.6, 2.6, _deg(60), 50, "DamagePush", False),), lunge=0.5, weight=2
        ),
        Attack("Attack3007", 2.49, (Hit(1.1, 1.35, 4.2, _deg(180), 110, "DamageExLarge", False),), lunge=1.0),
        Attack(
            "Attack3008",
            3.24,
            (
                Hit(1.0, 1.15, 4.0, _deg(70), 90, "DamageMiddle"),
                Hit(2.0, 2.2, 4.0, _deg(70), 120, "DamageExLarge"),
            ),
            lunge=1.5,
        ),
        # The grab's reach: Attack3010, which turns into ThrowAtk when it takes hold (recorded once, at 1.9 m).
        Attack(
            "Attack3010", 1.4, (Hit(0.9, 1.2, 2.8, _deg(45), 0, "ThrowDef", False),), lunge=1.5, weight=3.5
        ),
        Attack(
            "Attack3012",
            1.8,
            (Hit(1.6, 1.75, 4.9, _deg(100), 119, "DamageMiddle"),),
            lunge=2.0,
            weight=4,
            cut=1.0,
        ),
        Attack("Attack3013", 1.71, (Hit(0.7, 0.9, 3.5, _deg(90), 90, "DamageMiddle"),), lunge=-2.0),
        Attack("Attack3014", 2.17, (Hit(1.2, 1.4, 5.5, _deg(30), 108, "DamageExLarge"),), lunge=4.0),
        # Never picked: Attack3010 turns into it when the grab holds (its hit: the slam, GRAB_DAMAGE_AT).
        Attack("ThrowAtk", 6.02, (Hit(1.9, 2.0, 99.0, math.pi, GRAB_DAMAGE, "ThrowDef", False),), weight=0),
    )
}
#: Phase 2 (Iudex turned beast): its own moveset, none of it in the recording. The animations SoulsGym
#: lists that phase 1 never showed (Attack3003, 3006, 3009, 3011, 3015, 3029), with lengths and hit
#: windows of the same build as phase 1's, and the phase-1 swings he keeps (3004, 3012, 3014, the grab).
#: Each fight scales every phase-2 length by a factor drawn in PHASE2_TEMPO.
PHASE2_ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack(
            "Attack3003",
            2.2,
            (Hit(0.8, 1.0, 4.5, _deg(120), 110, "DamageLarge", False),),
            lunge=2.0,
            weight=3,
        ),
        Attack(
            "Attack3006",
            3.0,
            (
                Hit(0.7, 0.85, 4.0, _deg(90), 90, "DamageMiddle"),
                Hit(1.6, 1.8, 4.5, _deg(90), 120, "DamageLarge"),
            ),
            lunge=2.5,
            weight=3,
        ),
        Attack(
            "Attack3009",
            2.6,
            (Hit(1.3, 1.5, 6.0, _deg(40), 140, "DamageExLarge", False),),
            lunge=5.0,
            weight=2,
        ),
        Attack("Attack3011", 1.6, (Hit(0.55, 0.7, 4.0, _deg(70), 100, "DamageMiddle"),), lunge=1.5, weight=3),
        Attack("Attack3015", 3.4, (Hit(1.5, 1.9, 5.0, _deg(180), 150, "DamageExLarge", False),), weight=1),
        Attack(
            "Attack3029", 2.4, (Hit(1.0, 1.2, 7.0, _deg(30), 130, "DamageLarge", False),), lunge=6.0, weight=2
        ),
        ATTACKS["Attack3004"],
        ATTACKS["Attack3012"],
        ATTACKS["Attack3014"],
        ATTACKS["Attack3010"],
        ATTACKS["ThrowAtk"],
    )
}
ALL_ATTACKS: dict[str, Attack] = {**ATTACKS, **PHASE2_ATTACKS}
PHASE2_TEMPO = (0.85, 1.05)

# What each fight draws, because 699 recorded steps cannot pin it down (docs/soulsgym.md states why):
CHAIN_P = (0.5, 0.72)  # chance a finished attack goes straight into the next (recorded 0.61 of 18)
CHAIN_P2 = (0.65, 0.85)  # phase 2 chains more (not recorded)
CUT_P = (0.3, 0.6)  # chance a chained attack is cut short (recorded 5 of 11)
PAUSE_S = (
    0.5,
    4.5,
)  # seconds from an unchained attack's end to his next attack (recorded 0.6-4.3, median 2.3)
PAUSE_MEDIAN = (1.8, 2.6)
FAST_TURN = (
    _deg(150),
    _deg(260),
)  # rad/s: his tracking turn in an attack's wind-up (recorded bursts 120-280 °/s)
SLOW_TURN = (_deg(10), _deg(30))  # rad/s after the last hit
HIT_JITTER = (-0.15, 0.15)  # seconds each swing's hit windows move, drawn per attack
SWEEP_TURN = (_deg(60), _deg(150))  # rad/s his swing turns him by, around each hit window

RUN_STOP = ("RunStopFront", "RunStopRight", "RunStopBack", "RunStopLeft")
#: The run stop by the last walk's direction (recorded: 2 right, 4 and 3 and 5 back, 6 left, 1 right).
RUN_STOP_SIDE = (0, 1, 1, 2, 2, 2, 3, 0)
RUN_STOP_S = 0.27  # a run stop turns into Move after this (recorded: RunStopRight 0.19 s, then Move)
#: When a player's stagger animation ends (the walk timing of SoulsGym's table).
PLAYER_ANIM_END = {name: t[2] for name, t in I.PLAYER_ANIMATION_TIMINGS.items()}
PLAYER_ANIM_END.update(
    {"ParryLeftStart": 0.93, "AttackRightLightStep": 1.0, "EStepDown": 0.87, "AddDamageStartFront": FLINCH_S[0],
     "AddDamageDefault": FLINCH_S[1], **dict.fromkeys(RUN_STOP, RUN_STOP_S)}
)  # fmt: skip
#: When SP starts coming back in an action (recorded: +1 at 1.05 s into a roll that runs on, none at 0.95),
#: else when it ends.
REGEN_AFTER = {"RollingMedium": 1.03, "RollingMediumSelftra": 1.03, "ParryLeftStart": 0.93, "EStepDown": 0.87,
               "AttackRightLight1": 1.03, "AttackRightLight2": 1.03, "AttackRightLight3": 1.13,
               "AttackRightLightStep": 1.0}  # fmt: skip
ROLLS = frozenset({"RollingMedium", "RollingMediumSelftra"})
ATTACKING = frozenset(
    {"AttackRightLight1", "AttackRightLight2", "AttackRightLight3", "AttackRightLightStep", "AttackRightHeavy1Sta",
     "AttackRightHeavy1End", "ParryLeftStart", "RollingMedium", "RollingMediumSelftra", "EStepDown", "ThrowAtk"}
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
