"""Large-batch mode: when chunks pile up unread, fewer, larger updates at the same replay ratio."""

import time

import torch

from tests.trainer.helpers import make_chunk
from trainer.agents import LARGE_BATCH_BACKLOG, DQNAgent
from trainer.config import DQNConfig
from trainer.dqn import updates_allowed


def agent_with(large_batch_max: int) -> DQNAgent:
    config = DQNConfig(
        batch_size=16, learning_starts=64, samples_per_update=2.0, hidden=(16,), large_batch_max=large_batch_max
    )
    agent = DQNAgent(config, obs_dim=4, n_actions=2, action_start=0, device=torch.device("cpu"))
    for seed in range(4):
        agent.ingest(make_chunk(64, seed=seed), current_version=0)  # 256 samples: 97 updates allowed
    return agent


def test_a_backlog_grows_the_batch_and_the_replay_ratio_holds():
    agent = agent_with(4)
    allowed = updates_allowed(agent.run_samples, agent.config)
    for _ in range(3):  # three seconds of chunks piling up: 16 -> 32 -> 64, at most 4x
        agent.backlog(LARGE_BATCH_BACKLOG + 1)
    assert agent.batch_scale == 4 and agent.stats()["batch_size"] == 64
    agent.train(time.monotonic() + 60, lambda: False)
    # The same transitions replayed per sample (64 per 4 updates' worth), in a quarter of the steps.
    assert allowed <= agent.run_updates < allowed + 4
    assert agent.updates == -(-allowed // 4)
    for _ in range(2):  # the backlog drained: back to the configured batch
        agent.backlog(0)
    assert agent.batch_scale == 1


def test_off_by_default():
    agent = agent_with(1)
    agent.backlog(10 * LARGE_BATCH_BACKLOG)
    agent.train(time.monotonic() + 60, lambda: False)
    assert agent.batch_scale == 1 and agent.updates == updates_allowed(agent.run_samples, agent.config)
    assert "batch_size" not in agent.stats()


def test_a_dqn_learner_asks_clients_to_slow_down_early_unless_large_batches_may_absorb_a_backlog():
    # About 256 samples may wait unread: 8 chunks of 32 steps, 3 of 100, 2 of 128 or 1,024 (never
    # under 2). A large-batch learner leaves the server's mark (0), so chunks pile up to where its
    # batch grows.
    assert agent_with(1).config.stream_high_water(32) == 8
    assert agent_with(1).config.stream_high_water(100) == 3
    assert agent_with(1).config.stream_high_water(128) == 2
    assert agent_with(1).config.stream_high_water(1024) == 2
    assert agent_with(4).config.stream_high_water(128) == 0
