"""The arena simulator stands in for SoulsGymIudex-v0: same spaces, same rules, a fight that can be won."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import client_app  # noqa: F401  (registers the arena)
from client_app import iudex as I
from client_app.arena import ATTACKS, IudexArena, scripted_action
from client_app.arena.rules import EASY_BOSS_DAMAGE


def _play(env, policy, seed: int):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = []
    while True:
        action = policy(obs, info, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((action, reward, int(obs["boss_animation"]), float(obs["player_hp"][0])))
        if terminated or truncated:
            return trace, obs, info, terminated, truncated


def _random(obs, info, rng):
    return int(rng.integers(20))


def _scripted(obs, info, rng):
    return scripted_action(obs)


def test_the_arena_is_registered_by_importing_client_app_without_torch_or_django():
    code = (
        "import sys, gymnasium; import client_app; "
        "assert 'soulsai/IudexArena-v0' in gymnasium.envs.registry; "
        "assert 'torch' not in sys.modules and 'django' not in sys.modules; "
        "assert 'client_app.arena' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spaces_equal_soulsgyms_key_by_key():
    env = gym.make(I.ARENA_ID)
    real = I.observation_space()
    sim = env.observation_space
    assert list(sim.spaces) == list(real.spaces)
    for key, space in real.spaces.items():
        other = sim[key]
        assert type(other) is type(space), key
        assert other.dtype == space.dtype, key
        assert other.shape == space.shape, key
        if isinstance(space, gym.spaces.Box):
            np.testing.assert_array_equal(other.low, space.low, err_msg=key)
            np.testing.assert_array_equal(other.high, space.high, err_msg=key)
        else:
            assert (other.n, other.start) == (space.n, space.start), key
    assert env.action_space == I.action_space()
    assert env.spec.max_episode_steps == I.MAX_EPISODE_STEPS


def test_passes_gymnasiums_env_checker():
    check_env(IudexArena(), skip_render_check=True)


def test_the_same_seed_and_actions_replay_the_same_fight():
    env = gym.make(I.ARENA_ID)
    first, obs1, *_ = _play(env, _random, seed=11)
    second, obs2, *_ = _play(env, _random, seed=11)
    assert first == second
    for key in obs1:
        np.testing.assert_array_equal(obs1[key], obs2[key])
    third, *_ = _play(env, _random, seed=12)
    assert third != first


def test_every_observation_lies_in_the_space_and_info_lists_the_allowed_actions():
    env = gym.make(I.ARENA_ID)
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    # Like the game (tests/data: down to -60), SP goes below the declared Box(0, 95): checked apart.
    space = gym.spaces.Dict({**env.observation_space.spaces, "player_sp": gym.spaces.Box(-95.0, 95.0)})
    for _ in range(600):
        assert space.contains(obs)
        animation = I.PLAYER_ANIMATIONS[obs["player_animation"]]
        assert info["allowed_actions"] == I.allowed_actions(
            animation, float(obs["player_animation_duration"][0]), float(obs["player_sp"][0])
        )
        obs, _, terminated, truncated, info = env.step(int(rng.integers(20)))
        if terminated or truncated:
            obs, info = env.reset()


def test_the_reward_is_soulsgyms_formula_on_every_step():
    env = gym.make(I.ARENA_ID)
    obs, info = env.reset(seed=5)
    rng = np.random.default_rng(5)
    while True:
        prev = obs
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(20)))
        assert reward == pytest.approx(I.compute_reward(prev, obs), abs=1e-6)
        if terminated or truncated:
            break


def test_a_masked_action_is_dropped_like_the_game_drops_it():
    env = IudexArena()
    env.reset(seed=0)
    env.step(I.LIGHT_ATTACK)  # committed to a swing: nothing but waiting is allowed for 0.63 s
    obs, _, _, _, info = env.step(I.HEAVY_ATTACK)
    assert I.HEAVY_ATTACK not in info["allowed_actions"]
    assert I.PLAYER_ANIMATIONS[obs["player_animation"]] == "AttackRightLight1"


def test_boss_attacks_are_soulsgym_iudex_animations_with_the_recorded_lengths():
    for name, attack in ATTACKS.items():
        assert name in I.BOSS_ANIMATIONS
        assert 0 < attack.windup < attack.recovery_from <= attack.duration < 10
    assert ATTACKS["Attack3002"].duration == pytest.approx(3.84)


def _masked_random(obs, info, rng):
    return int(rng.choice(info["allowed_actions"]))


@pytest.mark.parametrize("policy", [_random, _masked_random], ids=["uniform", "among-allowed-actions"])
def test_a_random_policy_wins_at_most_5_percent_of_200_fights(policy):
    # Among allowed actions is what a client plays before the first model, and what exploration picks.
    env = gym.make(I.ARENA_ID)
    outcomes = [_play(env, policy, seed)[2]["outcome"] for seed in range(200)]
    wins = sum(o["win"] for o in outcomes)
    assert wins <= 10, f"random play won {wins} of 200 fights"
    assert all(o["player_hp"] == 0.0 for o in outcomes if not o["win"])


def test_boss_damage_scales_every_hit_and_bad_values_are_refused():
    def first_hit(boss_damage: float) -> float:
        env = gym.make(I.ARENA_ID, boss_damage=boss_damage)
        obs, _ = env.reset(seed=3)
        while True:  # standing still: the same fight until his first hit lands
            before = float(obs["player_hp"][0])
            obs, *_ = env.step(I.NOOP)
            if obs["player_hp"][0] < before:
                return before - float(obs["player_hp"][0])

    assert first_hit(0.5) == pytest.approx(0.5 * first_hit(1.0), rel=1e-5)
    for bad in (0, -1, 2.5, "hard", True):
        with pytest.raises(ValueError, match="boss_damage must be a number"):
            IudexArena(boss_damage=bad)


def test_the_scripted_player_takes_hits_at_full_strength_and_wins_some_fights():
    # Iudex chains, feints and times each swing a little differently: knowing his table is not enough,
    # but rolling through his hits and striking in his pauses wins the fight: it is winnable.
    env = gym.make(I.ARENA_ID)
    assert env.unwrapped.boss_damage == 1.0  # full strength by default
    results = [_play(env, _scripted, seed) for seed in range(10)]
    hits = [
        sum(1 for a, b in zip(t, t[1:], strict=False) if b[3] < a[3]) + (t[0][3] < I.PLAYER_MAX_HP)
        for t, *_ in results
    ]
    assert min(hits) >= 1, f"the scripted player went untouched in a fight: hits {hits}"
    won = sum(bool(info.get("outcome", {}).get("win")) for _, _, info, *_ in results)
    assert won >= 1, "the scripted player lost all 10 full-strength fights: the fight must stay winnable"
    easy = gym.make(I.ARENA_ID, boss_damage=EASY_BOSS_DAMAGE)
    wins = sum(bool(_play(easy, _scripted, seed)[2].get("outcome", {}).get("win")) for seed in range(20))
    assert wins >= 2, f"the scripted player won only {wins} of 20 easy fights: the fight must stay winnable"


def test_episodes_are_cut_at_3000_steps():
    env = gym.make(I.ARENA_ID)
    obs, info = env.reset(seed=1)
    steps = 0
    while True:  # walk away and stand: Iudex is slower than a walking player
        steps += 1
        action = 4 if 4 in info["allowed_actions"] and steps % 7 else 19
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    if not terminated:
        assert truncated and steps == 3000


class FakeClock:
    """A clock that moves only when the env sleeps, or when a test says a step took time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pace_spreads_steps_over_0_1_s_divided_by_the_game_speed():
    clock = FakeClock()
    env = IudexArena(pace=True, game_speed=20.0, clock=clock, sleep=clock.sleep)
    env.reset(seed=0)
    start = clock.now
    for _ in range(10):
        env.step(19)
    assert clock.sleeps == pytest.approx([0.1 / 20.0] * 10)  # each step waits out its 5 ms
    assert clock.now - start == pytest.approx(0.05)


def test_pace_does_not_catch_up_with_a_burst_after_a_slow_step():
    clock = FakeClock()
    env = IudexArena(pace=True, game_speed=1.0, clock=clock, sleep=clock.sleep)
    env.reset(seed=0)
    env.step(19)
    assert clock.sleeps == pytest.approx([0.1])
    clock.now += 0.35  # the policy took 3.5 steps' time: the next step is late and does not wait
    env.step(19)
    env.step(19)  # ... and the one after waits a whole step again, not less
    assert clock.sleeps == pytest.approx([0.1, 0.1])
