"""Campaign admin: status changes only through the services, new campaigns only through campaign_create's checks."""

from __future__ import annotations

import html
import json

import pytest

from portal.campaigns.models import Campaign

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/campaigns/campaign/"
ADD = "/admin/campaigns/campaign/add/"


def run_action(client, action: str, *campaigns):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [c.pk for c in campaigns]}, follow=True
    )


def page(response) -> str:
    return html.unescape(response.content.decode())


def status_of(campaign) -> str:
    return Campaign.objects.get(pk=campaign.pk).status


def test_changelist_shows_the_figures(staff_client, cartpole_campaign, draft_campaign):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        samples_total=4242, clients_active=5, model_version=7
    )
    text = page(staff_client.get(CHANGELIST))
    for expected in (
        "CartPole test",
        "cartpole-test",
        "CartPole-v1",
        "DQN",
        "Running",
        "4242",
        "Secret draft",
    ):
        assert expected in text, expected


def test_launch_pause_resume_stop(staff_client, draft_campaign):
    response = run_action(staff_client, "launch_campaigns", draft_campaign)
    assert status_of(draft_campaign) == "running"
    assert "Launched campaign 'secret-draft'." in page(response)
    run_action(staff_client, "pause_campaigns", draft_campaign)
    assert status_of(draft_campaign) == "paused"
    run_action(staff_client, "resume_campaigns", draft_campaign)
    assert status_of(draft_campaign) == "running"
    run_action(staff_client, "stop_campaigns", draft_campaign)
    campaign = Campaign.objects.get(pk=draft_campaign.pk)
    assert campaign.status == "stopped" and campaign.stopped_at is not None


def test_an_invalid_transition_shows_the_error_and_the_others_still_run(
    staff_client, draft_campaign, stopped_campaign
):
    response = run_action(staff_client, "launch_campaigns", draft_campaign, stopped_campaign)
    text = page(response)
    assert "cannot launch campaign 'old-fight': it is stopped" in text.lower()
    assert "Launched campaign 'secret-draft'." in text
    assert status_of(stopped_campaign) == "stopped" and status_of(draft_campaign) == "running"

    text = page(run_action(staff_client, "resume_campaigns", draft_campaign))
    assert "cannot resume campaign 'secret-draft': it is running" in text.lower()


def test_status_and_figures_are_read_only_on_the_change_form(staff_client, cartpole_campaign):
    url = f"/admin/campaigns/campaign/{cartpole_campaign.pk}/change/"
    text = page(staff_client.get(url))
    assert 'name="name"' in text and 'name="description"' in text
    for field in ("status", "samples_total", "model_version", "env_id", "hyperparams"):
        assert f'name="{field}"' not in text, field


def add_form(**overrides) -> dict:
    data = {
        "slug": "lunar",
        "name": "Lunar",
        "description": "land it",
        "env_id": "CartPole-v1",
        "env_kwargs": "{}",
        "algorithm": "dqn",
        "hyperparams": json.dumps({"lr": 0.001}),
        "chunk_steps": "64",
        "min_client_version": "0.1.0",
        "max_policy_lag": "0",
    }
    data.update(overrides)
    return data


def test_add_makes_a_draft_with_resolved_spaces(staff_client):
    response = staff_client.post(ADD, add_form(), follow=True)
    assert response.status_code == 200
    campaign = Campaign.objects.get(slug="lunar")
    assert campaign.status == "draft" and campaign.chunk_steps == 64 and campaign.hyperparams == {"lr": 0.001}
    assert campaign.observation_space and campaign.action_space  # resolved by campaign_create
    assert campaign.action_space == Campaign.objects.get(slug="lunar").action_space


def test_add_rejects_an_unknown_environment_readably(staff_client):
    response = staff_client.post(ADD, add_form(env_id="NoSuchEnv-v9"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "cannot create environment 'NoSuchEnv-v9'" in " ".join(errors["env_id"])
    assert "cannot create environment 'NoSuchEnv-v9'" in page(response)
    assert not Campaign.objects.filter(slug="lunar").exists()


@pytest.mark.parametrize(
    ("hyperparams", "message"),
    [
        ({"learning_rate": 0.1}, "unknown hyperparameter(s) learning_rate"),
        ({"gamma": 2}, "gamma must be in (0, 1]"),
    ],
)
def test_add_rejects_bad_hyperparameters_readably(staff_client, hyperparams, message):
    response = staff_client.post(ADD, add_form(hyperparams=json.dumps(hyperparams)))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["hyperparams"])
    assert not Campaign.objects.filter(slug="lunar").exists()


def test_model_versions_are_read_only(staff_client, cartpole_campaign, publish):
    model = publish(cartpole_campaign, 1)
    assert staff_client.get("/admin/campaigns/modelversion/").status_code == 200
    assert staff_client.get("/admin/campaigns/modelversion/add/").status_code == 403
    text = page(staff_client.get(f"/admin/campaigns/modelversion/{model.pk}/change/"))
    assert model.sha256 in text and 'name="sha256"' not in text


def test_a_draft_hyperparameter_change_is_validated_too(staff_client, draft_campaign):
    url = f"/admin/campaigns/campaign/{draft_campaign.pk}/change/"
    data = {
        "name": "Secret draft",
        "description": "",
        "hyperparams": json.dumps({"batch_size": 0}),
        "chunk_steps": "128",
        "min_client_version": "0.1.0",
        "max_policy_lag": "0",
    }
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "batch_size must be 1 to 65536" in " ".join(
        response.context["adminform"].form.errors["hyperparams"]
    )

    data["hyperparams"] = json.dumps({"batch_size": 32})
    assert staff_client.post(url, data).status_code == 302
    assert Campaign.objects.get(pk=draft_campaign.pk).hyperparams == {"batch_size": 32}


def test_relay_limits_are_editable_on_a_running_campaign_and_validated(staff_client, cartpole_campaign):
    url = f"/admin/campaigns/campaign/{cartpole_campaign.pk}/change/"
    data = {
        "name": cartpole_campaign.name,
        "description": "",
        "min_client_version": "0.2",
        "max_policy_lag": "5",
    }
    response = staff_client.post(url, {**data, "min_client_version": "latest"})
    assert response.status_code == 200
    assert "a version like 0.1.0" in " ".join(response.context["adminform"].form.errors["min_client_version"])
    assert staff_client.post(url, data).status_code == 302
    campaign = Campaign.objects.get(pk=cartpole_campaign.pk)
    assert (campaign.min_client_version, campaign.max_policy_lag) == ("0.2", 5)
