"""The watchdog recreates an env that raises SoulsGym's errors or hangs, and the episode loop carries on."""

from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from client_app.watchdog import EnvUnrecoverable, ResilientEnv, is_game_error


# Same names as soulsgym's and pymem's exceptions, which do not import off Windows.
class InvalidPlayerStateError(Exception):
    pass


class GameStateError(Exception):
    pass


class MemoryReadError(Exception):
    pass


class FlakyGame(gym.Env):
    """A counter env that fails on the steps and resets a script says, like a game that crashes."""

    observation_space = spaces.Box(0, 1000, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, script: dict, generation: int):
        self.script, self.generation = script, generation
        self.t = 0
        self.closed = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        failure = self.script.get(("reset", self.generation))
        if failure == "hang":
            threading.Event().wait(5)  # a reset stuck in a teleport loop
        elif failure is not None:
            raise failure
        self.t = 0
        return np.array([self.t], np.float32), {"generation": self.generation}

    def step(self, action):
        failure = self.script.get(("step", self.generation, self.t))
        if failure is not None:
            raise failure
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= 10, False, {}

    def close(self):
        self.closed = True


def _factory(script: dict):
    made: list[FlakyGame] = []
    attempts = [0]

    def make():  # the n-th call fails when the script says ("make", n)
        failure = script.get(("make", attempts[0]))
        attempts[0] += 1
        if failure is not None:
            raise failure
        made.append(FlakyGame(script, len(made)))
        return made[-1]

    return make, made


def test_a_game_error_mid_episode_truncates_it_and_the_next_reset_plays_on_a_fresh_env():
    make, made = _factory({("step", 0, 3): InvalidPlayerStateError("Player HP is 0")})
    env = ResilientEnv(make, restart_delay_s=0)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(0)
    assert obs[0] == 3
    obs, reward, terminated, truncated, info = env.step(0)
    assert (obs[0], reward, terminated, truncated) == (3, 0.0, False, True)  # the last obs seen, cut short
    assert info["restarted"] and "InvalidPlayerStateError" in info["restart_reason"]
    assert env.restarts == 1 and made[0].closed and len(made) == 2
    obs, info = env.reset()
    assert obs[0] == 0 and info["generation"] == 1
    for _ in range(10):
        obs, _, terminated, truncated, _ = env.step(0)
    assert terminated and not truncated


def test_failing_resets_and_a_hung_reset_are_retried_on_new_envs():
    make, made = _factory(
        {("reset", 0): GameStateError("Player does not seem to be ingame"), ("reset", 1): "hang"}
    )
    env = ResilientEnv(make, reset_timeout_s=0.2, restart_delay_s=0)
    obs, info = env.reset()
    assert info["generation"] == 2 and env.restarts == 2
    assert made[0].closed and not made[1].closed  # a hung env is abandoned, not closed
    assert "EnvHung" in env.last_error


def test_a_game_that_cannot_be_recreated_stops_the_client_with_the_last_error():
    script = {("step", 0, 0): MemoryReadError("Could not read memory at: 1234")}
    for i in range(1, 10):
        script[("make", i)] = RuntimeError("Dark Souls III is not running")
    make, _ = _factory(script)
    env = ResilientEnv(make, max_restarts=3, restart_delay_s=0)
    env.reset()
    with pytest.raises(EnvUnrecoverable, match="not running"):
        env.step(0)


def test_the_failure_count_starts_again_after_a_good_reset():
    script = {("step", g, 1): GameStateError("lost the game") for g in range(6)}
    make, _ = _factory(script)
    env = ResilientEnv(make, max_restarts=1, restart_delay_s=0)
    for _ in range(6):  # each episode fails once; each restart is followed by a good reset
        env.reset()
        env.step(0)
        *_, truncated, info = env.step(0)
        assert truncated and info["restarted"]
    assert env.restarts == 6


def test_game_errors_are_recognised_by_name():
    assert is_game_error(MemoryReadError("x")) and is_game_error(InvalidPlayerStateError("x"))
    assert not is_game_error(ValueError("x"))
