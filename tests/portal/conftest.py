"""Fixtures of the portal's page, API and admin tests: users, campaigns in each state, published models."""

from __future__ import annotations

import numpy as np
import pytest

from client_app.policy import QNetworkSpec, save_model
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.services import token_create


@pytest.fixture(scope="session", autouse=True)
def _static_root():
    """WhiteNoise warns about a missing STATIC_ROOT; the test var/ folder has none until collectstatic."""
    from pathlib import Path

    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple"


@pytest.fixture
def alice(django_user_model, password):
    return django_user_model.objects.create_user(
        username="alice", email="alice@example.com", password=password
    )


@pytest.fixture
def bob(django_user_model, password):
    return django_user_model.objects.create_user(username="bob", email="bob@example.com", password=password)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def staff(django_user_model, password):
    return django_user_model.objects.create_superuser(
        username="admin", email="admin@example.com", password=password
    )


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def draft_campaign(db):
    from portal.campaigns.services import campaign_create

    return campaign_create(
        slug="secret-draft", name="Secret draft", env_id="CartPole-v1", description="not yet"
    )


@pytest.fixture
def stopped_campaign(db):
    from portal.campaigns.services import campaign_create, campaign_stop

    campaign = campaign_create(slug="old-fight", name="Old fight", env_id="CartPole-v1")
    return campaign_stop(campaign=campaign)


def model_bytes(version: int) -> bytes:
    """A real CartPole policy file, as the learner would publish it."""
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    rng = np.random.default_rng(version)
    params = {
        name: rng.normal(size=shape).astype(np.float32) for name, shape in spec.parameter_shapes().items()
    }
    return save_model(spec, params, version=version, epsilon=0.1)


@pytest.fixture
def publish():
    """Publish model ``version`` of a campaign with model_publish; returns the ModelVersion."""
    from portal.campaigns.services import model_publish

    def _publish(campaign, version: int, *, is_checkpoint: bool = False, samples_total: int = 0):
        return model_publish(
            campaign_id=campaign.id,
            version=version,
            weights=model_bytes(version),
            is_checkpoint=is_checkpoint,
            samples_total=samples_total,
            updates_total=version * 50,
        )

    return _publish


# A running CartPole campaign, a volunteer and their machine token: what the relay's tests and the
# identity tests (tests/portal/accounts) connect with.
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
