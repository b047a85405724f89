"""Campaign creation: hyperparameters validated per algorithm, spaces resolved, chunk sizes by default."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.campaigns.services import campaign_create

pytestmark = pytest.mark.django_db


def test_ppo_campaigns_validate_ppo_hyperparameters_with_readable_errors():
    with pytest.raises(ValidationError, match="clip_range must be in"):
        campaign_create(slug="bad", name="Bad", env_id="CartPole-v1", algorithm="ppo", hyperparams={"clip_range": 2})
    with pytest.raises(ValidationError, match="unknown hyperparameter.*n_step"):
        campaign_create(slug="bad", name="Bad", env_id="CartPole-v1", algorithm="ppo", hyperparams={"n_step": 3})
    ok = campaign_create(slug="ok", name="Ok", env_id="CartPole-v1", algorithm="ppo", hyperparams={"epochs": 4})
    assert ok.algorithm == "ppo"


def test_chunk_sizes_default_by_algorithm_and_environment():
    pole_ppo = campaign_create(slug="a", name="A", env_id="CartPole-v1", algorithm="ppo")
    pole_dqn = campaign_create(slug="b", name="B", env_id="CartPole-v1", algorithm="dqn")
    arena_ppo = campaign_create(slug="c", name="C", env_id="soulsai/IudexArena-v0", algorithm="ppo")
    chosen = campaign_create(slug="d", name="D", env_id="CartPole-v1", algorithm="ppo", chunk_steps=64)
    assert [c.chunk_steps for c in (pole_ppo, pole_dqn, arena_ppo, chosen)] == [1024, 128, 128, 64]


def test_soulsgym_campaigns_are_declared_without_the_game():
    campaign = campaign_create(slug="iudex", name="Iudex", env_id="SoulsGymIudex-v0")
    assert campaign.action_space == {"type": "discrete", "n": 20, "start": 0}
    assert campaign.observation_space["type"] == "box" and len(campaign.observation_space["shape"]) == 1
