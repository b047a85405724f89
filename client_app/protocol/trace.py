"""A fight trace: what a viewer needs to replay one evaluation episode, a row of float32 per step.

An ``eval`` message may carry ``trace``, a float32 array of shape (length, columns) whose row ``t`` is
the state after step ``t`` with the action that led to it and its reward (docs/protocol.md,
"Fight traces"). Its columns depend on the campaign's environment:

- a boss fight (the Iudex arena, SoulsGym): ``FIGHT_FIELDS``, 14 numbers a step (both fighters'
  ground position and facing, HP and stamina as fractions of their maximum, each one's animation id
  in ``client_app.iudex``'s tables, the phase, the action, the reward): at most 3000 x 14 x 4 bytes,
  168 KB;
- any other environment (CartPole, LunarLander): ``STEP_FIELDS``, the action and the reward.

``decode_trace`` is the relay's check (shape, dtype, bounds, the size cap ``MAX_TRACE_BYTES``, and
that it is the episode the result reports: as many rows as steps, rewards summing to the return, the
last frame's HP those of the outcome); ``fight_frame`` is the client's recorder of one Iudex
observation, the same for the arena and the real game.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from client_app import iudex
from client_app.protocol.bounds import EnvBounds
from client_app.protocol.codes import (
    R_DTYPE,
    R_NOT_FINITE,
    R_OUT_OF_RANGE,
    R_SHAPE,
    R_TOO_LARGE,
    ProtocolError,
)
from client_app.protocol.framing import decode_array

#: The columns of a boss fight's trace, in order (positions in metres of the game's coordinates, yaw
#: in radians, HP and SP as fractions of the maximum, animations as ids: -1 is unknown).
FIGHT_FIELDS: tuple[str, ...] = (
    "player_x", "player_y", "player_yaw", "boss_x", "boss_y", "boss_yaw",
    "player_hp", "player_sp", "boss_hp", "player_animation", "boss_animation", "phase",
    "action", "reward",
)  # fmt: skip
#: The columns of any other environment's trace.
STEP_FIELDS: tuple[str, ...] = ("action", "reward")
#: The most bytes a trace's data may hold: a 3000-step fight is 168 KB.
MAX_TRACE_BYTES = 256 * 1024
#: How far past the arena's coordinate box a position may be (the game overshoots its declared box a
#: little); the client clips to the same slack when it records.
POSE_SLACK_M = 5.0
#: Slack on the outcome's HP against the last frame's, and on the rewards' sum against the return.
HP_SLACK = 0.01

_F = {name: i for i, name in enumerate(FIGHT_FIELDS)}


def fields_for(bounds: EnvBounds) -> tuple[str, ...]:
    """The columns of a trace of this environment's episodes."""
    return FIGHT_FIELDS if bounds.boss_fight else STEP_FIELDS


def _fight_ranges(action_n: int) -> dict[str, tuple[float, float]]:
    low, high = iudex.COORD_LOW, iudex.COORD_HIGH
    yaw = math.pi + 0.01
    return {
        "player_x": (low[0] - POSE_SLACK_M, high[0] + POSE_SLACK_M),
        "player_y": (low[1] - POSE_SLACK_M, high[1] + POSE_SLACK_M),
        "player_yaw": (-yaw, yaw),
        "boss_x": (low[0] - POSE_SLACK_M, high[0] + POSE_SLACK_M),
        "boss_y": (low[1] - POSE_SLACK_M, high[1] + POSE_SLACK_M),
        "boss_yaw": (-yaw, yaw),
        "player_hp": (0.0, 1.0),
        "player_sp": (-1.0, 1.0),  # the arena's stamina goes below 0 after an attack started short of it
        "boss_hp": (0.0, 1.0),
        "player_animation": (-1, len(iudex.PLAYER_ANIMATIONS) - 1),
        "boss_animation": (-1, len(iudex.BOSS_ANIMATIONS) - 1),
        "phase": (1, 2),
        "action": (0, action_n - 1),
    }


_INTEGER_FIELDS = ("player_animation", "boss_animation", "phase", "action")


def decode_trace(
    value: Any,
    *,
    bounds: EnvBounds,
    action_n: int,
    length: int,
    episode_return: float,
    outcome: Mapping[str, Any] | None,
) -> np.ndarray:
    """Validate an ``eval`` message's ``trace`` for an episode of ``length`` steps and ``episode_return``
    in an environment with ``bounds`` and ``action_n`` actions; raises ProtocolError on the first
    problem, naming the column and the step."""
    fields = fields_for(bounds)
    if (
        isinstance(value, dict)
        and isinstance(value.get("data"), bytes)
        and len(value["data"]) > MAX_TRACE_BYTES
    ):
        raise ProtocolError(
            R_TOO_LARGE,
            f"'trace' holds {len(value['data'])} bytes; a trace may hold at most {MAX_TRACE_BYTES}",
        )
    trace = decode_array(value, "trace")
    if trace.dtype != np.float32:
        raise ProtocolError(R_DTYPE, f"'trace' must be float32 (<f4), got {trace.dtype.str}")
    if trace.ndim != 2 or trace.shape[1] != len(fields):
        raise ProtocolError(
            R_SHAPE,
            f"'trace' must have shape (steps, {len(fields)}) with columns {', '.join(fields)}; got {list(trace.shape)}",
        )
    if trace.shape[0] != length:
        raise ProtocolError(R_SHAPE, f"'trace' has {trace.shape[0]} rows but the episode has {length} steps")
    if not np.isfinite(trace).all():
        step = int(np.argwhere(~np.isfinite(trace))[0][0])
        raise ProtocolError(R_NOT_FINITE, f"'trace' holds a value that is not finite at step {step + 1}")
    ranges = _fight_ranges(action_n) if fields is FIGHT_FIELDS else {"action": (0, action_n - 1)}
    ranges["reward"] = (bounds.reward_low - 1e-3, bounds.reward_high + 1e-3)
    for name, (low, high) in ranges.items():
        column = trace[:, fields.index(name)]
        bad = (column < low) | (column > high)
        if name in _INTEGER_FIELDS:
            bad |= column != np.round(column)
        if bad.any():
            step = int(np.argmax(bad))
            kind = "a whole number " if name in _INTEGER_FIELDS else ""
            raise ProtocolError(
                R_OUT_OF_RANGE,
                f"'trace' column {name} is {float(column[step]):g} at step {step + 1}, not {kind}in [{low:g}, {high:g}]",
            )
    rewards = float(trace[:, fields.index("reward")].astype(np.float64).sum())
    if abs(rewards - episode_return) > 1e-3 * max(1.0, abs(episode_return)) + 1e-5 * length:
        raise ProtocolError(
            R_OUT_OF_RANGE, f"'trace' rewards sum to {rewards:g}, not the episode's return {episode_return:g}"
        )
    if outcome is not None and fields is FIGHT_FIELDS:
        for name in ("boss_hp", "player_hp"):
            reported = outcome.get(name)
            last = float(trace[-1, _F[name]])
            if reported is not None and abs(last - reported) > HP_SLACK:
                raise ProtocolError(
                    R_OUT_OF_RANGE, f"'trace' ends with {name} {last:g}, but the outcome reports {reported:g}"
                )
    return trace


def fight_frame(obs: Mapping[str, Any]) -> tuple[float, ...]:
    """The state columns of FIGHT_FIELDS (all but action and reward) of one Iudex observation dict."""
    low, high = iudex.COORD_LOW, iudex.COORD_HIGH

    def scalar(key: str) -> float:
        return float(np.asarray(obs[key], dtype=np.float64).reshape(-1)[0])

    def clip(v: float, lo: float, hi: float) -> float:
        return min(max(v, lo), hi)

    def pose(key: str) -> tuple[float, float, float]:
        x, y, _z, yaw = (float(v) for v in np.asarray(obs[key], dtype=np.float64).reshape(-1)[:4])
        return (
            clip(x, low[0] - POSE_SLACK_M, high[0] + POSE_SLACK_M),
            clip(y, low[1] - POSE_SLACK_M, high[1] + POSE_SLACK_M),
            clip(yaw, -math.pi, math.pi),
        )

    def anim(key: str, n: int) -> float:
        a = int(scalar(key))
        return float(a) if -1 <= a < n else -1.0

    phase = int(scalar("phase")) if "phase" in obs else 1
    return (
        *pose("player_pose"),
        *pose("boss_pose"),
        clip(scalar("player_hp") / max(scalar("player_max_hp"), 1.0), 0.0, 1.0),
        clip(scalar("player_sp") / max(scalar("player_max_sp"), 1.0), -1.0, 1.0),
        clip(scalar("boss_hp") / max(scalar("boss_max_hp"), 1.0), 0.0, 1.0),
        anim("player_animation", len(iudex.PLAYER_ANIMATIONS)),
        anim("boss_animation", len(iudex.BOSS_ANIMATIONS)),
        float(phase if phase in (1, 2) else 1),
    )
