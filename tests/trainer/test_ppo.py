import numpy as np
import pytest
import torch

from client_app.policy import Policy, PolicyNetworkSpec, masked_log_softmax, save_model
from client_app.protocol import Chunk
from trainer.agents import PPOAgent
from trainer.config import PPOConfig
from trainer.networks import export_params
from trainer.ppo import PPO, Rollout, gae


def test_gae_against_hand_computed_values():
    rewards = np.array([1.0, 0.0, 2.0])
    values = np.array([0.5, 1.0, -1.0, 3.0])  # V(s0..s3); s3 is the bootstrap
    gamma, lam = 0.9, 0.8
    # deltas: 1 + .9*1 - .5 = 1.4;  0 + .9*-1 - 1 = -1.9;  2 + .9*3 - (-1) = 5.7
    # A2 = 5.7;  A1 = -1.9 + .72*5.7 = 2.204;  A0 = 1.4 + .72*2.204 = 2.98688
    advantages, returns = gae(rewards, values, terminated=False, gamma=gamma, lam=lam)
    np.testing.assert_allclose(advantages, [2.98688, 2.204, 5.7], rtol=1e-6)
    np.testing.assert_allclose(returns, advantages + values[:3], rtol=1e-6)


def test_gae_does_not_bootstrap_past_termination_but_does_past_truncation():
    rewards = np.array([1.0])
    values = np.array([0.0, 10.0])
    terminated, _ = gae(rewards, values, terminated=True, gamma=0.5, lam=1.0)
    truncated, _ = gae(rewards, values, terminated=False, gamma=0.5, lam=1.0)
    assert terminated[0] == pytest.approx(1.0)  # r only: the episode ended
    assert truncated[0] == pytest.approx(6.0)  # r + gamma * V(s'): a time limit is not an ending


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=6)
    values = rng.normal(size=7)
    advantages, _ = gae(rewards, values, terminated=True, gamma=0.9, lam=1.0)
    discounted = sum(0.9**k * rewards[k] for k in range(6))
    assert advantages[0] == pytest.approx(discounted - values[0], rel=1e-5)


def test_masked_log_softmax_gives_masked_actions_no_probability():
    logp = masked_log_softmax(np.array([1.0, 2.0, 3.0]), np.array([True, False, True]))
    assert logp[1] == -np.inf
    np.testing.assert_allclose(np.exp(logp[[0, 2]]).sum(), 1.0)


def bandit_chunk(rng, policy, version, *, steps=32):
    """A two-state contextual bandit: the right action is the state's index (reward 1, else 0)."""
    states = rng.integers(0, 2, size=steps + 1)
    obs = np.eye(2, dtype=np.float32)[states]
    actions, logps = [], []
    for t in range(steps):
        action, logp = policy.step(obs[t], rng)
        actions.append(action)
        logps.append(logp)
    rewards = (np.array(actions) == states[:steps]).astype(np.float32)
    return Chunk(
        id=f"c{version}-{rng.integers(1 << 30)}",
        model_version=version,
        obs=obs,
        actions=np.array(actions),
        rewards=rewards,
        terminated=False,
        logp=np.array(logps, np.float32),
    )


def test_ppo_agent_solves_a_contextual_bandit_through_published_policies():
    """The toy problem with a known answer: after training, the published policy picks the state's action."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config = PPOConfig(
        rollout_steps=128, minibatch_size=32, epochs=4, lr=3e-3, gamma=0.0, gae_lambda=0.0,
        hidden=(16,), normalize_obs=False,
    )
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    version = 0
    for _ in range(30):
        version += 1
        policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=version))
        while agent.wants_data():
            agent.ingest(bandit_chunk(rng, policy, version), current_version=version)
        agent.train(float("inf"), lambda: False)
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=version + 1))
    assert policy.greedy(np.array([1.0, 0.0])) == 0 and policy.greedy(np.array([0.0, 1.0])) == 1
    probs = np.exp(masked_log_softmax(policy.scores(np.array([1.0, 0.0])), None))
    assert probs[0] > 0.9


def test_ppo_agent_drops_chunks_older_than_the_staleness_bound():
    config = PPOConfig(rollout_steps=64, minibatch_size=32, max_staleness=1, hidden=(8,))
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=3))
    rng = np.random.default_rng(1)
    assert agent.ingest(bandit_chunk(rng, policy, 4), current_version=5) == 32  # one version old: kept
    assert agent.ingest(bandit_chunk(rng, policy, 3), current_version=5) == 0  # two: dropped
    no_logp = bandit_chunk(rng, policy, 5)
    no_logp.logp = None
    assert agent.ingest(no_logp, current_version=5) == 0
    assert (agent.pending_steps, agent.dropped_samples, agent.samples_total) == (32, 64, 96)


def test_a_ppo_update_that_comes_out_non_finite_marks_the_agent_diverged():
    """The learner reloads the last good checkpoint when ``diverged`` is set (trainer.learner); a PPO
    network gone to NaN (a too-high learning rate) must set it, naming the losses that broke."""
    config = PPOConfig(rollout_steps=64, minibatch_size=32, epochs=1, hidden=(8,))
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=1))
    rng = np.random.default_rng(3)
    while agent.wants_data():
        agent.ingest(bandit_chunk(rng, policy, 1), current_version=1)
    agent.train(float("inf"), lambda: False)
    assert agent.diverged is None  # a healthy update: nothing to recover from

    with torch.no_grad():
        for parameter in agent.ppo.critic.parameters():
            parameter.fill_(float("nan"))
    while agent.wants_data():
        agent.ingest(bandit_chunk(rng, policy, 1), current_version=1)
    agent.train(float("inf"), lambda: False)
    assert agent.diverged is not None and "value" in agent.diverged, agent.diverged


def test_voiding_a_machine_takes_its_chunks_out_of_the_pending_rollout():
    config = PPOConfig(rollout_steps=256, minibatch_size=32, hidden=(8,))
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=1))
    rng = np.random.default_rng(2)
    for machine in (4, 9, 4):
        agent.ingest(bandit_chunk(rng, policy, 1), current_version=1, machine_id=machine)
    assert agent.void(4) == 64
    assert agent.pending_steps == 32 and [machine for *_, machine in agent.pending] == [9]
    assert agent.void(4) == 0


def test_ppo_update_never_raises_the_probability_of_a_masked_action():
    torch.manual_seed(1)
    spec = PolicyNetworkSpec(obs_dim=2, n_actions=3, hidden=(8,))
    ppo = PPO(spec, PPOConfig(rollout_steps=16, minibatch_size=8, epochs=2, hidden=(8,)))
    masks = np.array([[True, True, False]] * 16)
    rollout = Rollout(
        obs=np.ones((16, 2), np.float32),
        actions=np.zeros(16, np.int64),
        logp_old=np.full(16, np.log(0.5), np.float32),
        advantages=np.ones(16, np.float32),
        returns=np.ones(16, np.float32),
        masks=masks,
    )
    metrics = ppo.update(rollout, np.random.default_rng(0))
    assert np.isfinite(list(metrics.values())).all()
    params = export_params(ppo.actor)
    policy = Policy(spec, params, version=1)
    assert policy.greedy(np.ones(2), mask=np.array([False, True, True])) in (1, 2)
    rng = np.random.default_rng(0)
    assert all(policy.step(np.ones(2), rng, np.array([True, True, False]))[0] != 2 for _ in range(200))


def test_ppo_learner_state_round_trips_through_a_checkpoint():
    import io

    torch.manual_seed(3)
    config = PPOConfig(rollout_steps=64, minibatch_size=32, epochs=2, hidden=(8,), normalize_obs=True)
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    rng = np.random.default_rng(4)
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=1, obs_norm=agent.obs_norm()))
    while agent.wants_data():
        agent.ingest(bandit_chunk(rng, policy, 1), current_version=1)
    agent.train(float("inf"), lambda: False)

    raw = io.BytesIO()
    torch.save(agent.state_dict(), raw)
    state = torch.load(io.BytesIO(raw.getvalue()), weights_only=True)
    published = Policy.from_bytes(save_model(agent.spec, agent.params(), version=2, obs_norm=agent.obs_norm()))
    resumed = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    resumed.load(published, state)

    probe = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(resumed.ppo.values(probe), agent.ppo.values(probe))
    np.testing.assert_allclose(resumed.normalizer.mean, agent.normalizer.mean)
    assert (resumed.updates, resumed.samples_total) == (agent.updates, agent.samples_total) == (4, 64)
    assert resumed.ppo.optimizer.state_dict()["state"].keys() == agent.ppo.optimizer.state_dict()["state"].keys()
