import pytest

from trainer.config import DEFAULTS_BY_ENV, DQNConfig, config_for


def test_defaults_use_n_step_returns_and_prioritized_replay():
    config = DQNConfig()
    assert (config.n_step, config.prioritized) == (3, True)
    assert (config.per_alpha, config.per_beta0, config.per_eps) == (0.6, 0.4, 1e-6)


@pytest.mark.parametrize("n_step", [1, 20])
def test_n_step_from_1_to_20_is_accepted(n_step):
    assert DQNConfig.from_dict({"n_step": n_step}).n_step == n_step


@pytest.mark.parametrize(
    "values",
    [
        {"n_step": 0},
        {"n_step": 21},
        {"n_step": 2.5},
        {"prioritized": 1},
        {"per_alpha": 1.5},
        {"per_beta0": -0.1},
        {"per_beta_anneal_updates": -1},
        {"per_eps": 0},
    ],
)
def test_bad_replay_settings_are_refused(values):
    with pytest.raises(ValueError):
        DQNConfig.from_dict(values)


@pytest.mark.parametrize("env_id", sorted(DEFAULTS_BY_ENV))
def test_every_environment_default_is_valid_and_a_campaign_may_override_it(env_id):
    config = config_for(env_id, {"n_step": 1, "prioritized": False})
    assert (config.n_step, config.prioritized) == (1, False)
    config_for(env_id).validate()


def test_the_iudex_fights_share_one_set_of_defaults_that_normalises_observations():
    from client_app.iudex import IUDEX_ENV_IDS

    configs = {config_for(env_id) for env_id in IUDEX_ENV_IDS}  # the game's ids and the arena
    assert len(configs) == 1
    [config] = configs
    assert config.normalize_obs and config.eval_episodes == 20
    assert config != config_for("CartPole-v1")
