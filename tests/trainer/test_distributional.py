"""QR-DQN (Dabney et al. 2017) and NoisyNet (Fortunato et al. 2017): the maths, the config, the
published weights and how clients act on them (issue 17)."""

import io

import numpy as np
import pytest
import torch

from client_app.policy import Policy, QNetworkSpec, noisy_params, q_values, quantile_values, save_model
from client_app.protocol import Chunk
from trainer.agents import DQNAgent
from trainer.checkpoint import weights_load
from trainer.config import DQNConfig, config_for
from trainer.dqn import DQN, quantile_huber_loss, quantile_midpoints, quantile_td_target
from trainer.networks import NoisyLinear, build_q_network, export_params
from trainer.replay import replay_buffer_for


def test_quantile_huber_loss_against_hand_computed_values():
    # theta = (0, 1) at tau = (1/4, 3/4); target samples (0.5, 3); kappa = 1.
    # i = 0: u = (0.5, 3), Huber (0.125, 2.5), weight |1/4 - 0| -> mean(0.03125, 0.625) = 0.328125
    # i = 1: u = (-0.5, 2), Huber (0.125, 1.5), weights (|3/4 - 1|, 3/4) -> mean(0.03125, 1.125) = 0.578125
    theta = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = quantile_huber_loss(theta, torch.tensor([[0.5, 3.0]]), quantile_midpoints(2))
    torch.testing.assert_close(loss, torch.tensor([0.90625]))
    loss.sum().backward()
    # d/dtheta_0 = -(1/4)(0.5 + 1)/2; d/dtheta_1 = (-(1/4)(-0.5) - (3/4)(1))/2: both pushed up.
    torch.testing.assert_close(theta.grad, torch.tensor([[-0.1875, -0.3125]]))


def test_quantile_midpoints():
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_quantile_target_picks_the_best_allowed_action_by_its_mean():
    # Two actions, two quantiles: action 0's mean is 1, action 1's is 2 but action 1 is masked.
    next_quantiles = torch.tensor([[[0.0, 2.0], [1.0, 3.0]]])
    returns, discounts = torch.tensor([1.0]), torch.tensor([0.5])
    y = quantile_td_target(returns, discounts, next_quantiles)
    torch.testing.assert_close(y, torch.tensor([[1.5, 2.5]]))
    y = quantile_td_target(returns, discounts, next_quantiles, next_masks=torch.tensor([[True, False]]))
    torch.testing.assert_close(y, torch.tensor([[1.0, 2.0]]))
    # Double Q: the online network's Q-values choose, the target network's quantiles value.
    y = quantile_td_target(returns, discounts, next_quantiles, next_q_online=torch.tensor([[5.0, 0.0]]))
    torch.testing.assert_close(y, torch.tensor([[1.0, 2.0]]))


def chain_buffer(config):
    """s0 -a1-> s1 (r=0); s0 -a0-> end (r=0); s1 -any-> end (r=1). With gamma 0.9:
    Q(s0, a0) = 0, Q(s0, a1) = 0.9, Q(s1, .) = 1."""
    s0, s1, end = [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]

    def episode(obs, actions, rewards):
        obs, actions, rewards = np.array(obs, np.float32), np.array(actions), np.array(rewards, np.float32)
        return Chunk(id="e", model_version=0, obs=obs, actions=actions, rewards=rewards, terminated=True)

    buffer = replay_buffer_for(config, obs_dim=2)
    for a in (0, 1):
        buffer.add_chunk(episode([s0, s1, end], [1, a], [0, 1]))
        buffer.add_chunk(episode([s0, end], [0], [0]))
    return buffer, torch.tensor([s0, s1])


@pytest.mark.parametrize("noisy", [False, True], ids=["qr", "qr-noisy"])
def test_qr_dqn_learns_a_two_state_chain_with_a_known_answer(noisy):
    torch.manual_seed(0)
    config = DQNConfig(
        gamma=0.9,
        lr=1e-2,
        batch_size=32,
        buffer_size=64,
        learning_starts=32,
        hidden=(32,),
        target_update_every=20,
        n_step=1,
        per_beta_anneal_updates=400,
        distributional="qr",
        n_quantiles=8,
        noisy=noisy,
    )
    buffer, states = chain_buffer(config)
    spec = QNetworkSpec(obs_dim=2, n_actions=2, hidden=(32,), n_quantiles=config.quantiles, noisy=noisy)
    dqn = DQN(spec, config)
    rng = np.random.default_rng(0)
    for _ in range(400):
        batch = buffer.sample(32, rng, beta=dqn.beta())
        update = dqn.update(batch)
        assert (update.td_errors >= 0).all()  # per-sample quantile losses as priorities
        buffer.update_priorities(batch.indices, update.td_errors)
    dqn.q.eval()  # a noisy network's mean weights, as greedy clients play them
    with torch.no_grad():
        q = dqn.q(states).numpy()
    np.testing.assert_allclose(q, [[0.0, 0.9], [1.0, 1.0]], atol=0.05)
    # A random policy's values on the same chain are far from these: the bar is learning, not luck.
    assert q[0].argmax() == 1


def test_qr_dqn_learns_a_stochastic_reward_as_a_distribution():
    # One state, one action, reward 0 or 10 with equal odds, terminal: the quantiles at levels 1/8..7/8
    # split into two near 0 and two near 10 (an expected-value head would only say 5). Not exactly 0
    # and 10: within kappa = 1 of a target the loss is quadratic, so the minimiser of level tau near
    # 0 solves tau * kappa = (1 - tau) * theta: theta = 1/7 and 3/5 (and 10 minus those above).
    config = DQNConfig(
        lr=1e-2,
        batch_size=64,
        buffer_size=256,
        learning_starts=64,
        hidden=(16,),
        n_step=1,
        prioritized=False,
        distributional="qr",
        n_quantiles=4,
    )
    rng = np.random.default_rng(0)
    rewards = 10 * np.tile([0.0, 1.0], 64).astype(np.float32)
    buffer = replay_buffer_for(config, obs_dim=1)
    for r in rewards:
        buffer.add_chunk(
            Chunk(
                id="c",
                model_version=0,
                obs=np.ones((2, 1), np.float32),
                actions=np.array([0]),
                rewards=np.array([r]),
                terminated=True,
            )
        )
    torch.manual_seed(0)
    dqn = DQN(QNetworkSpec(obs_dim=1, n_actions=1, hidden=(16,), n_quantiles=4), config)
    for _ in range(600):
        dqn.update(buffer.sample(64, rng))
    with torch.no_grad():
        theta = dqn.q.quantiles(torch.ones(1, 1))[0, 0].numpy()
    np.testing.assert_allclose(np.sort(theta), [1 / 7, 3 / 5, 10 - 3 / 5, 10 - 1 / 7], atol=0.25)


def test_noisy_layer_output_changes_with_each_noise_draw_and_not_in_eval_mode():
    torch.manual_seed(0)
    layer = NoisyLinear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        first = layer(x)
        assert torch.equal(layer(x), first)  # the same draw until reset_noise
        layer.reset_noise()
        assert not torch.allclose(layer(x), first)
        layer.eval()
        mean = layer(x)
        layer.reset_noise()
        assert torch.equal(layer(x), mean)
        torch.testing.assert_close(mean, torch.nn.functional.linear(x, layer.weight, layer.bias))
    # Noise is drawn, never saved: the state dict holds the means and sigmas only.
    assert set(layer.state_dict()) == {"weight", "bias", "weight_sigma", "bias_sigma"}


def test_noisy_sigmas_learn():
    torch.manual_seed(0)
    dqn = DQN(QNetworkSpec(obs_dim=2, n_actions=2, hidden=(8,), noisy=True), DQNConfig(noisy=True, lr=1e-2))
    buffer, _ = chain_buffer(DQNConfig(gamma=0.9, buffer_size=64, n_step=1))
    before = dqn.q.layers[0].weight_sigma.detach().clone()
    for _ in range(5):
        dqn.update(buffer.sample(16, np.random.default_rng(0)))
    assert not torch.equal(dqn.q.layers[0].weight_sigma, before)


@pytest.mark.parametrize(
    "values",
    [
        {"distributional": "c51"},
        {"distributional": True},
        {"distributional": "qr", "n_quantiles": 1},
        {"n_quantiles": 257},
        {"n_quantiles": 8.5},
        {"noisy": "yes"},
        {"noisy": 1},
    ],
)
def test_bad_distributional_and_noisy_settings_are_refused(values):
    with pytest.raises(ValueError, match="distributional|n_quantiles|noisy"):
        DQNConfig.from_dict(values)


def test_both_default_off_and_leave_the_published_architecture_unchanged():
    config = config_for("soulsai/IudexArena-v0")
    assert (config.distributional, config.noisy, config.quantiles) == ("none", False, 1)
    agent = DQNAgent(config, obs_dim=4, n_actions=3, action_start=0, device=torch.device("cpu"))
    # The metadata a plain model has always carried, byte for byte (older clients read it).
    assert agent.spec.to_json() == (
        '{"dueling": true, "hidden": [256, 256], "kind": "mlp_q", "n_actions": 3, "obs_dim": 4}'
    )
    on = config_for("soulsai/IudexArena-v0", {"distributional": "qr", "n_quantiles": 8, "noisy": True})
    spec = DQNAgent(on, obs_dim=4, n_actions=3, action_start=0, device=torch.device("cpu")).spec
    assert (spec.n_quantiles, spec.noisy) == (8, True)


@pytest.mark.parametrize("dueling", [True, False])
@pytest.mark.parametrize("noisy", [False, True])
def test_numpy_network_equals_the_torch_one(dueling, noisy):
    torch.manual_seed(0)
    spec = QNetworkSpec(obs_dim=6, n_actions=4, hidden=(32, 16), dueling=dueling, n_quantiles=5, noisy=noisy)
    net = build_q_network(spec)
    assert {name: tuple(t.shape) for name, t in net.state_dict().items()} == spec.parameter_shapes()
    net.eval()
    obs = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(
            quantile_values(spec, export_params(net), obs),
            net.quantiles(torch.from_numpy(obs)).numpy(),
            atol=1e-5,
        )
        np.testing.assert_allclose(
            q_values(spec, export_params(net), obs), net(torch.from_numpy(obs)).numpy(), atol=1e-5
        )


def published_agent(**overrides) -> tuple[DQNAgent, bytes]:
    torch.manual_seed(0)
    config = DQNConfig(hidden=(16,), distributional="qr", n_quantiles=8, **overrides)
    agent = DQNAgent(config, obs_dim=3, n_actions=4, action_start=0, device=torch.device("cpu"))
    # Spread the quantiles so that each action's mean differs from its median or first quantile.
    with torch.no_grad():
        for p in agent.dqn.q.parameters():
            p.add_(torch.randn_like(p))
    data = save_model(agent.spec, agent.params(), version=2, epsilon=0.0)
    return agent, data


def test_a_client_acts_on_a_qr_network_by_the_mean_of_its_quantiles():
    agent, data = published_agent()
    policy = Policy.from_bytes(data)  # safetensors + JSON metadata: no pickle on the client
    assert policy.spec == agent.spec
    assert weights_load(data, spec=agent.spec).spec == agent.spec  # a resumed learner accepts it too
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 3)).astype(np.float32)
    with torch.no_grad():
        quantiles = agent.dqn.q.quantiles(torch.from_numpy(obs)).numpy()
    expected = quantiles.mean(axis=2).argmax(axis=1)
    assert (expected != quantiles[:, :, 0].argmax(axis=1)).any()  # the test can tell mean from first
    assert [policy.greedy(o) for o in obs] == expected.tolist()
    assert [policy.act(o, rng) for o in obs] == expected.tolist()  # epsilon 0
    mask = np.array([True, False, True, False])
    masked = np.where(mask, quantiles.mean(axis=2), -np.inf).argmax(axis=1)
    assert [policy.greedy(o, mask) for o in obs] == masked.tolist()


def test_a_client_explores_with_noise_and_plays_greedy_fights_with_the_mean_weights():
    agent, data = published_agent(noisy=True)
    policy = Policy.from_bytes(data)
    assert policy.spec.noisy and "layers.0.weight_sigma" in policy.params
    agent.dqn.q.eval()
    obs = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    with torch.no_grad():
        mean_actions = agent.dqn.q(torch.from_numpy(obs)).numpy().argmax(axis=1)
    assert [policy.greedy(o) for o in obs] == mean_actions.tolist()
    rng = np.random.default_rng(0)
    noisy_actions = [policy.act(o, rng) for o in obs for _ in range(5)]
    assert noisy_actions != np.repeat(mean_actions, 5).tolist()  # epsilon 0, yet it explores
    # Each draw is one weight sample: mean + sigma * f(eps_out) f(eps_in)^T.
    drawn = noisy_params(policy.spec, policy.params, np.random.default_rng(3))
    delta = (drawn["layers.0.weight"] - policy.params["layers.0.weight"]) / policy.params[
        "layers.0.weight_sigma"
    ]
    assert np.linalg.matrix_rank(delta) == 1


def test_a_resumed_learner_gets_back_the_sigmas_and_the_target_of_a_noisy_qr_network():
    agent, data = published_agent(noisy=True)
    raw = io.BytesIO()
    torch.save(agent.state_dict(), raw)
    resumed = DQNAgent(agent.config, obs_dim=3, n_actions=4, action_start=0, device=torch.device("cpu"))
    resumed.load(
        weights_load(data, spec=resumed.spec), torch.load(io.BytesIO(raw.getvalue()), weights_only=True)
    )
    for net, twin in ((agent.dqn.q, resumed.dqn.q), (agent.dqn.target, resumed.dqn.target)):
        for name, value in net.state_dict().items():
            torch.testing.assert_close(twin.state_dict()[name], value)
