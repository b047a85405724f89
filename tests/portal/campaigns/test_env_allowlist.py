"""Env ids come from an allow-list: an id gymnasium would resolve by importing a module never gets there.

gymnasium.make("module:Env") imports ``module``. A canary module on sys.path records whether it was
ever imported; the staff form and campaign_create must refuse such ids before gymnasium sees them.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from django.core.exceptions import ValidationError

from portal.campaigns.models import Campaign
from portal.campaigns.services import SUPPORTED_ENVS, campaign_create

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Hostile", "slug": "hostile", "description": "", "env_id": "CartPole-v1", "algorithm": "dqn",
    "hyperparams": "{}", "chunk_steps": "", "min_client_version": "0.1.0", "max_policy_lag": "0",
    "visibility": "public", "launch_now": "on",
}  # fmt: skip


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """(module name, marker path): importing the module writes the marker."""
    name = f"soulsai_canary_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Env: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def hostile_ids(module: str) -> list[str]:
    return [f"{module}:Env", f"{module}:Env-v0", "os:system", "CartPole-v1 ", "cartpole-v1"]


def test_campaign_create_refuses_ids_off_the_list_and_imports_nothing(canary):
    module, marker = canary
    for env_id in hostile_ids(module):
        with pytest.raises(ValidationError) as refused:
            campaign_create(slug="hostile", name="Hostile", env_id=env_id)
        assert not marker.exists() and module not in sys.modules, f"{env_id!r} imported {module}"
        assert "is not an environment SoulsAI supports" in " ".join(refused.value.messages), env_id
    assert not Campaign.objects.filter(slug="hostile").exists()


def test_the_staff_form_lists_the_allowed_ids_and_imports_nothing(staff_client, canary):
    module, marker = canary
    for env_id in hostile_ids(module)[:3]:
        response = staff_client.post("/staff/campaigns/new/", {**FORM, "env_id": env_id})
        assert not marker.exists() and module not in sys.modules, f"{env_id!r} imported {module}"
        assert response.status_code == 400, env_id
        errors = " ".join(response.context["form"].errors["env_id"])
        assert "is not an environment SoulsAI supports" in errors
        assert all(allowed in errors for allowed in SUPPORTED_ENVS)
    assert not Campaign.objects.exists()


def test_every_id_on_the_list_can_be_declared():
    # The list is what the platform supports: each id must create a campaign (LunarLander needs box2d,
    # the SoulsGym fights are declared without the game).
    for env_id in SUPPORTED_ENVS:
        campaign = campaign_create(slug=f"env-{SUPPORTED_ENVS.index(env_id)}", name=env_id, env_id=env_id)
        assert campaign.observation_space and campaign.action_space["type"] == "discrete"
