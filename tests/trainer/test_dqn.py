import io

import numpy as np
import pytest
import torch

from client_app.policy import QNetworkSpec
from client_app.protocol import Chunk
from trainer.config import DQNConfig
from trainer.dqn import DQN, td_target, updates_allowed
from trainer.networks import build_q_network, export_params, load_params
from trainer.replay import Batch, ReplayBuffer, replay_buffer_for


def test_double_q_target_against_hand_computed_values():
    returns = torch.tensor([1.0, 0.5, -1.0])
    discounts = torch.tensor([0.9, 0.0, 0.81])  # one step; terminated; two steps (n-step)
    next_q_target = torch.tensor([[1.0, 2.0], [3.0, 4.0], [-2.0, 6.0]])
    next_q_online = torch.tensor([[5.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # Double Q: the online net picks actions [0, 1, 0]; the target net values them [1, 4, -2].
    double = td_target(returns, discounts, next_q_target, next_q_online)
    torch.testing.assert_close(double, torch.tensor([1.0 + 0.9 * 1.0, 0.5, -1.0 + 0.81 * -2.0]))
    # Plain DQN: the target net's own max [2, 4, 6].
    plain = td_target(returns, discounts, next_q_target)
    torch.testing.assert_close(plain, torch.tensor([1.0 + 0.9 * 2.0, 0.5, -1.0 + 0.81 * 6.0]))


def test_one_step_targets_are_the_classic_r_plus_gamma_q():
    """n_step = 1 reproduces the one-step target y = r + gamma * (1 - terminated) * Q'(s', a*)."""
    rng = np.random.default_rng(3)
    buffer = ReplayBuffer(64, 4, gamma=0.9, n_step=1)
    for terminated in (True, False):
        buffer.add_chunk(
            Chunk(
                id="c",
                model_version=0,
                obs=rng.normal(size=(21, 4)).astype(np.float32),
                actions=rng.integers(0, 2, size=20),
                rewards=rng.normal(size=20).astype(np.float32),
                terminated=terminated,
            )
        )
    done = np.zeros(40, np.float32)
    done[19] = 1.0  # only the terminated chunk's last step
    next_q_target, next_q_online = torch.randn(40, 2), torch.randn(40, 2)
    y = td_target(
        torch.from_numpy(buffer.returns[:40]),
        torch.from_numpy(buffer.discounts[:40]),
        next_q_target,
        next_q_online,
    )
    best = next_q_online.argmax(dim=1, keepdim=True)
    classic = torch.from_numpy(buffer.returns[:40]) + 0.9 * (1 - torch.from_numpy(done)) * (
        next_q_target.gather(1, best).squeeze(1)
    )
    torch.testing.assert_close(y, classic)
    np.testing.assert_array_equal(buffer.next_obs[:19], buffer.obs[1:20])


def test_updates_allowed_follows_the_replay_ratio():
    config = DQNConfig(learning_starts=64, batch_size=32, samples_per_update=2.0)
    assert [updates_allowed(n, config) for n in (0, 63, 64, 65, 66, 164)] == [0, 0, 1, 1, 2, 51]


def random_buffer(n=256, obs_dim=4, seed=0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(n, obs_dim, gamma=0.99, n_step=3)
    buffer.add_chunk(
        Chunk(
            id="c",
            model_version=0,
            obs=rng.normal(size=(n + 1, obs_dim)).astype(np.float32),
            actions=rng.integers(0, 2, size=n),
            rewards=rng.normal(size=n).astype(np.float32),
            terminated=True,
        )
    )
    return buffer


def small_dqn(**overrides) -> DQN:
    torch.manual_seed(0)
    values = dict(batch_size=32, learning_starts=32, hidden=(32,), lr=1e-3, target_update_every=1000)
    values.update(overrides)
    return DQN(QNetworkSpec(obs_dim=4, n_actions=2, hidden=values["hidden"]), DQNConfig(**values))


def test_updates_on_a_fixed_batch_lower_the_td_loss():
    dqn = small_dqn(lr=1e-2)
    batch = random_buffer().sample(32, np.random.default_rng(1))
    first = dqn.update(batch).metrics
    assert set(first) >= {"losses/td_loss", "losses/q_mean", "losses/grad_norm"}
    for _ in range(100):
        last = dqn.update(batch).metrics
    assert last["losses/td_loss"] < 0.5 * first["losses/td_loss"]


def test_update_returns_the_batch_td_errors_before_the_step():
    dqn = small_dqn()
    batch = random_buffer().sample(32, np.random.default_rng(1))
    with torch.no_grad():
        q = dqn.q(torch.from_numpy(batch.obs)).gather(1, torch.from_numpy(batch.actions)[:, None]).squeeze(1)
        next_obs = torch.from_numpy(batch.next_obs)
        y = td_target(
            torch.from_numpy(batch.returns),
            torch.from_numpy(batch.discounts),
            dqn.target(next_obs),
            dqn.q(next_obs),
        )
    td_errors = dqn.update(batch).td_errors
    assert td_errors.shape == (32,) and td_errors.dtype == np.float32
    np.testing.assert_allclose(td_errors, (y - q).numpy(), rtol=1e-5, atol=1e-6)


def test_the_loss_is_weighted_by_the_importance_sampling_weights():
    batch = random_buffer().sample(32, np.random.default_rng(1))
    full = small_dqn().update(batch).metrics["losses/td_loss"]
    halved = small_dqn().update(batch._replace(weights=np.full(32, 0.5, np.float32))).metrics
    assert halved["losses/td_loss"] == pytest.approx(0.5 * full, rel=1e-5)
    # A transition of weight 0 contributes nothing: the step equals the one without it.
    weights = np.ones(32, np.float32)
    weights[0] = 0.0
    a, b = small_dqn(), small_dqn()
    a.update(batch._replace(weights=weights))
    b.update(
        Batch(*(field[1:] for field in batch[:5]), weights=np.ones(31, np.float32), indices=batch.indices[1:])
    )
    for name, value in export_params(a.q).items():
        np.testing.assert_allclose(export_params(b.q)[name], value, rtol=1e-4, atol=1e-6)


def test_the_target_network_is_copied_every_target_update_every_updates():
    dqn = small_dqn(target_update_every=3)
    batch = random_buffer().sample(32, np.random.default_rng(1))
    initial = export_params(dqn.target)
    dqn.update(batch)
    dqn.update(batch)
    for name, value in initial.items():
        np.testing.assert_array_equal(export_params(dqn.target)[name], value)
    dqn.update(batch)
    for name, value in export_params(dqn.q).items():
        np.testing.assert_array_equal(export_params(dqn.target)[name], value)


@pytest.mark.parametrize(
    "n_step, prioritized", [(1, False), (2, True)], ids=["one-step-uniform", "two-step-prioritized"]
)
def test_dqn_learns_a_two_state_chain_with_a_known_answer(n_step, prioritized):
    """s0 -a1-> s1 (r=0); s0 -a0-> end (r=0); s1 -any-> end (r=1). With gamma 0.9:
    Q(s0, a0) = 0, Q(s0, a1) = 0.9, Q(s1, .) = 1."""
    s0, s1, end = [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]

    def episode(obs, actions, rewards):
        return Chunk(
            id="e",
            model_version=0,
            obs=np.array(obs, np.float32),
            actions=np.array(actions),
            rewards=np.array(rewards, np.float32),
            terminated=True,
        )

    torch.manual_seed(0)
    config = DQNConfig(
        gamma=0.9,
        lr=5e-3,
        batch_size=32,
        buffer_size=64,
        learning_starts=32,
        hidden=(32,),
        target_update_every=25,
        n_step=n_step,
        prioritized=prioritized,
        per_beta_anneal_updates=800,
    )
    buffer = replay_buffer_for(config, obs_dim=2)
    for a in (0, 1):
        buffer.add_chunk(episode([s0, s1, end], [1, a], [0, 1]))
        buffer.add_chunk(episode([s0, end], [0], [0]))
    dqn = DQN(QNetworkSpec(obs_dim=2, n_actions=2, hidden=(32,)), config)
    rng = np.random.default_rng(0)
    for _ in range(800):
        batch = buffer.sample(32, rng, beta=dqn.beta())
        buffer.update_priorities(batch.indices, dqn.update(batch).td_errors)
    with torch.no_grad():
        q = dqn.q(torch.tensor([s0, s1])).numpy()
    np.testing.assert_allclose(q, [[0.0, 0.9], [1.0, 1.0]], atol=0.02)


def test_learner_state_round_trip_resumes_exactly():
    dqn = small_dqn(target_update_every=7)
    buffer = random_buffer()
    rng = np.random.default_rng(2)
    for _ in range(10):
        dqn.update(buffer.sample(32, rng))

    raw = io.BytesIO()
    torch.save(dqn.state_dict(), raw)
    weights = export_params(dqn.q)
    resumed = small_dqn(target_update_every=7)
    load_params(resumed.q, weights)
    resumed.load_state_dict(torch.load(io.BytesIO(raw.getvalue()), weights_only=True))
    assert resumed.updates == 10

    batch = buffer.sample(32, rng)
    for _ in range(5):  # crosses a target copy at update 14
        expected, got = dqn.update(batch), resumed.update(batch)
        assert got.metrics == pytest.approx(expected.metrics, rel=1e-6)
        np.testing.assert_allclose(got.td_errors, expected.td_errors, rtol=1e-6)
    for name, value in export_params(dqn.q).items():
        np.testing.assert_allclose(export_params(resumed.q)[name], value, rtol=1e-6)
    for name, value in export_params(dqn.target).items():
        np.testing.assert_allclose(export_params(resumed.target)[name], value, rtol=1e-6)


def test_load_state_dict_refuses_an_unknown_format():
    with pytest.raises(ValueError):
        small_dqn().load_state_dict({"format": 99})


def test_masked_targets_never_bootstrap_from_a_forbidden_action():
    returns = torch.tensor([0.0, 0.0])
    discounts = torch.tensor([1.0, 1.0])
    next_q_target = torch.tensor([[1.0, 9.0, 2.0], [4.0, 3.0, 8.0]])
    next_q_online = torch.tensor([[0.0, 5.0, 1.0], [0.0, 1.0, 7.0]])
    masks = torch.tensor([[True, False, True], [True, True, False]])
    # Double Q over the allowed actions: online picks [2, 1]; target values them [2, 3].
    torch.testing.assert_close(td_target(returns, discounts, next_q_target, next_q_online, masks), torch.tensor([2.0, 3.0]))
    # Plain: max over the allowed actions of the target net: [2, 4].
    torch.testing.assert_close(td_target(returns, discounts, next_q_target, None, masks), torch.tensor([2.0, 4.0]))


def test_replay_keeps_the_mask_of_each_transitions_next_observation():
    buffer = ReplayBuffer(16, 1, gamma=0.9, n_step=2, n_actions=3)
    masks = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], bool)
    buffer.add_chunk(
        Chunk(
            id="m",
            model_version=0,
            obs=np.arange(4, dtype=np.float32).reshape(4, 1),
            actions=np.array([0, 2, 1]),
            rewards=np.zeros(3, np.float32),
            masks=masks,
        )
    )
    batch = buffer._batch(np.arange(3), np.ones(3, np.float32))
    # n = 2: transitions 0 and 1 bootstrap from obs 2 and 3, the last one (m = 1) from obs 3.
    np.testing.assert_array_equal(batch.next_obs[:, 0], [2.0, 3.0, 3.0])
    np.testing.assert_array_equal(batch.next_masks, masks[[2, 3, 3]])


def reference_update(q, target, optimizer, batch: Batch, config: DQNConfig):
    """DQN.update written plainly (per-tensor Adam, one .item() per figure): the optimised update
    must compute the same thing."""
    import torch.nn.functional as F

    obs, next_obs = torch.from_numpy(batch.obs), torch.from_numpy(batch.next_obs)
    masks = torch.from_numpy(batch.next_masks)
    with torch.no_grad():
        returns, discounts = torch.from_numpy(batch.returns), torch.from_numpy(batch.discounts)
        y = td_target(returns, discounts, target(next_obs), q(next_obs), masks)
    q_taken = q(obs).gather(1, torch.from_numpy(batch.actions).unsqueeze(1)).squeeze(1)
    loss = (torch.from_numpy(batch.weights) * F.smooth_l1_loss(q_taken, y, reduction="none")).mean()
    optimizer.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(q.parameters(), config.max_grad_norm, foreach=False)
    optimizer.step()
    return loss.item(), q_taken.mean().item(), grad_norm.item(), (y - q_taken).detach().numpy()


def test_the_optimised_update_computes_what_the_plain_one_does():
    """Fused Adam, one read for the metrics: the same losses, TD errors (the new priorities) and
    weights as the textbook update, step after step, with masks and importance weights."""
    config = DQNConfig(lr=1e-2, max_grad_norm=0.5, target_update_every=3)
    spec = QNetworkSpec(obs_dim=6, n_actions=4, hidden=(16, 16), dueling=True)
    torch.manual_seed(0)
    dqn = DQN(spec, config)
    q, target = build_q_network(spec), build_q_network(spec)
    q.load_state_dict(dqn.q.state_dict())
    target.load_state_dict(dqn.target.state_dict())
    optimizer = torch.optim.Adam(q.parameters(), lr=config.lr, foreach=False, fused=False)
    rng = np.random.default_rng(0)
    for step in range(1, 8):
        masks = rng.random((32, 4)) < 0.6
        masks[:, 0] = True
        batch = Batch(
            obs=rng.normal(size=(32, 6)).astype(np.float32),
            actions=rng.integers(0, 4, 32),
            returns=rng.normal(size=32).astype(np.float32),
            next_obs=rng.normal(size=(32, 6)).astype(np.float32),
            discounts=(0.9 * (rng.random(32) < 0.8)).astype(np.float32),
            weights=rng.random(32).astype(np.float32),
            indices=np.arange(32),
            next_masks=masks,
        )
        update = dqn.update(batch)
        loss, q_mean, grad_norm, td_errors = reference_update(q, target, optimizer, batch, config)
        if step % config.target_update_every == 0:
            target.load_state_dict(q.state_dict())
        assert update.metrics["losses/td_loss"] == pytest.approx(loss, rel=1e-5)
        assert update.metrics["losses/q_mean"] == pytest.approx(q_mean, rel=1e-4, abs=1e-6)
        assert update.metrics["losses/grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
        np.testing.assert_allclose(update.td_errors, td_errors, rtol=1e-4, atol=1e-5)
        for name, value in q.state_dict().items():
            torch.testing.assert_close(dqn.q.state_dict()[name], value, rtol=1e-4, atol=1e-5)
