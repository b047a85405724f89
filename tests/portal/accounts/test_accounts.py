"""Signing up, logging in and the profile page; allauth's pages in the site's layout."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from portal.machines.models import MachineToken
from portal.machines.services import token_create

pytestmark = pytest.mark.django_db


def test_signup_logs_in_and_lands_on_the_profile(client, password):
    response = client.post(
        reverse("account_signup"),
        {"email": "carol@example.com", "username": "carol", "password1": password, "password2": password},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/accounts/profile/"
    html = response.content.decode()
    assert "carol" in html and "carol@example.com" in html and "No machines yet" in html
    assert get_user_model().objects.filter(username="carol", email="carol@example.com").exists()


def test_signup_form_errors_show_in_the_page(client, alice, password):
    response = client.post(
        reverse("account_signup"),
        {"email": "x@example.com", "username": "alice", "password1": password, "password2": password},
    )
    assert response.status_code == 200
    assert "site-header" in response.content.decode()
    assert response.context["form"].errors["username"]


@pytest.mark.parametrize("login", ["alice", "alice@example.com"])
def test_login_by_username_or_email(client, alice, password, login):
    response = client.post(reverse("account_login"), {"login": login, "password": password}, follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/profile/"
    assert response.context["user"] == alice


def test_profile_requires_login(client, db):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/accounts/profile/")


def test_profile_lists_my_tokens_and_contributions_only(
    alice_client, alice, bob, cartpole_campaign
):
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_stop

    old_fight = campaign_launch(campaign=campaign_create(slug="old-fight", name="Old fight", env_id="CartPole-v1"))
    old, _ = token_create(user=alice, campaign=old_fight, name="old-box")  # joined while it ran...
    campaign_stop(campaign=old_fight)  # ...and it has stopped since
    mine, _ = token_create(user=alice, campaign=cartpole_campaign, name="gaming-pc")
    laptop, _ = token_create(user=alice, campaign=cartpole_campaign, name="laptop")
    theirs, _ = token_create(user=bob, campaign=cartpole_campaign, name="bobs-pc")
    MachineToken.objects.filter(pk=mine.pk).update(samples=1500, episodes=12, client_version="0.1.0")
    MachineToken.objects.filter(pk=laptop.pk).update(samples=500, episodes=3)
    MachineToken.objects.filter(pk=old.pk).update(samples=7, episodes=1)
    MachineToken.objects.filter(pk=theirs.pk).update(samples=99999)

    response = alice_client.get("/accounts/profile/")
    html = response.content.decode()
    assert "gaming-pc" in html and "laptop" in html and mine.prefix in html and "0.1.0" in html
    assert "bobs-pc" not in html and theirs.prefix not in html
    contributions = {
        c.campaign.slug: (c.samples, c.episodes, c.machines) for c in response.context["contributions"]
    }
    assert contributions == {"cartpole-test": (2000, 15, 2), "old-fight": (7, 1, 1)}
    assert "2,000" in html


@pytest.mark.parametrize(
    "name", ["account_login", "account_signup", "account_reset_password", "account_reset_password_done"]
)
def test_allauth_pages_use_the_site_layout(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert "site-header" in html and "auth-card" in html and "css/site.css" in html


def test_logout_page_and_password_reset_flow_use_the_site_layout(client, alice, mailoutbox):
    client.force_login(alice)
    html = client.get(reverse("account_logout")).content.decode()
    assert "auth-card" in html
    client.logout()

    response = client.post(reverse("account_reset_password"), {"email": "alice@example.com"}, follow=True)
    assert "auth-card" in response.content.decode()
    assert len(mailoutbox) == 1
    link = next(line for line in mailoutbox[0].body.splitlines() if "/accounts/password/reset/key/" in line)
    path = link[link.index("/accounts/") :].strip()
    response = client.get(path, follow=True)
    assert response.status_code == 200
    assert "auth-card" in response.content.decode() and "password1" in response.content.decode()
