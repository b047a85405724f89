"""The public JSON API: shapes, types, drafts hidden, read-only."""

from __future__ import annotations

import pytest
from django.utils.dateparse import parse_datetime

from portal.campaigns.models import Campaign

pytestmark = pytest.mark.django_db

CAMPAIGN_FIELDS = {
    "slug": str,
    "name": str,
    "description": str,
    "env_id": str,
    "algorithm": str,
    "status": str,
    "model_version": int,
    "samples_total": int,
    "episodes_total": int,
    "updates_total": int,
    "clients_active": int,
    "url": str,
    "api_url": str,
    "checkpoints_url": str,
    "created": str,
}


def assert_campaign_shape(data: dict) -> None:
    for name, kind in CAMPAIGN_FIELDS.items():
        assert isinstance(data[name], kind), (name, data[name])
    assert data["mean_return_recent"] is None or isinstance(data["mean_return_recent"], float)
    assert data["launched_at"] is None or parse_datetime(data["launched_at"]) is not None
    assert data["model_url"] is None or data["model_url"].startswith("http://testserver/")
    assert parse_datetime(data["created"]) is not None
    assert data["url"].startswith("http://testserver/campaigns/")


def test_campaign_list(client, cartpole_campaign, stopped_campaign, draft_campaign):
    response = client.get("/api/campaigns/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    campaigns = response.json()["campaigns"]
    assert [c["slug"] for c in campaigns] == ["cartpole-test", "old-fight"]  # running first, no drafts
    for data in campaigns:
        assert_campaign_shape(data)


def test_campaign_detail(client, cartpole_campaign, publish):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        samples_total=640, episodes_total=7, clients_active=2, mean_return_recent=21.5
    )
    publish(cartpole_campaign, 3)
    data = client.get("/api/campaigns/cartpole-test/").json()
    assert_campaign_shape(data)
    assert data["slug"] == "cartpole-test" and data["env_id"] == "CartPole-v1"
    assert data["algorithm"] == "dqn" and data["status"] == "running"
    assert (data["model_version"], data["samples_total"], data["episodes_total"]) == (3, 640, 7)
    assert (data["clients_active"], data["mean_return_recent"], data["updates_total"]) == (2, 21.5, 150)
    assert data["model_url"] == "http://testserver/campaigns/cartpole-test/models/3.safetensors"
    assert data["url"] == "http://testserver/campaigns/cartpole-test/"
    assert data["launched_at"] is not None


def test_checkpoints_newest_first_with_absolute_urls(client, cartpole_campaign, publish):
    publish(cartpole_campaign, 1, is_checkpoint=True, samples_total=100)
    publish(cartpole_campaign, 2)
    third = publish(cartpole_campaign, 3, is_checkpoint=True, samples_total=300)
    response = client.get("/api/campaigns/cartpole-test/checkpoints/")
    assert response.status_code == 200
    checkpoints = response.json()["checkpoints"]
    assert [c["version"] for c in checkpoints] == [3, 1]
    first = checkpoints[0]
    assert first == {
        "version": 3,
        "sha256": third.sha256,
        "url": "http://testserver/campaigns/cartpole-test/models/3.safetensors",
        "size_bytes": third.size_bytes,
        "created": third.created.isoformat(),
        "samples_total": 300,
        "updates_total": 150,
        "mean_return_recent": None,
        "eval_return": None,
        "eval_episodes": 0,
        "eval_win_rate": None,
        "eval_boss_hp_left": None,
        "eval_player_hp_left": None,
        "held_back": "",
    }
    assert isinstance(first["size_bytes"], int) and first["size_bytes"] > 0
    assert client.get(first["url"]).status_code == 200


def test_drafts_and_unknown_campaigns_are_404(client, staff, draft_campaign):
    client.force_login(staff)  # not even staff: the API is public and drafts are not
    for url in (
        "/api/campaigns/secret-draft/",
        "/api/campaigns/secret-draft/checkpoints/",
        "/api/campaigns/nope/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/campaigns/").json() == {"campaigns": []}


def test_the_api_is_read_only(client, cartpole_campaign):
    for url in (
        "/api/campaigns/",
        "/api/campaigns/cartpole-test/",
        "/api/campaigns/cartpole-test/checkpoints/",
    ):
        assert client.post(url, {}).status_code == 405, url
        assert client.delete(url).status_code == 405, url
