"""trainer.dqn_grad: the default update's hand-written gradients against autograd's, side by side,
step by step, on every network shape the hand path covers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from client_app.policy import QNetworkSpec
from trainer.config import DQNConfig
from trainer.dqn import DQN
from trainer.dqn_grad import supported
from trainer.replay import Batch


def saved(dqn: DQN) -> dict:
    """The learner state as a checkpoint carries it (through torch.save: no tensor shared)."""
    buffer = io.BytesIO()
    torch.save({"q": dqn.q.state_dict(), "dqn": dqn.state_dict()}, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


def restore(dqn: DQN, state: dict) -> None:
    dqn.q.load_state_dict(state["q"])
    dqn.load_state_dict(state["dqn"])


def autograd_twin(dqn: DQN) -> DQN:
    """A DQN of the same config that takes the autograd path (its state is set with ``restore``)."""
    twin = DQN(dqn.spec, dqn.config)
    twin.hand = None
    for p in twin.params:
        p.grad = None
    return twin


def batch(rng, spec: QNetworkSpec, size: int, *, masks: bool, scale: float) -> Batch:
    next_masks = None
    if masks:
        next_masks = rng.random((size, spec.n_actions)) < 0.5
        next_masks[:, -1] = True
    return Batch(
        obs=rng.normal(size=(size, spec.obs_dim)).astype(np.float32),
        actions=rng.integers(0, spec.n_actions, size),
        # Large returns: TD errors past the Huber loss's kink and a gradient norm over the clip.
        returns=(scale * rng.normal(size=size)).astype(np.float32),
        next_obs=rng.normal(size=(size, spec.obs_dim)).astype(np.float32),
        discounts=(0.99 * (rng.random(size) < 0.8)).astype(np.float32),
        weights=rng.random(size).astype(np.float32),
        indices=np.arange(size),
        next_masks=next_masks,
    )


@pytest.mark.parametrize("dueling", [True, False], ids=["dueling", "plain-head"])
@pytest.mark.parametrize("hidden", [(16,), (32, 24, 8)], ids=["one-layer", "three-layers"])
@pytest.mark.parametrize("double_q", [True, False], ids=["double-q", "single-q"])
@pytest.mark.parametrize("masks", [True, False], ids=["masks", "no-masks"])
@pytest.mark.parametrize("max_grad_norm", [1e-3, 1e3], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("host", [True, False], ids=["compiled", "torch-ops"])
def test_hand_gradients_train_the_network_autograd_trains(dueling, hidden, double_q, masks, max_grad_norm, host):
    """Both hand paths: the CPU's compiled loops (``step_host``) and the PyTorch operations CUDA runs."""
    spec = QNetworkSpec(obs_dim=7, n_actions=5, hidden=hidden, dueling=dueling)
    config = DQNConfig(lr=3e-3, max_grad_norm=max_grad_norm, target_update_every=4, double_q=double_q)
    torch.manual_seed(1)
    hand = DQN(spec, config)
    assert hand.hand is not None and hand.hand.host
    hand.hand.host = host
    twin = autograd_twin(hand)
    rng = np.random.default_rng(2)
    for step in range(12):
        # Each step from the same state (weights, target, Adam's moments): Adam divides by the
        # gradients' own size, so a rounding difference in a near-zero gradient would otherwise grow
        # into a visible one in the weights over the steps, in either path.
        restore(twin, saved(hand))
        # Alternately small and large errors (past the Huber loss's kink).
        b = batch(rng, spec, 48, masks=masks, scale=0.1 if step % 2 else 30.0)
        ours, theirs = hand.update(b), twin.update(b)
        for (name, p), q in zip(hand.q.named_parameters(), twin.params, strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=name)  # clipped, as used
        for key, value in theirs.metrics.items():
            assert ours.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        np.testing.assert_allclose(ours.td_errors, theirs.td_errors, rtol=1e-4, atol=1e-5)
        for name, value in twin.q.state_dict().items():
            # At most one Adam step (lr) apart where a gradient is rounding-small, far closer elsewhere.
            torch.testing.assert_close(hand.q.state_dict()[name], value, rtol=0, atol=config.lr, msg=name)
        # The clip at work, or idle, as this case means it.
        assert (theirs.metrics["losses/grad_norm"] > max_grad_norm) == (max_grad_norm < 1)
    assert hand.updates == twin.updates == 12


def test_quantiles_and_noise_keep_autograd():
    for spec in (
        QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,), n_quantiles=8),
        QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,), noisy=True),
    ):
        assert not supported(spec)
        assert DQN(spec, DQNConfig()).hand is None
    assert DQN(QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,)), DQNConfig()).hand is not None


def test_a_checkpointed_optimizer_resumes_on_the_hand_path():
    """state_dict / load_state_dict round trip: a resumed learner's next step is the uninterrupted one's."""
    spec = QNetworkSpec(obs_dim=5, n_actions=3, hidden=(16, 16))
    config = DQNConfig(lr=1e-2)
    torch.manual_seed(3)
    first = DQN(spec, config)
    rng = np.random.default_rng(4)
    for _ in range(3):
        first.update(batch(rng, spec, 32, masks=False, scale=1.0))
    resumed = DQN(spec, config)
    restore(resumed, saved(first))
    b = batch(rng, spec, 32, masks=False, scale=1.0)
    ours, theirs = resumed.update(b), first.update(b)
    np.testing.assert_allclose(ours.td_errors, theirs.td_errors, rtol=1e-6)
    for name, value in first.q.state_dict().items():
        torch.testing.assert_close(resumed.q.state_dict()[name], value, msg=name)


def test_the_direct_adam_call_steps_as_the_optimizer_does():
    """DQN._adam_step calls the fused kernel without optimizer.step(): the same weights and moments,
    to the bit, after many steps, and a checkpoint taken on the way resumes the same."""
    spec = QNetworkSpec(obs_dim=6, n_actions=4, hidden=(16, 8))
    config = DQNConfig(lr=5e-3, max_grad_norm=1.0)
    torch.manual_seed(5)
    direct = DQN(spec, config)
    stepped = DQN(spec, config)
    restore(stepped, saved(direct))
    stepped._adam_step = stepped.optimizer.step  # the library's own step, every time
    rng = np.random.default_rng(6)
    for i in range(25):
        b = batch(rng, spec, 32, masks=True, scale=5.0)
        direct.update(b)
        stepped.update(b)
        if i == 10:
            restore(direct, saved(direct))  # resumes from a checkpoint: the lists are gathered anew
    assert direct._adam is not None
    for name, value in stepped.q.state_dict().items():
        assert torch.equal(direct.q.state_dict()[name], value), name
    ours, theirs = direct.optimizer.state_dict()["state"], stepped.optimizer.state_dict()["state"]
    for index, state in theirs.items():
        for key, value in state.items():
            assert torch.equal(ours[index][key], value), (index, key)


@pytest.mark.parametrize("dueling", [True, False], ids=["dueling", "plain-head"])
@pytest.mark.parametrize("max_grad_norm", [1e-3, 1e3], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("host", [True, False], ids=["compiled", "torch-ops"])
def test_the_margin_loss_of_guided_steps_has_the_same_gradients_by_hand(dueling, max_grad_norm, host):
    spec = QNetworkSpec(obs_dim=7, n_actions=5, hidden=(32, 24), dueling=dueling)
    config = DQNConfig(lr=3e-3, max_grad_norm=max_grad_norm, guide="scripted", demo_margin=0.5, demo_weight=2.0)
    torch.manual_seed(1)
    hand = DQN(spec, config)
    hand.hand.host = host
    twin = autograd_twin(hand)
    rng = np.random.default_rng(3)
    for step in range(6):
        restore(twin, saved(hand))
        b = batch(rng, spec, 48, masks=True, scale=0.1 if step % 2 else 30.0)._replace(demo=rng.random(48) < 0.5)
        ours, theirs = hand.update(b), twin.update(b)
        for (name, p), q in zip(hand.q.named_parameters(), twin.params, strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=name)
        assert ours.metrics["losses/margin_loss"] == pytest.approx(theirs.metrics["losses/margin_loss"], rel=1e-5)
        assert ours.metrics["losses/td_loss"] == pytest.approx(theirs.metrics["losses/td_loss"], rel=1e-5)


@pytest.mark.parametrize("distributional", ["none", "qr"])
def test_the_margin_loss_makes_the_guides_action_the_greedy_one_where_it_played(distributional):
    """The TD targets here say nothing of which action is best (every return is 0): the margin alone
    must lift the guide's action above the others by the margin, on the guided steps only."""
    spec = QNetworkSpec(obs_dim=6, n_actions=4, hidden=(32,), n_quantiles=8 if distributional == "qr" else 1)
    config = DQNConfig(lr=1e-2, guide="scripted", demo_margin=0.2, distributional=distributional)
    torch.manual_seed(0)
    dqn = DQN(spec, config)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(32, 6)).astype(np.float32)
    guide = rng.integers(0, 4, 32)
    demo = np.arange(32) < 16  # the guide played the first 16 steps only
    b = Batch(obs=obs, actions=guide, returns=np.zeros(32, np.float32), next_obs=obs,
              discounts=np.zeros(32, np.float32), weights=np.ones(32, np.float32), indices=np.arange(32), demo=demo)
    for _ in range(300):
        update = dqn.update(b)
    with torch.no_grad():
        q = dqn.q(torch.as_tensor(obs)).numpy()
    assert (q[:16].argmax(axis=1) == guide[:16]).all()
    others = np.where(np.eye(4, dtype=bool)[guide[:16]], -np.inf, q[:16])
    assert (q[:16][np.arange(16), guide[:16]] - others.max(axis=1) >= 0.15).all()
    assert update.metrics["losses/margin_loss"] < 0.05
    # Without the flags the same batch trains no margin: no metric, no preference taught.
    plain = DQN(spec, config).update(b._replace(demo=None))
    assert "losses/margin_loss" not in plain.metrics


def test_an_action_outside_the_network_is_refused_before_any_weight_changes():
    """The compiled loops read without bounds checks: an out-of-range action raises, as PyTorch's
    gather does on the other path, and leaves the weights as they were."""
    spec = QNetworkSpec(obs_dim=4, n_actions=3, hidden=(8,))
    dqn = DQN(spec, DQNConfig())
    before = {k: v.clone() for k, v in dqn.q.state_dict().items()}
    b = batch(np.random.default_rng(0), spec, 16, masks=False, scale=1.0)
    for bad in (3, -1):
        actions = b.actions.copy()
        actions[5] = bad
        with pytest.raises(IndexError, match="outside the network's actions"):
            dqn.update(b._replace(actions=actions))
    for name, value in dqn.q.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert dqn.updates == 0
