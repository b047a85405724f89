"""An account holds a bounded number of live machine tokens; joining past it says what to do."""

from __future__ import annotations

import pytest
from django.conf import settings

from portal.machines.models import MachineToken
from portal.machines.services import token_create, token_revoke
from tests.portal.live_http import LiveBrowser, form_errors

pytestmark = pytest.mark.django_db(transaction=True)


def join(browser: LiveBrowser, campaign, name: str):
    browser.get(campaign.get_absolute_url())
    return browser.post(f"/campaigns/{campaign.slug}/join/", {"machine_name": name})


def test_joining_past_the_live_token_cap_is_refused_readably(asgi_server, alice, cartpole_campaign):
    cap = settings.SOULSAI_TOKENS_PER_ACCOUNT
    assert cap == 10  # the default the real server runs with
    made = [token_create(user=alice, campaign=cartpole_campaign, name=f"pc-{i}")[0] for i in range(cap)]
    browser = LiveBrowser(asgi_server.url)
    browser.login_as(alice)

    page = join(browser, cartpole_campaign, "one-too-many")
    assert page.status == 409
    text = form_errors(page.text)
    assert f"You have {cap} live machine tokens" in text and "Revoke one" in text, text[:2000]
    assert "/accounts/profile/" in page.text
    assert MachineToken.objects.filter(user=alice).count() == cap

    token_revoke(token=made[0])  # revoked tokens do not count
    page = join(browser, cartpole_campaign, "replacement")
    assert page.status == 200 and "shown only once" in page.text
    assert MachineToken.objects.active().filter(user=alice).count() == cap
