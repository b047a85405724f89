"""Reading the allowed actions and a boss fight's outcome from an env's info dict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from client_app.envs import make_env
from client_app.masks import action_mask, episode_outcome

DATA = Path(__file__).resolve().parent.parent / "data" / "iudex_recorded_episodes.json"


def test_soulsgym_1_1_0s_allowed_actions_become_a_bool_mask():
    mask = action_mask({"allowed_actions": [0, 3, 19]}, 20)
    assert mask.dtype == np.bool_ and mask.shape == (20,)
    assert np.flatnonzero(mask).tolist() == [0, 3, 19]


def test_every_recorded_info_gives_a_mask_that_allows_the_recorded_noop():
    infos = json.loads(DATA.read_text())["infos"]
    for info in infos:
        mask = action_mask(info, 20)
        assert mask[19] and mask.sum() == len(info["allowed_actions"])


def test_a_newer_soulsgyms_action_mask_wins_over_allowed_actions():
    mask = action_mask({"action_mask": [True] * 19 + [False], "allowed_actions": [19]}, 20)
    assert mask.sum() == 19 and not mask[19]
    assert action_mask({"action_mask": np.array([1, 0, 1])}, 3).tolist() == [True, False, True]


def test_no_mask_for_envs_that_say_nothing():
    assert action_mask({}, 2) is None
    assert action_mask({"TimeLimit.truncated": False}, 2) is None


@pytest.mark.parametrize(
    "info, reason",
    [
        ({"allowed_actions": [20]}, "outside"),
        ({"allowed_actions": [-1]}, "outside"),
        ({"allowed_actions": "0,1"}, "list of action ids"),
        ({"allowed_actions": [1.5]}, "integers"),
        ({"allowed_actions": [True]}, "integers"),
        ({"allowed_actions": []}, "no action"),
        ({"action_mask": [True, False]}, "shape"),
        ({"action_mask": [0.5] * 20}, "booleans"),
        ({"action_mask": [False] * 20}, "no action"),
    ],
)
def test_malformed_masks_are_refused_with_the_reason(info, reason):
    with pytest.raises(ValueError, match=reason):
        action_mask(info, 20)


def test_a_boss_fight_reports_its_outcome_and_other_envs_do_not():
    env = make_env("soulsai/IudexArena-v0")
    _, info = env.reset(seed=0)
    assert episode_outcome(info) is None  # only on an episode's last step
    while True:
        _, _, terminated, truncated, info = env.step(int(np.flatnonzero(action_mask(info, 20))[0]))
        if terminated or truncated:
            break
    outcome = episode_outcome(info)
    assert outcome is not None and set(outcome) == {"win", "boss_hp", "player_hp"}
    assert 0.0 <= outcome["boss_hp"] <= 1.0 and 0.0 <= outcome["player_hp"] <= 1.0
    assert outcome["win"] == (outcome["boss_hp"] == 0.0)

    cartpole = make_env("CartPole-v1")
    cartpole.reset(seed=0)
    while True:
        _, _, terminated, truncated, info = cartpole.step(0)
        if terminated or truncated:
            break
    assert episode_outcome(info) is None


def test_a_malformed_outcome_is_refused():
    with pytest.raises(ValueError, match="fractions"):
        episode_outcome({"outcome": {"win": True, "boss_hp": 2.0, "player_hp": 0.5}})
    with pytest.raises(ValueError, match="win, boss_hp and player_hp"):
        episode_outcome({"outcome": {"win": True}})
