"""The guide of an Iudex campaign (trainer.config.DQNConfig.guide): its settings, what models and
chunks say of it, and the learner's own check of each step a client says the guide played."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from client_app import iudex
from client_app import protocol as P
from client_app.arena.scripted import guide_actions, scripted_action
from client_app.chunker import Chunker
from client_app.envs import make_env
from client_app.masks import action_mask
from client_app.policy import Policy, QNetworkSpec, save_model
from client_app.protocol.validation import ChunkSchema, decode_chunk
from client_app.spaces import space_to_spec
from trainer.agents import DQNAgent
from trainer.config import config_for
from trainer.networks import build_q_network, export_params


def test_a_guide_plays_iudex_only_and_its_share_can_fall_over_the_samples():
    config = config_for(iudex.ARENA_ID, {"guide": "scripted", "guide_share": 0.6, "guide_decay_samples": 1000})
    assert [config.guide_share_at(n) for n in (0, 500, 1000, 5000)] == pytest.approx([0.6, 0.3, 0.0, 0.0])
    # The Iudex fights' default: half the episodes, constant; a campaign may turn it off.
    assert config_for(iudex.ARENA_ID).guide_share_at(10**6) == 0.5
    assert config_for(iudex.ARENA_ID, {"guide": "none"}).guide_share_at(0) == 0.0
    assert config_for("CartPole-v1").guide == "none"
    with pytest.raises(ValueError, match="guide 'scripted' plays Iudex fights only, not CartPole-v1"):
        config_for("CartPole-v1", {"guide": "scripted"})
    with pytest.raises(ValueError, match="guide must be one of none, scripted"):
        config_for(iudex.ARENA_ID, {"guide": "human"})
    with pytest.raises(ValueError, match=r"guide_share must be in \[0, 1\]"):
        config_for(iudex.ARENA_ID, {"guide": "scripted", "guide_share": 1.5})


def test_a_model_tells_clients_the_guides_share_and_refuses_a_bad_one():
    spec = QNetworkSpec(obs_dim=3, n_actions=2, hidden=(4,))
    params = export_params(build_q_network(spec))
    policy = Policy.from_bytes(save_model(spec, params, version=2, guide_share=0.25, guide_epsilon=0.05))
    assert (policy.guide_share, policy.guide_epsilon) == (0.25, 0.05)
    assert Policy.from_bytes(save_model(spec, params, version=2)).guide_share == 0.0
    with pytest.raises(ValueError, match=r"the guide's share must be in \[0, 1\], got nan"):
        Policy(spec, params, version=2, guide_share=float("nan"))


def guided_fight(steps: int = 200, seed: int = 0) -> tuple[P.Chunk, np.ndarray]:
    """A chunk of an arena fight the scripted player plays, flagged guided: (chunk, its guide actions)."""
    env = make_env(iudex.ARENA_ID, {"boss_damage": 1.0})
    spec = space_to_spec(env.observation_space)
    chunker = Chunker(chunk_steps=steps, observation_space=spec, n_actions=iudex.N_ACTIONS)
    obs, info = env.reset(seed=seed)
    chunker.start_episode(obs, action_mask(info, iudex.N_ACTIONS), guided=True)
    played = []
    for _ in range(steps):
        action = scripted_action(info[iudex.RAW_OBS])
        played.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        chunk = chunker.step(action, reward, obs, terminated, truncated, model_version=1,
                             mask=action_mask(info, iudex.N_ACTIONS))
        if chunk is not None:
            return chunk, np.asarray(played)
    raise AssertionError("the fight ended before the chunk was full")


def test_a_guided_chunk_goes_over_the_wire_and_a_malformed_flag_is_refused():
    chunk, _ = guided_fight(steps=32)
    schema = ChunkSchema.from_spaces(
        observation_space=space_to_spec(iudex.encoded_space()), action_space={"type": "discrete", "n": iudex.N_ACTIONS}
    )
    message = P.unpack(P.pack(chunk.to_wire()))
    assert message["guided"] is True and decode_chunk(message, schema=schema).guided
    assert "guided" not in P.Chunk(id="x", model_version=0, obs=chunk.obs, actions=chunk.actions,
                                   rewards=chunk.rewards).to_wire()
    with pytest.raises(P.ProtocolError, match="'guided' must be true or false, got str"):
        decode_chunk({**message, "guided": "yes"}, schema=schema)


def test_the_learner_marks_only_the_steps_where_the_action_is_the_guides_own():
    config = config_for(iudex.ARENA_ID, {"guide": "scripted", "hidden": [16], "learning_starts": 64, "batch_size": 16})
    agent = DQNAgent(config, obs_dim=iudex.ENCODED_DIM, n_actions=iudex.N_ACTIONS, action_start=0,
                     device=torch.device("cpu"))
    chunk, played = guided_fight()
    # The learner's own reading of the encoded observations gives the actions the guide played.
    assert (guide_actions(chunk.obs[:-1]) == played).all()
    # A client that lies: half of its "guided" steps are something the guide would not do.
    lying = chunk.actions.copy()
    lying[::2] = (played[::2] + 1) % iudex.N_ACTIONS
    agent.ingest(P.Chunk(**{**chunk.__dict__, "id": "liar", "actions": lying}), current_version=1)
    agent.ingest(chunk, current_version=1)
    agent.ingest(P.Chunk(**{**chunk.__dict__, "id": "agent", "guided": False}), current_version=1)
    n = chunk.steps
    demo = agent.buffer.demo[: 3 * n]
    assert not demo[0:n:2].any() and demo[1:n:2].all()  # only the liar's true guide steps
    assert demo[n : 2 * n].all() and not demo[2 * n :].any()
    assert agent.guided_samples == 2 * n
    assert agent.stats()["guided_samples"] == 2 * n and agent.stats()["guide_share"] == 0.5
    assert agent.stats()["guide_checked"] == n + n // 2
    # Its batches carry the flags, and an update trains the margin on them.
    agent.train(float("inf"), lambda: False)
    assert agent.metrics["losses/margin_loss"] >= 0.0
    # A campaign without a guide marks nothing, whatever a chunk claims.
    plain = DQNAgent(config_for(iudex.ARENA_ID, {"hidden": [16], "guide": "none"}), obs_dim=iudex.ENCODED_DIM,
                     n_actions=iudex.N_ACTIONS, action_start=0, device=torch.device("cpu"))
    plain.ingest(chunk, current_version=1)
    assert not plain.buffer.guided and plain.guide() == {}
    assert agent.guide() == {"guide_share": 0.5, "guide_epsilon": 0.05}
