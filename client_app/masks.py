"""What an env's info dict says about the allowed actions and a boss fight's outcome.

soulsgym 1.1.0 reports ``info["allowed_actions"]``, a list of action ids; newer soulsgym sources
report ``info["action_mask"]``, a bool array of one entry per action. ``action_mask`` reads either
into one form. ``episode_outcome`` reads the ``info["outcome"]`` that the Iudex encoder wrapper (and
the arena) put on an episode's last step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np


class Outcome(TypedDict):
    """How a boss fight ended: HP left as fractions of the maximum."""

    win: bool
    boss_hp: float
    player_hp: float


def action_mask(info: Mapping[str, Any], n_actions: int) -> np.ndarray | None:
    """The allowed actions as a bool array of shape (n_actions,), or None when the env says nothing.

    ``info["action_mask"]`` (any array-like of n_actions booleans or 0/1) wins over
    ``info["allowed_actions"]`` (a list of distinct action ids in [0, n_actions)). Raises ValueError
    with the reason for a malformed value: a mask must allow at least one action.
    """
    if "action_mask" in info and info["action_mask"] is not None:
        raw = np.asarray(info["action_mask"])
        if raw.shape != (n_actions,):
            raise ValueError(f"info['action_mask'] must have shape ({n_actions},), got {raw.shape}")
        if raw.dtype == np.bool_:
            mask = raw.copy()
        elif raw.dtype.kind in "iuf" and np.isin(raw, (0, 1)).all():
            mask = raw.astype(bool)
        else:
            raise ValueError(f"info['action_mask'] must hold booleans (or 0/1), got {raw.dtype} values")
    elif "allowed_actions" in info and info["allowed_actions"] is not None:
        allowed = info["allowed_actions"]
        if isinstance(allowed, (str, bytes)) or not hasattr(allowed, "__iter__"):
            raise ValueError(
                f"info['allowed_actions'] must be a list of action ids, got {type(allowed).__name__}"
            )
        mask = np.zeros(n_actions, dtype=bool)
        for a in allowed:
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                raise ValueError(f"info['allowed_actions'] must hold integers, got {a!r}")
            if not 0 <= int(a) < n_actions:
                raise ValueError(f"info['allowed_actions'] holds {int(a)}, outside [0, {n_actions})")
            mask[int(a)] = True
    else:
        return None
    if not mask.any():
        raise ValueError("the env's action mask allows no action at all")
    return mask


def episode_outcome(info: Mapping[str, Any]) -> Outcome | None:
    """The boss fight's outcome from an episode's last info, or None (not a boss fight)."""
    raw = info.get("outcome")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"info['outcome'] must be a mapping, got {type(raw).__name__}")
    try:
        boss_hp, player_hp = float(raw["boss_hp"]), float(raw["player_hp"])
        win = bool(raw["win"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"info['outcome'] must hold win, boss_hp and player_hp: {exc}") from None
    if not (0.0 <= boss_hp <= 1.0 and 0.0 <= player_hp <= 1.0):
        raise ValueError("info['outcome'] HP must be fractions in [0, 1]")
    return Outcome(win=win, boss_hp=boss_hp, player_hp=player_hp)
