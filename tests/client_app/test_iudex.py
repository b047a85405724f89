"""The Iudex encoder and SoulsGym's Iudex definitions, on real game states recorded from Dark Souls III."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from client_app import iudex as I
from client_app.envs import declared_spaces, make_env
from client_app.spaces import space_to_spec

DATA = Path(__file__).resolve().parent.parent / "data" / "iudex_recorded_episodes.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(DATA.read_text())


def test_the_recording_holds_699_steps_of_two_episodes_with_every_observation_key(recorded):
    assert len(recorded["observations"]) == 699
    assert sorted(set(recorded["episodes"])) == [0, 1]
    for obs in recorded["observations"]:
        assert set(obs) == set(I.observation_space().spaces)


def test_spaces_are_soulsgym_1_1_0s():
    space = I.observation_space()
    assert space["player_animation"].n == 51 and space["player_animation"].start == -1
    assert space["boss_animation"].n == 33 and space["boss_animation"].start == -1
    assert space["boss_max_hp"].start == 1037 and space["player_max_hp"].start == 454
    assert space["phase"].n == 2 and space["phase"].start == 1
    assert space["player_pose"].shape == (4,) and space["camera_pose"].shape == (6,)
    np.testing.assert_allclose(space["player_pose"].low, np.float32([110, 540, -73, -3.1416]))
    np.testing.assert_allclose(space["player_pose"].high, np.float32([190, 640, -55, 3.1416]))
    assert space["player_animation_duration"].high[0] == 10.0
    assert I.action_space().n == 20
    assert I.ACTIONS[8] == ("forward", "roll") and I.ACTIONS[18] == ("parry",) and I.ACTIONS[19] == ()


def test_allowed_actions_match_what_the_game_reported_on_every_recorded_step(recorded):
    for obs, info in zip(recorded["observations"], recorded["infos"], strict=True):
        animation = I.PLAYER_ANIMATIONS[obs["player_animation"]]
        allowed = I.allowed_actions(animation, obs["player_animation_duration"], obs["player_sp"])
        assert allowed == info["allowed_actions"]


def test_every_recorded_state_encodes_to_finite_values_inside_the_declared_bounds(recorded):
    vectors = np.stack([I.encode(obs) for obs in recorded["observations"]])
    assert vectors.shape == (699, I.ENCODED_DIM) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert (vectors >= I.ENCODED_LOW).all() and (vectors <= I.ENCODED_HIGH).all()
    space = I.encoded_space()
    assert all(space.contains(v) for v in vectors)
    # Exactly one animation slot is hot for the player and for the boss.
    np.testing.assert_array_equal(vectors[:, I.PLAYER_ANIM_SLICE].sum(1), 1.0)
    np.testing.assert_array_equal(vectors[:, I.BOSS_ANIM_SLICE].sum(1), 1.0)
    for who in ("player", "boss"):
        s, c = vectors[:, I.field_index(f"{who}_yaw_sin")], vectors[:, I.field_index(f"{who}_yaw_cos")]
        np.testing.assert_allclose(s**2 + c**2, 1.0, atol=1e-5)


def test_the_encoding_reads_like_the_game_state(recorded):
    obs = recorded["observations"][200]  # player 335/454 HP, -14 SP, RollingMedium for 0.466 s
    v = I.encode(obs)
    assert v[I.field_index("player_hp")] == pytest.approx(335 / 454)
    assert v[I.field_index("player_sp")] == pytest.approx(-14 / 95)
    assert v[I.field_index("boss_hp")] == pytest.approx(1.0)
    assert v[I.field_index(f"player_animation={I.PLAYER_ANIMATIONS[obs['player_animation']]}")] == 1.0
    assert v[I.field_index("player_animation_duration")] == pytest.approx(0.0466, abs=1e-4)
    assert v[I.field_index("player_yaw_sin")] == pytest.approx(math.sin(obs["player_pose"][3]), abs=1e-6)
    assert v[I.field_index("lock_on")] == 1.0
    p, b = obs["player_pose"], obs["boss_pose"]
    distance = math.hypot(p[0] - b[0], p[1] - b[1])
    assert v[I.field_index("distance")] == pytest.approx(distance / I.DISTANCE_SCALE, abs=1e-6)


def test_json_lists_and_the_envs_numpy_arrays_encode_the_same(recorded):
    obs = recorded["observations"][17]
    as_arrays = {
        k: (np.asarray(v, dtype=np.float32).reshape(-1) if isinstance(v, (list, float)) else v)
        for k, v in obs.items()
    }
    np.testing.assert_array_equal(I.encode(obs), I.encode(as_arrays))


def test_values_past_the_declared_spaces_are_clipped_into_the_bounds(recorded):
    obs = dict(recorded["observations"][0])
    obs.update(
        player_animation=-1,  # unknown to soulsgym
        boss_animation=99,  # unknown to us: a newer soulsgym's table
        player_animation_duration=25.0,  # lying on the ground after a knock-down
        boss_animation_duration=float("nan"),
        player_sp=-200.0,
        player_pose=[500.0, 0.0, -90.0, 7.0],  # fell off the cliff
    )
    v = I.encode(obs)
    assert np.isfinite(v).all() and (v >= I.ENCODED_LOW).all() and (v <= I.ENCODED_HIGH).all()
    assert v[I.PLAYER_ANIM_SLICE][0] == 1.0 and v[I.BOSS_ANIM_SLICE][0] == 1.0  # the "unknown" slots
    assert v[I.field_index("player_animation_duration")] == 1.0
    assert v[I.field_index("player_sp")] == -1.0


def test_reward_formula_is_soulsgyms(recorded):
    a, b = recorded["observations"][0], dict(recorded["observations"][0])
    b.update(boss_hp=1037 - 52, player_hp=454 - 119)
    assert I.compute_reward(a, b) == pytest.approx(52 / 1037 - 119 / 454)
    b.update(boss_hp=0)
    assert I.compute_reward(a, b) == pytest.approx(1 - 119 / 454 + 0.1)
    b.update(boss_hp=500, player_hp=0)
    assert I.compute_reward(a, b) == pytest.approx(537 / 1037 - 1 - 0.1)


def test_soulsgym_campaigns_declare_the_encoded_spaces_without_the_game():
    for env_id in (*I.SOULSGYM_IUDEX_IDS, I.ARENA_ID):
        obs_spec, action_spec = declared_spaces(env_id, {"game_speed": 2} if env_id != I.ARENA_ID else {})
        assert obs_spec == space_to_spec(I.encoded_space())
        assert action_spec == {"type": "discrete", "n": 20, "start": 0}
    with pytest.raises(RuntimeError, match="game_speed"):
        declared_spaces("SoulsGymIudex-v0", {"game_speed": -1})


def test_bad_arena_settings_fail_when_the_campaign_declares_its_spaces():
    # On the server, when staff create the campaign: not later, on every volunteer's machine.
    assert declared_spaces(I.ARENA_ID, {"boss_damage": 1.0, "phase": 2})[1]["n"] == 20
    for settings, says in (
        ({"boss_damage": 0}, "boss_damage must be a number in (0, 2]"),
        ({"phase": 3}, "phase must be 1 or 2"),
        ({"difficulty": "hard"}, "unexpected keyword argument 'difficulty'"),
    ):
        with pytest.raises(RuntimeError, match=re.escape(says)) as excinfo:
            declared_spaces(I.ARENA_ID, settings)
        assert str(excinfo.value).startswith(f"{I.ARENA_ID} does not take the settings {settings}")


def test_making_a_soulsgym_env_without_the_game_says_so_and_points_to_the_arena():
    with pytest.raises(RuntimeError) as excinfo:
        make_env("SoulsGymIudex-v0", {"game_speed": 3})
    message = str(excinfo.value)
    assert "soulsgym" in message and "Dark Souls III" in message and I.ARENA_ID in message
    assert excinfo.value.__cause__ is None  # raised "from None": no chained traceback to print


def test_the_client_plays_the_arena_as_the_campaigns_flat_box():
    env = make_env(I.ARENA_ID)
    obs, info = env.reset(seed=4)
    assert env.observation_space == I.encoded_space()
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    while True:
        obs, _, terminated, truncated, info = env.step(int(rng.choice(info["allowed_actions"])))
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
    assert info["outcome"]["win"] is False and info["outcome"]["player_hp"] == 0.0
    assert 0.0 < info["outcome"]["boss_hp"] <= 1.0
