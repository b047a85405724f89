"""Iudex Gundyr as SoulsGym 1.1.0 defines it, and the one encoder that flattens its observations.

The constants below are copied from soulsgym 1.1.0 (``soulsgym/core/data/darksouls3/*.yaml``,
``soulsgym/envs/config/iudex.yaml`` and ``soulsgym/envs/darksouls3/iudex.py``, MIT licence), so that
the client, the server and the arena simulator agree with the real game without importing soulsgym
(which only imports on Windows with the game installed).

``encode(obs)`` turns an Iudex observation dict into a flat float32 vector of ``ENCODED_DIM``
values, each inside ``ENCODED_LOW``..``ENCODED_HIGH``; the layout is ``ENCODED_FIELDS`` and
docs/soulsgym.md. The client encodes before sending, the learner trains on the encoded vectors, and
the campaign declares ``encoded_space()`` as its observation space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# ---------------------------------------------------------------------------------------------------
# SoulsGym 1.1.0 facts

#: Player animations in SoulsGym's order: an animation's ID is its index (``-1``: unknown).
#: Each has three timings in seconds: how long into the animation the player cannot
#: (hit or parry, roll, walk). ``current_valid_actions`` compares them with the animation's duration.
PLAYER_ANIMATION_TIMINGS: dict[str, tuple[float, float, float]] = {
    # Damage
    "AddDamageDefault": (0.5, 0.5, 0.5),
    "AddDamageStartLeft": (0.5, 0.5, 0.5),
    "AddDamageStartRight": (0.5, 0.5, 0.5),
    "AddDamageStartFront": (0.5, 0.5, 0.5),
    "AddDamageStartBack": (0.5, 0.5, 0.5),
    "GuardBreakWall": (0.54, 0.54, 0.57),
    "DamageSmall": (0.35, 0.35, 0.52),
    "DamageMiddle": (0.85, 0.85, 0.97),
    "DamageUpper": (2.85, 2.19, 2.92),
    "DamageLarge": (1.02, 1.18, 1.25),
    "DamageExLarge": (3.60, 1.92, 3.72),
    "DamageFling": (1.01, 1.01, 1.01),
    "DamagePush": (1.02, 1.02, 1.27),
    "DamageSmallBlow": (3.10, 1.67, 3.19),
    "ThrowAtk": (4.34, 4.25, 4.37),  # the player's riposte on a parried Iudex
    "ThrowDef": (8.22, 6.91, 8.3),  # the player grabbed by Iudex
    "EStepDown": (0.69, 0.59, 0.87),
    # Movement
    "Idle": (0.0, 0.0, 0.0),
    "Move": (0.0, 0.0, 0.0),
    "None": (0.0, 0.0, 0.0),
    "BackStepNomal": (0.41, 0.63, 0.67),
    "RollingMedium": (0.69, 0.73, 0.75),
    "RollingMediumSelftra": (0.7, 0.73, 0.75),
    "RunStopFront": (0.0, 0.0, 0.0),
    "RunStopBack": (0.0, 0.0, 0.0),
    "RunStopLeft": (0.0, 0.0, 0.0),
    "RunStopRight": (0.0, 0.0, 0.0),
    "QuickTurnLeft180": (0.1, 0.2, 0.2),
    "QuickTurnRight180": (0.1, 0.2, 0.2),
    # Attacks
    "AttackRightLight1": (0.63, 0.8, 1.03),
    "AttackRightLight2": (0.63, 0.77, 1.03),
    "AttackRightLight3": (0.53, 0.8, 1.13),
    "AttackRightLightStep": (0.73, 0.8, 0.9),
    "AttackRightHeavy1Sta": (1.0, 1.0, 1.0),
    "AttackRightHeavy1Sub": (0.1, 0.1, 0.1),
    "AttackRightHeavy1End": (0.53, 0.70, 0.89),
    "AttackRightHeavy2Sta": (1.0, 1.0, 1.0),
    "AttackRightHeavy2End": (0.75, 0.76, 0.9),
    "ParryLeftStart": (0.8, 0.9, 0.93),
    "LandLow": (0.0, 0.0, 0.0),
    "Land": (0.0, 0.0, 0.0),
    "LandFaceUp": (25.0, 25.0, 25.0),
    "LandFaceDown": (25.0, 25.0, 25.0),
    "FallStart": (0.0, 0.0, 0.0),
    "FallStartFaceUp": (0.0, 0.0, 0.0),
    "FallStartFaceDown": (0.0, 0.0, 0.0),
    "FallLoop": (0.0, 0.0, 0.0),
    "FallLoopFaceUp": (0.0, 0.0, 0.0),
    "FallLoopFaceDown": (0.0, 0.0, 0.0),
    "FallAttackStart": (0.0, 0.0, 0.0),
}
PLAYER_ANIMATIONS: tuple[str, ...] = tuple(PLAYER_ANIMATION_TIMINGS)
PLAYER_ANIMATION_IDS: dict[str, int] = {name: i for i, name in enumerate(PLAYER_ANIMATIONS)}
CRITICAL_PLAYER_ANIMATIONS: tuple[str, ...] = ("DeathIdle",)

#: Iudex's animations in SoulsGym's order (attacks, movement, misc): the ID is the index.
BOSS_ATTACKS: tuple[str, ...] = (
    *(f"Attack30{n:02d}" for n in range(16)),
    "Attack3029",
    "ThrowAtk",  # Iudex grabs the player
    "ThrowDef",  # Iudex riposted after a parry
)
BOSS_MOVEMENT: tuple[str, ...] = (
    "WalkFrontBattle",
    "WalkLeftBattle",
    "WalkRightBattle",
    "WalkBackBattle",
    "IdleBattle",
    "TurnBattle_Right90",
    "TurnBattle_Right180",
    "TurnBattle_Left90",
    "TurnBattle_Left180",
    "FallingDefault",
    "LandDefault",
)
BOSS_MISC: tuple[str, ...] = ("SABreak", "DamageParryEnemy1")
BOSS_ANIMATIONS: tuple[str, ...] = BOSS_ATTACKS + BOSS_MOVEMENT + BOSS_MISC
BOSS_ANIMATION_IDS: dict[str, int] = {name: i for i, name in enumerate(BOSS_ANIMATIONS)}

#: Actions: the keys SoulsGym presses for each of the 20 action ids.
ACTIONS: tuple[tuple[str, ...], ...] = (
    ("forward",), ("forward", "right"), ("right",), ("right", "backward"),
    ("backward",), ("backward", "left"), ("left",), ("left", "forward"),
    ("forward", "roll"), ("forward", "right", "roll"), ("right", "roll"), ("right", "backward", "roll"),
    ("backward", "roll"), ("backward", "left", "roll"), ("left", "roll"), ("left", "forward", "roll"),
    ("lightattack",), ("heavyattack",), ("parry",), (),
)  # fmt: skip
N_ACTIONS = len(ACTIONS)
WALK_ACTIONS = range(0, 8)
ROLL_ACTIONS = range(8, 16)
LIGHT_ATTACK, HEAVY_ATTACK, PARRY, NOOP = 16, 17, 18, 19

# iudex.yaml: the arena's coordinate box ([x, y, z, yaw]) and the fight's fixed stats.
COORD_LOW = (110.0, 540.0, -73.0, -3.1416)
COORD_HIGH = (190.0, 640.0, -55.0, 3.1416)
PLAYER_MAX_HP = 454
PLAYER_MAX_SP = 95
BOSS_MAX_HP = 1037
#: The point the reward's small term pulls the player towards (IudexEnv.compute_reward).
REWARD_CENTER = (139.0, 596.0)
#: coordinates.yaml
ARENA_CENTER = (142.0, 595.0, -68.8)
PLAYER_INIT_POSE = (132.176, 575.064, -68.066, -2.768)
BOSS_INIT_POSE = (141.3, 591.9, -68.8, 0.6)
STEP_SECONDS = 0.1
MAX_EPISODE_STEPS = 3000

SOULSGYM_IUDEX_IDS = ("SoulsGymIudex-v0", "SoulsGymIudexDemo-v0")
ARENA_ID = "soulsai/IudexArena-v0"
#: Every env id whose observations are Iudex dicts, so that make_env wraps them with the encoder.
IUDEX_ENV_IDS = (*SOULSGYM_IUDEX_IDS, ARENA_ID)


def observation_space() -> spaces.Dict:
    """The observation space of ``SoulsGymIudex-v0``, built exactly as soulsgym 1.1.0 builds it."""
    pose_low = np.array(COORD_LOW, dtype=np.float32)
    pose_high = np.array(COORD_HIGH, dtype=np.float32)
    cam_low = np.array([*COORD_LOW[:3], -1, -1, -1], dtype=np.float32)
    cam_high = np.array([*COORD_HIGH[:3], 1, 1, 1], dtype=np.float32)
    return spaces.Dict(
        {
            "phase": spaces.Discrete(2, start=1),
            "player_hp": spaces.Box(0, PLAYER_MAX_HP),
            "player_max_hp": spaces.Discrete(1, start=PLAYER_MAX_HP),
            "player_sp": spaces.Box(0, PLAYER_MAX_SP),
            "player_max_sp": spaces.Discrete(1, start=PLAYER_MAX_SP),
            "boss_hp": spaces.Box(0, BOSS_MAX_HP),
            "boss_max_hp": spaces.Discrete(1, start=BOSS_MAX_HP),
            "player_pose": spaces.Box(pose_low, pose_high, dtype=np.float32),
            "boss_pose": spaces.Box(pose_low, pose_high, dtype=np.float32),
            "camera_pose": spaces.Box(cam_low, cam_high, dtype=np.float32),
            "player_animation": spaces.Discrete(len(PLAYER_ANIMATIONS) + 1, start=-1),
            "player_animation_duration": spaces.Box(0.0, 10.0),
            "boss_animation": spaces.Discrete(len(BOSS_ANIMATIONS) + 1, start=-1),
            "boss_animation_duration": spaces.Box(0.0, 10.0),
            "lock_on": spaces.Discrete(2),
        }
    )


def action_space() -> spaces.Discrete:
    """``Discrete(20)``, as soulsgym 1.1.0 (``len(actions.yaml)``)."""
    return spaces.Discrete(N_ACTIONS)


def allowed_actions(animation: str, duration: float, sp: float) -> list[int]:
    """The actions the game takes in this player state: SoulsEnv.current_valid_actions of 1.1.0.

    Walking needs the animation's walk timing to have passed; rolls, attacks and parry need their
    timing and some stamina; doing nothing (19) is always allowed. An unknown animation counts as
    interruptible at once.
    """
    hit, roll, move = PLAYER_ANIMATION_TIMINGS.get(animation, (0.0, 0.0, 0.0))
    allowed = list(WALK_ACTIONS) if duration >= move else []
    if sp > 0 and duration >= roll:
        allowed += ROLL_ACTIONS
    if sp > 0 and duration >= hit:
        allowed += [LIGHT_ATTACK, HEAVY_ATTACK, PARRY]
    allowed.append(NOOP)
    return allowed


def compute_reward(prev: Mapping[str, Any], nxt: Mapping[str, Any]) -> float:
    """IudexEnv.compute_reward of soulsgym 1.1.0 on two observation dicts (HP as scalars or (1,))."""
    boss_hp, next_boss_hp = _scalar(prev["boss_hp"]), _scalar(nxt["boss_hp"])
    player_hp, next_player_hp = _scalar(prev["player_hp"]), _scalar(nxt["player_hp"])
    boss_reward = (boss_hp - next_boss_hp) / _scalar(prev["boss_max_hp"])
    player_reward = (next_player_hp - player_hp) / _scalar(prev["player_max_hp"])
    if next_boss_hp == 0 or next_player_hp == 0:
        base = 0.1 if next_boss_hp == 0 else -0.1
    else:
        # "Experimental: reward for moving towards the arena center, none within 4 m."
        cx, cy = REWARD_CENTER
        now = math.hypot(_scalar(nxt["player_pose"], 0) - cx, _scalar(nxt["player_pose"], 1) - cy)
        before = math.hypot(_scalar(prev["player_pose"], 0) - cx, _scalar(prev["player_pose"], 1) - cy)
        base = 0.01 * (before - now) * (now > 4)
    return float(boss_reward + player_reward + base)


# ---------------------------------------------------------------------------------------------------
# The encoder

#: Animation durations are divided by this and clipped to [0, 1]. SoulsGym declares Box(0, 10) but
#: reports longer ones (a player left lying after a knock-down, ThrowDef's 8.3 s): everything past
#: 10 s means "has been in this animation for a long time", which the clip keeps.
DURATION_SCALE = 10.0
#: The distance between player and boss is divided by this and clipped to [0, 1].
DISTANCE_SCALE = 30.0

_N_PLAYER_ANIM = len(PLAYER_ANIMATIONS) + 1  # slot 0 is "unknown" (-1 or anything out of range)
_N_BOSS_ANIM = len(BOSS_ANIMATIONS) + 1


def _layout() -> list[tuple[str, float, float]]:
    fields = [
        ("phase", 0.0, 1.0),  # 0 for phase 1, 1 for phase 2
        ("player_hp", 0.0, 1.0),  # fraction of max HP
        ("player_sp", -1.0, 1.0),  # fraction of max SP: the real game goes below 0 (the recording: -60)
        ("boss_hp", 0.0, 1.0),
    ]
    for who in ("player", "boss"):
        fields += [(f"{who}_x", -1.0, 1.0), (f"{who}_y", -1.0, 1.0), (f"{who}_z", -1.0, 1.0)]
        fields += [(f"{who}_yaw_sin", -1.0, 1.0), (f"{who}_yaw_cos", -1.0, 1.0)]
    fields += [
        ("distance", 0.0, 1.0),  # player to boss in the ground plane, / DISTANCE_SCALE
        ("boss_bearing_sin", -1.0, 1.0),  # where the boss stands, relative to the player's facing
        ("boss_bearing_cos", -1.0, 1.0),
        ("player_facing_sin", -1.0, 1.0),  # where the player stands, relative to the boss's facing
        ("player_facing_cos", -1.0, 1.0),
    ]
    fields += [("player_animation=unknown", 0.0, 1.0)]
    fields += [(f"player_animation={name}", 0.0, 1.0) for name in PLAYER_ANIMATIONS]
    fields += [("player_animation_duration", 0.0, 1.0)]
    fields += [("boss_animation=unknown", 0.0, 1.0)]
    fields += [(f"boss_animation={name}", 0.0, 1.0) for name in BOSS_ANIMATIONS]
    fields += [("boss_animation_duration", 0.0, 1.0), ("lock_on", 0.0, 1.0)]
    return fields


#: (name, low, high) of every value in the encoded vector, in order.
ENCODED_FIELDS: tuple[tuple[str, float, float], ...] = tuple(_layout())
ENCODED_DIM = len(ENCODED_FIELDS)
ENCODED_LOW = np.array([f[1] for f in ENCODED_FIELDS], dtype=np.float32)
ENCODED_HIGH = np.array([f[2] for f in ENCODED_FIELDS], dtype=np.float32)
_INDEX = {name: i for i, (name, _, _) in enumerate(ENCODED_FIELDS)}
PLAYER_ANIM_SLICE = slice(
    _INDEX["player_animation=unknown"], _INDEX["player_animation=unknown"] + _N_PLAYER_ANIM
)
BOSS_ANIM_SLICE = slice(_INDEX["boss_animation=unknown"], _INDEX["boss_animation=unknown"] + _N_BOSS_ANIM)
_P_DUR = _INDEX["player_animation_duration"]
_B_DUR = _INDEX["boss_animation_duration"]
# Where the scripted player's inputs sit in the encoded vector (client_app.arena.scripted).
DISTANCE_INDEX = _INDEX["distance"]
PLAYER_DURATION_INDEX, BOSS_DURATION_INDEX = _P_DUR, _B_DUR
_LOCK = _INDEX["lock_on"]
_POSE_SPAN = [(COORD_HIGH[i] - COORD_LOW[i]) / 2 for i in range(3)]
_POSE_MID = [(COORD_HIGH[i] + COORD_LOW[i]) / 2 for i in range(3)]


def field_index(name: str) -> int:
    """Where a named value lies in the encoded vector (see ENCODED_FIELDS)."""
    return _INDEX[name]


def encoded_space() -> spaces.Box:
    """The Box that campaigns on Iudex declare as their observation space."""
    return spaces.Box(ENCODED_LOW.copy(), ENCODED_HIGH.copy(), dtype=np.float32)


def _scalar(value: Any, index: int = 0) -> float:
    # Observations hold numbers, 1-element arrays (HP) or lists (poses read back from JSON).
    if isinstance(value, np.ndarray):
        return float(value.flat[index])
    if isinstance(value, (list, tuple)):
        return float(value[index])
    return float(value)


def _clip(value: float, low: float, high: float) -> float:
    # NaN (a garbled memory read) becomes the low bound rather than poisoning the network.
    return low if not value >= low else high if value > high else value


def _one_hot_index(value: Any, n: int) -> int:
    # Slot 0 is "unknown": SoulsGym's -1, and anything a newer soulsgym adds past our table.
    try:
        i = int(value) + 1
    except (TypeError, ValueError):
        return 0
    return i if 0 < i < n else 0


def encode(obs: Mapping[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """Flatten one Iudex observation dict into ``ENCODED_DIM`` float32 values within the bounds.

    Accepts the env's dict (NumPy arrays) as well as the same dict read back from JSON (lists,
    Python numbers, booleans). Writes into ``out`` when given (it must be zeroed float32).
    """
    v = np.zeros(ENCODED_DIM, dtype=np.float32) if out is None else out
    v[0] = _clip(_scalar(obs["phase"]) - 1.0, 0.0, 1.0)
    v[1] = _clip(_scalar(obs["player_hp"]) / max(_scalar(obs["player_max_hp"]), 1.0), 0.0, 1.0)
    v[2] = _clip(_scalar(obs["player_sp"]) / max(_scalar(obs["player_max_sp"]), 1.0), -1.0, 1.0)
    v[3] = _clip(_scalar(obs["boss_hp"]) / max(_scalar(obs["boss_max_hp"]), 1.0), 0.0, 1.0)
    poses = []
    i = 4
    for key in ("player_pose", "boss_pose"):
        pose = obs[key]
        x, y, z, yaw = (_scalar(pose, k) for k in range(4))
        yaw = yaw if math.isfinite(yaw) else 0.0
        for k, c in enumerate((x, y, z)):
            v[i + k] = _clip((c - _POSE_MID[k]) / _POSE_SPAN[k], -1.0, 1.0)
        v[i + 3], v[i + 4] = math.sin(yaw), math.cos(yaw)
        poses.append((x, y, yaw))
        i += 5
    (px, py, pyaw), (bx, by, byaw) = poses
    dx, dy = bx - px, by - py
    dist = math.hypot(dx, dy)
    v[i] = _clip(dist / DISTANCE_SCALE, 0.0, 1.0)
    # Yaw convention of the game: yaw 0 faces -y, and a heading (dx, dy) has yaw atan2(-dx, -dy).
    to_boss = math.atan2(-dx, -dy) if dist > 0 else pyaw
    to_player = math.atan2(dx, dy) if dist > 0 else byaw
    rel_boss, rel_player = to_boss - pyaw, to_player - byaw
    if not (math.isfinite(rel_boss) and math.isfinite(rel_player)):
        rel_boss = rel_player = 0.0
    v[i + 1], v[i + 2] = math.sin(rel_boss), math.cos(rel_boss)
    v[i + 3], v[i + 4] = math.sin(rel_player), math.cos(rel_player)
    v[PLAYER_ANIM_SLICE.start + _one_hot_index(obs["player_animation"], _N_PLAYER_ANIM)] = 1.0
    v[_P_DUR] = _clip(_scalar(obs["player_animation_duration"]) / DURATION_SCALE, 0.0, 1.0)
    v[BOSS_ANIM_SLICE.start + _one_hot_index(obs["boss_animation"], _N_BOSS_ANIM)] = 1.0
    v[_B_DUR] = _clip(_scalar(obs["boss_animation_duration"]) / DURATION_SCALE, 0.0, 1.0)
    v[_LOCK] = 1.0 if _scalar(obs["lock_on"]) else 0.0
    return v


def outcome(obs: Mapping[str, Any]) -> dict[str, Any]:
    """The fight's standing after this observation: a win once the boss's HP is 0, HP as fractions."""
    boss = _clip(_scalar(obs["boss_hp"]) / max(_scalar(obs["boss_max_hp"]), 1.0), 0.0, 1.0)
    player = _clip(_scalar(obs["player_hp"]) / max(_scalar(obs["player_max_hp"]), 1.0), 0.0, 1.0)
    return {"win": boss <= 0.0 and player > 0.0, "boss_hp": boss, "player_hp": player}


#: The key of a step's info that holds the observation dict before encoding (``IudexEncoder``).
RAW_OBS = "iudex_obs"


class IudexEncoder(gym.Wrapper):
    """Presents an Iudex env (the game or the arena) as a flat ``encoded_space()`` Box.

    Each step's info also gets ``info["outcome"]`` (see ``outcome``) when the episode ends, by a
    kill, a death or the 3000-step cut, so that clients report wins and HP left, and
    ``info[RAW_OBS]`` (at reset too), the observation dict before encoding (a reference, no copy): an
    evaluation episode records its fight trace from it (``client_app.protocol.trace.fight_frame``),
    and a guided training episode's scripted player reads it.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = encoded_space()

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        return encode(obs), {**info, RAW_OBS: obs}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = {**info, "outcome": outcome(obs)}
        info[RAW_OBS] = obs
        return encode(obs), reward, terminated, truncated, info
