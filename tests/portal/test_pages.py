"""Home, campaign pages, drafts and the error pages, as a visitor sees them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.campaigns.models import Campaign
from portal.machines.services import token_create

pytestmark = pytest.mark.django_db


def test_home_shows_running_campaigns_totals_and_call_to_action(
    client, cartpole_campaign, stopped_campaign, alice
):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        samples_total=123456, episodes_total=789, clients_active=3
    )
    Campaign.objects.filter(pk=stopped_campaign.pk).update(samples_total=1000)
    token, _ = token_create(user=alice, campaign=cartpole_campaign, name="pc")
    from django.utils import timezone

    type(token).objects.filter(pk=token.pk).update(last_seen=timezone.now())

    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "CartPole test" in html  # running: shown
    assert "Old fight" not in html  # stopped: not among the running ones
    totals = response.context["totals"]
    assert (totals.samples, totals.episodes, totals.machines_connected) == (124456, 789, 3)
    assert totals.volunteers_active == 1 and totals.campaigns_running == 1
    assert "124,456" in html
    assert reverse("account_signup") in html and reverse("downloads:page") in html


def test_header_nav_changes_with_the_user(client, alice, staff):
    html = client.get("/").content.decode()
    assert "Log in" in html and "Sign up" in html and "/admin/" not in html
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "Profile" in html and "Log out" in html and "/admin/" not in html
    client.force_login(staff)
    assert "/admin/" in client.get("/").content.decode()


def test_campaign_list_hides_drafts_from_visitors_and_shows_them_to_staff(
    client, staff, cartpole_campaign, draft_campaign
):
    html = client.get("/campaigns/").content.decode()
    assert "CartPole test" in html and "Secret draft" not in html
    client.force_login(staff)
    html = client.get("/campaigns/").content.decode()
    assert "Secret draft" in html


def test_campaign_detail_shows_setup_and_figures(client, cartpole_campaign, publish):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        samples_total=5000, episodes_total=42, clients_active=2, mean_return_recent=87.25
    )
    publish(cartpole_campaign, 1, is_checkpoint=True, samples_total=4000)
    publish(cartpole_campaign, 2)
    response = client.get(cartpole_campaign.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    for expected in ("CartPole test", "CartPole-v1", "DQN", "Running", "v2", "5,000", "42", "87.25"):
        assert expected in html, expected
    checkpoints = list(response.context["checkpoints"])
    assert [m.version for m in checkpoints] == [1]
    assert "/campaigns/cartpole-test/models/1.safetensors" in html


def test_campaign_detail_asks_visitors_to_log_in_and_offers_members_the_join_form(
    client, alice, cartpole_campaign
):
    html = client.get(cartpole_campaign.get_absolute_url()).content.decode()
    assert "Log in to join" in html and 'name="machine_name"' not in html
    client.force_login(alice)
    html = client.get(cartpole_campaign.get_absolute_url()).content.decode()
    assert (
        'name="machine_name"' in html and reverse("campaigns:join", kwargs={"slug": "cartpole-test"}) in html
    )


def test_draft_is_404_for_visitors_and_members_but_visible_to_staff(client, alice, staff, draft_campaign):
    url = draft_campaign.get_absolute_url()
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_404_page_uses_the_site_layout(client, db):
    response = client.get("/campaigns/no-such-fight/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "site-header" in html and "This page is not here" in html


def test_500_template_renders_without_context():
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "Something went wrong" in html and "site.css" in html


def test_stylesheet_is_served(client, db):
    response = client.get("/static/css/site.css")
    assert response.status_code == 200
    assert b".site-header" in b"".join(response.streaming_content)
