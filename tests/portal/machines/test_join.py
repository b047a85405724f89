"""Joining a campaign: the token is shown once, stored hashed, and works with the relay's check."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from portal.machines.models import MachineToken
from portal.machines.services import token_authenticate, token_create

pytestmark = pytest.mark.django_db


def join(client, campaign, name="gaming-pc", *, follow=True, **headers):
    """Press Join, and follow the redirect to the token page as a browser does."""
    url = reverse("campaigns:join", kwargs={"slug": campaign.slug})
    return client.post(url, {"machine_name": name}, follow=follow, headers=headers)


def test_join_shows_the_token_once_with_the_commands(alice_client, alice, cartpole_campaign):
    response = join(alice_client, cartpole_campaign)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plain = response.context["plain_token"]
    html = response.content.decode()

    token = MachineToken.objects.get(user=alice, campaign=cartpole_campaign)
    assert token.name == "gaming-pc"
    assert plain in html and "shown only once" in html
    # The commands take the token from SOULSAI_TOKEN (pasted when asked) and --save: never on the command line.
    assert "soulsai-client --server http://testserver --save" in html and "python -m client_app" in html
    assert "read -rs SOULSAI_TOKEN" in html and '$env:SOULSAI_TOKEN = Read-Host' in html
    assert "--token" not in html
    assert reverse("downloads:page") in html
    # The database keeps only a hash; the token authenticates as the relay will check it.
    assert plain not in str(MachineToken.objects.filter(pk=token.pk).values().get())
    assert token.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert token_authenticate(raw=plain) == token

    profile = alice_client.get("/accounts/profile/").content.decode()
    assert token.prefix in profile and plain not in profile
    detail = alice_client.get(cartpole_campaign.get_absolute_url()).content.decode()
    assert plain not in detail


def test_each_join_makes_a_new_token(alice_client, alice, cartpole_campaign):
    first = join(alice_client, cartpole_campaign, "pc").context["plain_token"]
    second = join(alice_client, cartpole_campaign, "laptop").context["plain_token"]
    assert first != second
    assert MachineToken.objects.filter(user=alice).count() == 2


def test_join_with_a_blank_name_uses_a_recognisable_default(alice_client, alice, cartpole_campaign):
    windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    page = alice_client.get(cartpole_campaign.get_absolute_url(), headers={"user-agent": windows}).content.decode()
    assert re.search(r'name="machine_name" value="Windows PC [0-9a-f]{4}"', page)  # filled in, editable
    assert join(alice_client, cartpole_campaign, "  ", **{"user-agent": windows}).status_code == 200
    assert re.fullmatch(r"Windows PC [0-9a-f]{4}", MachineToken.objects.get(user=alice).name)


def test_refreshing_the_token_page_makes_no_second_token(alice_client, alice, cartpole_campaign):
    first = join(alice_client, cartpole_campaign, follow=False)
    assert first.status_code == 302  # post/redirect/get
    page = alice_client.get(first["Location"])
    plain = page.context["plain_token"]
    assert plain.startswith("sai_") and plain in page.content.decode()
    again = alice_client.get(first["Location"])  # the refresh
    assert again.status_code == 200 and "no-store" in again["Cache-Control"]
    html = again.content.decode()
    assert plain not in html and "already shown" in html
    assert MachineToken.objects.filter(user=alice).count() == 1


def test_joining_a_stopped_campaign_is_refused_readably(alice_client, alice, stopped_campaign):
    response = join(alice_client, stopped_campaign)
    assert response.status_code == 409
    assert "This campaign has stopped" in response.content.decode()
    assert not MachineToken.objects.filter(user=alice).exists()


def test_join_needs_a_login_and_a_post(client, alice, cartpole_campaign):
    response = join(client, cartpole_campaign, follow=False)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={cartpole_campaign.get_absolute_url()}"
    assert not MachineToken.objects.exists()
    client.force_login(alice)
    assert client.get(reverse("campaigns:join", kwargs={"slug": cartpole_campaign.slug})).status_code == 405


def test_join_needs_the_csrf_token(alice, cartpole_campaign):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert join(client, cartpole_campaign).status_code == 403


def test_drafts_cannot_be_joined_by_volunteers(alice_client, draft_campaign):
    assert join(alice_client, draft_campaign).status_code == 404


def test_revoke_my_token(alice_client, alice, cartpole_campaign):
    plain = join(alice_client, cartpole_campaign).context["plain_token"]
    token = MachineToken.objects.get(user=alice)

    response = alice_client.post(reverse("machines:revoke", kwargs={"pk": token.pk}), follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/profile/"
    assert "Revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_authenticate(raw=plain) is None


def test_only_the_owner_can_revoke(client, alice, bob, cartpole_campaign):
    client.force_login(alice)
    plain = join(client, cartpole_campaign).context["plain_token"]
    token = MachineToken.objects.get(user=alice)

    client.force_login(bob)
    assert client.post(reverse("machines:revoke", kwargs={"pk": token.pk})).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and token_authenticate(raw=plain) == token

    client.logout()
    response = client.post(reverse("machines:revoke", kwargs={"pk": token.pk}))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    assert client.get(reverse("machines:revoke", kwargs={"pk": token.pk})).status_code == 405


def test_no_token_can_be_made_for_a_stopped_campaign(alice, stopped_campaign):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="stopped"):
        token_create(user=alice, campaign=stopped_campaign, name="late-pc")
    assert not stopped_campaign.machine_tokens.exists()
