"""Fixtures of the relay's tests: a running CartPole campaign, a volunteer and their machine token."""

from __future__ import annotations

import pytest

from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.services import token_create


@pytest.fixture
def campaign(django_user_model):
    campaign = campaign_launch(
        campaign=campaign_create(slug="relay-test", name="Relay test", env_id="CartPole-v1")
    )
    campaign_redis_sync(campaign=campaign)
    return campaign


@pytest.fixture
def volunteer(django_user_model):
    return django_user_model.objects.create_user("vol", "vol@example.com", "pw-12345678")


@pytest.fixture
def token(campaign, volunteer):
    return token_create(user=volunteer, campaign=campaign, name="rig")
