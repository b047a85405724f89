"""V-trace in the PPO learner (``off_policy: "vtrace"``): the maths against hand-computed values, its
on-policy limit (GAE's targets), and an agent that learns from chunks played 2-4 versions ago."""

import numpy as np
import pytest
import torch

from client_app.policy import Policy, masked_log_softmax, save_model
from tests.trainer.test_ppo import bandit_chunk
from trainer.agents import PPOAgent
from trainer.config import PPOConfig, config_for
from trainer.ppo import gae, vtrace, vtrace_chunks

# Three steps: r, V(x_0..x_2), the bootstrap V(x_3); pi/mu of the actions taken is 3, 0.5 and 1.5.
REWARDS = np.array([1.0, 0.0, 2.0])
VALUES = np.array([0.5, 1.0, -1.0])
NEXT_VALUES = np.array([1.0, -1.0, 3.0])
LOG_RHOS = np.log([3.0, 0.5, 1.5])
# Unweighted deltas r + 0.9 V(x') - V(x): 1.4, -1.9, 5.7.


def test_vtrace_against_hand_computed_values_with_both_clips_at_one():
    # rho = c = min(1, pi/mu) = 1, 0.5, 1: rho * delta = 1.4, -0.95, 5.7
    # v2 - V2 = 5.7;  v1 - V1 = -0.95 + .9*.5*5.7 = 1.615;  v0 - V0 = 1.4 + .9*1*1.615 = 2.8535
    # A0 = 1 * (1 + .9*2.615 - .5) = 2.8535;  A1 = .5 * (0 + .9*4.7 - 1) = 1.615;  A2 = 5.7
    vs, advantages = vtrace(REWARDS, VALUES, NEXT_VALUES, LOG_RHOS, gamma=0.9, rho_clip=1.0, c_clip=1.0)
    np.testing.assert_allclose(vs, [3.3535, 2.615, 4.7], rtol=1e-6)
    np.testing.assert_allclose(advantages, [2.8535, 1.615, 5.7], rtol=1e-6)


def test_vtrace_clips_rho_and_c_apart():
    # rho_clip 2, c_clip 1: rho = 2 (3 clipped), 0.5, 1.5; c = 1 (clipped), 0.5, 1 (1.5 clipped)
    # rho * delta = 2.8, -0.95, 8.55
    # v2 - V2 = 8.55;  v1 - V1 = -0.95 + .9*.5*8.55 = 2.8975;  v0 - V0 = 2.8 + .9*1*2.8975 = 5.40775
    # A0 = 2 * (1 + .9*3.8975 - .5) = 8.0155;  A1 = .5 * (.9*7.55 - 1) = 2.8975;  A2 = 1.5 * 5.7 = 8.55
    vs, advantages = vtrace(REWARDS, VALUES, NEXT_VALUES, LOG_RHOS, gamma=0.9, rho_clip=2.0, c_clip=1.0)
    np.testing.assert_allclose(vs, [5.90775, 3.8975, 7.55], rtol=1e-6)
    np.testing.assert_allclose(advantages, [8.0155, 2.8975, 8.55], rtol=1e-6)


def test_vtrace_does_not_overflow_for_a_behaviour_probability_near_zero():
    vs, advantages = vtrace(REWARDS, VALUES, NEXT_VALUES, np.array([800.0, -800.0, 0.0]), gamma=0.9)
    assert np.isfinite(vs).all() and np.isfinite(advantages).all()
    assert advantages[1] == 0.0  # pi/mu ~ 0: the step neither pushes the policy nor its value target


@pytest.mark.parametrize("terminated", [True, False])
def test_on_policy_vtrace_with_lambda_one_is_the_bootstrapped_discounted_return(terminated):
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=5), rng.normal(size=6)  # V(x_0..x_5), x_5 the bootstrap
    vs, advantages = vtrace_chunks(
        rewards,
        values,
        np.zeros(5),
        lengths=np.array([5]),
        terminated=np.array([terminated]),
        gamma=0.9,
        lam=1.0,
        rho_clip=1.0,
        c_clip=1.0,
    )
    bootstrap = 0.0 if terminated else 0.9**5 * values[5]
    discounted = sum(0.9**k * rewards[k] for k in range(5)) + bootstrap
    assert vs[0] == pytest.approx(discounted, rel=1e-5)
    gae_advantages, gae_returns = gae(rewards, values, terminated=terminated, gamma=0.9, lam=1.0)
    np.testing.assert_allclose(vs, gae_returns, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(advantages, gae_advantages, rtol=1e-5, atol=1e-6)


def test_on_policy_vtrace_chunks_give_gae_lambda_targets_chunk_by_chunk():
    """Chunks laid end to end (one terminated, one cut mid-episode, lengths 4, 1, 3): each is its own
    sequence, and with pi == mu the targets are GAE(lambda)'s."""
    rng = np.random.default_rng(1)
    lengths, terminated = np.array([4, 1, 3]), np.array([True, False, False])
    rewards, values = rng.normal(size=8), rng.normal(size=8 + 3)
    vs, _ = vtrace_chunks(
        rewards,
        values,
        np.zeros(8),
        lengths=lengths,
        terminated=terminated,
        gamma=0.95,
        lam=0.8,
        rho_clip=1.0,
        c_clip=1.0,
    )
    expected, at, step = [], 0, 0
    for length, done in zip(lengths, terminated, strict=True):
        expected.append(
            gae(
                rewards[step : step + length],
                values[at : at + length + 1],
                terminated=done,
                gamma=0.95,
                lam=0.8,
            )[1]
        )
        at, step = at + length + 1, step + length
    np.testing.assert_allclose(vs, np.concatenate(expected), rtol=1e-5, atol=1e-6)


def _agent(**overrides) -> PPOAgent:
    torch.manual_seed(0)
    config = PPOConfig(
        **{
            "rollout_steps": 64,
            "minibatch_size": 32,
            "epochs": 4,
            "hidden": (8,),
            "normalize_obs": False,
            "gamma": 0.9,
            "gae_lambda": 1.0,
            **overrides,
        }
    )
    return PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))


def test_the_vtrace_rollout_on_fresh_chunks_matches_plain_ppo_and_anchors_on_the_current_policy():
    """The agent's wiring: on chunks played by the current policy (one terminated, one shorter),
    V-trace's targets and advantages are GAE(1)'s and the ratio's anchor is the current actor's logp."""
    plain, corrected = _agent(), _agent(off_policy="vtrace")
    policy = Policy.from_bytes(save_model(plain.spec, plain.params(), version=1))
    rng = np.random.default_rng(5)
    chunks = [bandit_chunk(rng, policy, 1, steps=steps) for steps in (32, 7, 25)]
    chunks[1].terminated = True
    for agent in (plain, corrected):
        for chunk in chunks:
            agent.ingest(chunk, current_version=1)
    a, b = plain._rollout(), corrected._rollout()
    np.testing.assert_allclose(b.returns, a.returns, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.advantages, a.advantages, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.logp_old, a.logp_old, atol=1e-5)  # pi_old == mu


def test_with_vtrace_chunks_two_to_eight_versions_old_are_kept_and_older_ones_dropped():
    plain, corrected = _agent(rollout_steps=1024), _agent(rollout_steps=1024, off_policy="vtrace")
    policy = Policy.from_bytes(save_model(plain.spec, plain.params(), version=3))
    rng = np.random.default_rng(1)
    for behind, kept in [(2, 32), (3, 32), (4, 32), (8, 32), (9, 0)]:
        chunk = bandit_chunk(rng, policy, 20 - behind)
        assert corrected.ingest(chunk, current_version=20) == kept, behind
        assert plain.ingest(chunk, current_version=20) == 0, behind  # max_staleness 1
    assert (corrected.pending_steps, corrected.dropped_samples) == (128, 32)
    assert (plain.pending_steps, plain.dropped_samples) == (0, 160)


def test_ppo_with_vtrace_solves_the_contextual_bandit_from_chunks_two_to_four_versions_old():
    """The toy problem with a known answer (tests/trainer/test_ppo.py), every chunk played by a policy
    2 to 4 versions behind the one being trained: plain PPO would drop them all."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config = PPOConfig(
        rollout_steps=128,
        minibatch_size=32,
        epochs=4,
        lr=3e-3,
        gamma=0.0,
        gae_lambda=0.0,
        hidden=(16,),
        normalize_obs=False,
        off_policy="vtrace",
    )
    agent = PPOAgent(config, obs_dim=2, n_actions=2, action_start=0, device=torch.device("cpu"))
    published = [Policy.from_bytes(save_model(agent.spec, agent.params(), version=0))]
    for version in range(1, 41):
        published.append(Policy.from_bytes(save_model(agent.spec, agent.params(), version=version)))
        while agent.wants_data():
            played = max(0, version - int(rng.integers(2, 5)))
            agent.ingest(bandit_chunk(rng, published[played], played), current_version=version)
        agent.train(float("inf"), lambda: False)
    assert agent.dropped_samples == 0
    policy = Policy.from_bytes(save_model(agent.spec, agent.params(), version=41))
    assert policy.greedy(np.array([1.0, 0.0])) == 0 and policy.greedy(np.array([0.0, 1.0])) == 1
    probs = np.exp(masked_log_softmax(policy.scores(np.array([1.0, 0.0])), None))
    assert probs[0] > 0.9


def test_vtrace_is_off_by_default_and_keeps_plain_ppo_s_bound():
    config = config_for("CartPole-v1", algorithm="ppo")
    assert (config.off_policy, config.staleness_bound) == ("none", 1)
    on = config_for("CartPole-v1", {"off_policy": "vtrace"}, algorithm="ppo")
    assert (on.vtrace_rho_clip, on.vtrace_c_clip, on.staleness_bound) == (1.0, 1.0, 8)
    assert (
        config_for(
            "CartPole-v1", {"off_policy": "vtrace", "vtrace_max_staleness": 3}, algorithm="ppo"
        ).staleness_bound
        == 3
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"off_policy": "retrace"}, "off_policy must be one of none, vtrace"),
        ({"off_policy": True}, "off_policy must be a string"),
        ({"vtrace_rho_clip": 0}, "vtrace_rho_clip must be in (0, 100]"),
        ({"vtrace_c_clip": -1.0}, "vtrace_c_clip must be in (0, vtrace_rho_clip]"),
        ({"vtrace_rho_clip": 1.0, "vtrace_c_clip": 2.0}, "vtrace_c_clip must be in (0, vtrace_rho_clip]"),
        ({"vtrace_max_staleness": 101}, "vtrace_max_staleness must be 0 to 100"),
        ({"vtrace_max_staleness": 2.5}, "vtrace_max_staleness must be a whole number"),
    ],
)
def test_bad_vtrace_settings_are_refused_readably(values, message):
    with pytest.raises(ValueError) as refused:
        PPOConfig.from_dict(values)
    assert message in str(refused.value)
