"""The fight trace an evaluation episode records (client_app.protocol.trace), on the real arena."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from client_app import iudex as I
from client_app import protocol as P
from client_app.arena import scripted_action
from client_app.envs import make_env
from client_app.evaluation import EvalEpisode, Evaluations
from client_app.masks import episode_outcome
from client_app.policy import RandomPolicy

F = {name: i for i, name in enumerate(P.FIGHT_FIELDS)}


def play_evaluation(
    env_id: str, *, seed: int = 3, script=None, version: int = 4, env_kwargs: dict | None = None
) -> tuple[EvalEpisode, list[dict], dict | None]:
    """One evaluation episode as the runner plays it (record per step); ``script`` picks the arena's
    actions from the raw observation (the scripted player), else the checkpoint's greedy choice."""
    env = make_env(env_id, env_kwargs)
    policy = RandomPolicy(int(env.action_space.n))
    policy.version = version
    episode = EvalEpisode(policy)
    obs, info = env.reset(seed=seed)
    raw, states, done = None, [], False
    while not done:
        action = script(raw) if script and raw is not None else episode.act(obs, None)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        episode.record(reward, action=action, info=info)
        raw = info.get(I.RAW_OBS)
        states.append(raw)
    return episode, states, episode_outcome(info) if done else None


def spooled(episode: EvalEpisode, outcome) -> dict:
    """The eval message the client puts in its spool, as the relay unpacks it."""
    frames = []
    evaluations = Evaluations(
        server_url="http://127.0.0.1:9", token="t", spool=lambda i, f: frames.append(f) or True
    )
    evaluations.store(episode, outcome, session="s1")
    return P.unpack(frames[0], client=True)


def test_the_arena_records_each_step_of_an_evaluation_fight_and_the_relay_check_takes_it():
    episode, states, outcome = play_evaluation(I.ARENA_ID, script=scripted_action)
    message = spooled(episode, outcome)
    result = P.decode_eval(message, bounds=P.bounds_for(I.ARENA_ID), now=time.time(), action_n=I.N_ACTIONS)
    trace = result.trace
    assert trace.shape == (episode.length, len(P.FIGHT_FIELDS)) and trace.dtype == np.float32
    assert trace.nbytes <= P.MAX_TRACE_BYTES
    # Each row is the state after its step, as the arena reported it.
    for step in (0, len(states) // 2, len(states) - 1):
        raw = states[step]
        assert trace[step, F["player_x"]] == pytest.approx(float(raw["player_pose"][0]), abs=1e-3)
        assert trace[step, F["boss_y"]] == pytest.approx(float(raw["boss_pose"][1]), abs=1e-3)
        assert trace[step, F["boss_animation"]] == raw["boss_animation"]
        assert trace[step, F["player_hp"]] == pytest.approx(
            float(raw["player_hp"][0]) / I.PLAYER_MAX_HP, abs=1e-5
        )
    assert float(trace[:, F["reward"]].sum()) == pytest.approx(result.episode_return, abs=1e-3)
    assert trace[-1, F["boss_hp"]] == pytest.approx(outcome["boss_hp"], abs=1e-5)
    assert set(np.unique(trace[:, F["action"]])) <= set(range(I.N_ACTIONS))
    assert (np.diff(trace[:, F["boss_hp"]]) <= 1e-6).all(), "the boss's HP only goes down in phase 1"


def test_cartpole_records_its_actions_and_rewards():
    episode, _, outcome = play_evaluation("CartPole-v1")
    result = P.decode_eval(spooled(episode, outcome), bounds=P.bounds_for("CartPole-v1"), action_n=2)
    assert result.trace.shape == (episode.length, 2)
    assert result.trace[:, 1].sum() == episode.length  # CartPole pays 1 a step


def test_the_real_games_recorded_fights_make_traces_the_relay_takes():
    """SoulsGym's observations (699 steps recorded from the game, tests/data) give the same fields,
    and the game's values (poses, HP, animations, its jumpier rewards) pass the relay's bounds."""
    from client_app.protocol.trace import fight_frame
    from tests.client_app.test_iudex import DATA

    recorded = json.loads(DATA.read_text())
    obs, actions, rewards, dones = (recorded[k] for k in ("observations", "actions", "rewards", "dones"))
    starts = [0] + [t + 1 for t, done in enumerate(dones) if done][:-1]
    for start in starts:
        end = dones.index(True, start)
        rows = [(*fight_frame(obs[t + 1]), float(actions[t]), float(rewards[t])) for t in range(start, end)]
        trace = np.asarray(rows, np.float32)
        total = float(trace[:, F["reward"]].astype(np.float64).sum())
        checked = P.decode_trace(
            {"dtype": "<f4", "shape": list(trace.shape), "data": trace.tobytes()},
            bounds=P.bounds_for("SoulsGymIudex-v0"),
            action_n=I.N_ACTIONS,
            length=len(rows),
            episode_return=total,
            outcome=None,
        )
        assert checked.shape == (end - start, len(P.FIGHT_FIELDS))
        assert checked[0, F["player_x"]] == pytest.approx(obs[start + 1]["player_pose"][0], abs=1e-3)
