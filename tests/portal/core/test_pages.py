"""The site's home, header, error pages and static files, as a visitor sees them."""

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


def test_home_cards_carry_live_fields(client, cartpole_campaign):
    html = client.get("/").content.decode()
    assert 'data-campaign-card="cartpole-test"' in html and 'data-field="samples_total"' in html
    assert "/static/js/home-live.js" in html


def test_header_nav_changes_with_the_user(client, alice, staff):
    html = client.get("/").content.decode()
    assert "Log in" in html and "Sign up" in html and "/admin/" not in html
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "Profile" in html and "Log out" in html and "/admin/" not in html
    client.force_login(staff)
    assert "/admin/" in client.get("/").content.decode()


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


def test_the_charting_library_is_served_by_the_portal(client):
    response = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert response.status_code == 200
    assert b"uPlot" in b"".join(response.streaming_content)
