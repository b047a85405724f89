"""Chunks cut from a real CartPole run: episode boundaries, T+1 observations, dtypes, ids."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

from client_app import protocol as P
from client_app.chunker import Chunker
from client_app.spaces import space_to_spec


def play(env, chunker, steps, seed=0, model_version=0):
    """Random play; returns the chunks made and the (obs, action, reward, done) log of every step."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    chunker.start_episode(obs)
    chunks, log = [], []
    for _ in range(steps):
        action = int(rng.integers(2))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        log.append((obs, action, reward, terminated or truncated))
        chunk = chunker.step(action, reward, next_obs, terminated, truncated, model_version=model_version)
        if chunk is not None:
            chunks.append(chunk)
        if terminated or truncated:
            next_obs, _ = env.reset()
            chunker.start_episode(next_obs)
        obs = next_obs
    return chunks, log


@pytest.fixture
def cartpole():
    env = gym.make("CartPole-v1")
    yield env
    env.close()


def test_chunks_follow_episodes_and_hold_t_plus_one_observations(cartpole):
    obs_spec = space_to_spec(cartpole.observation_space)
    chunker = Chunker(chunk_steps=16, observation_space=obs_spec, session="abc123")
    chunks, log = play(cartpole, chunker, 400)

    assert [c.id for c in chunks] == [f"abc123-{i}" for i in range(len(chunks))]
    assert all(re.fullmatch(r"[A-Za-z0-9_.:-]{1,80}", c.id) for c in chunks)
    step = 0
    episode_chunks: list[P.Chunk] = []
    for chunk in chunks:
        t = chunk.steps
        assert 1 <= t <= 16
        assert chunk.obs.shape == (t + 1, 4) and chunk.obs.dtype == np.float32
        assert chunk.actions.dtype == np.int64 and chunk.rewards.dtype == np.float32
        # Each step's observation, action and reward are the ones played, in order.
        for i in range(t):
            obs, action, reward, done = log[step + i]
            np.testing.assert_array_equal(chunk.obs[i], obs)
            assert chunk.actions[i] == action and chunk.rewards[i] == reward
            assert done == (chunk.episode_done and i == t - 1)  # never a step past an episode's end
        if episode_chunks and not episode_chunks[-1].episode_done:
            # Within an episode a chunk starts where the previous one ended.
            np.testing.assert_array_equal(chunk.obs[0], episode_chunks[-1].obs[-1])
        step += t
        episode_chunks.append(chunk)
        if chunk.episode_done:
            assert chunk.episode_length == sum(c.steps for c in episode_chunks)
            assert chunk.episode_return == pytest.approx(sum(float(c.rewards.sum()) for c in episode_chunks))
            episode_chunks = []
        else:
            assert t == 16 and chunk.episode_return is None
    assert sum(c.episode_done for c in chunks) >= 5  # random CartPole episodes last ~20 steps
    assert step + chunker.steps_buffered == 400


def test_flush_ends_a_chunk_early_and_the_episode_goes_on(cartpole):
    chunker = Chunker(
        chunk_steps=64, observation_space=space_to_spec(cartpole.observation_space), session="s"
    )
    obs, _ = cartpole.reset(seed=1)
    chunker.start_episode(obs)
    assert chunker.flush() is None
    for _ in range(3):
        obs, reward, *_ = cartpole.step(0)
        chunker.step(0, reward, obs, False, False, model_version=0)
    first = chunker.flush()
    assert first.steps == 3 and not first.episode_done
    chunker.step(1, 1.0, obs, False, False, model_version=0)
    with pytest.raises(RuntimeError):  # a chunk never mixes two model versions: flush first
        chunker.step(1, 1.0, obs, False, False, model_version=2)
    second = chunker.flush()
    np.testing.assert_array_equal(second.obs[0], first.obs[-1])


def test_a_chunk_round_trips_through_the_relays_validation(cartpole):
    obs_spec = space_to_spec(cartpole.observation_space)
    act_spec = space_to_spec(cartpole.action_space)
    chunker = Chunker(chunk_steps=32, observation_space=obs_spec)
    chunks, _ = play(cartpole, chunker, 100, model_version=4)
    for chunk in chunks:
        decoded = P.decode_chunk(
            P.unpack(P.pack(chunk.to_message())),
            observation_space=obs_spec,
            action_space=act_spec,
            max_steps=32,
        )
        assert decoded.id == chunk.id and decoded.model_version == 4
        np.testing.assert_array_equal(decoded.obs, chunk.obs)
        np.testing.assert_array_equal(decoded.actions, chunk.actions)
        np.testing.assert_array_equal(decoded.rewards, chunk.rewards)
        assert (decoded.terminated, decoded.truncated) == (chunk.terminated, chunk.truncated)
        assert decoded.episode_return == chunk.episode_return
        assert decoded.episode_length == chunk.episode_length


def test_observations_are_cast_to_the_declared_dtype():
    spec = {"type": "box", "shape": [2], "dtype": "float32", "low": [None, None], "high": [None, None]}
    chunker = Chunker(chunk_steps=4, observation_space=spec)
    chunker.start_episode(np.array([1.0, 2.0], dtype=np.float64))
    chunk = chunker.step(1, 0.5, [3, 4], True, False, model_version=0)
    assert chunk.obs.dtype == np.float32 and chunk.obs.tolist() == [[1, 2], [3, 4]]
    assert chunk.episode_length == 1 and chunk.episode_return == 0.5
