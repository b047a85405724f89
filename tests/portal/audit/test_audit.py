"""Staff actions are written to an audit log that staff (and only staff) can read.

Staff act through the real server: the staff pages and the admin's actions.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from portal.campaigns.services import campaign_create
from portal.community.models import Announcement
from portal.machines.models import MachineToken
from portal.machines.services import token_create
from tests.portal.live_http import LiveBrowser, form_errors

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_actions_are_audited_and_readable_by_staff_only(asgi_server, staff, alice, cartpole_campaign):
    from portal.audit.models import AuditEntry

    draft = campaign_create(slug="audit-draft", name="Audit draft", env_id="CartPole-v1")
    token, _ = token_create(user=alice, campaign=cartpole_campaign, name="noisy-rig")
    MachineToken.objects.filter(pk=token.pk).update(flagged_at=timezone.now())
    browser = LiveBrowser(asgi_server.url)
    browser.login_as(staff)
    browser.get("/staff/")

    slug = cartpole_campaign.slug
    for path, data in [
        (f"/staff/campaigns/{draft.slug}/launch/", {}),
        (f"/staff/campaigns/{slug}/pause/", {}),
        (f"/staff/campaigns/{slug}/resume/", {}),
        (f"/staff/campaigns/{slug}/visibility/", {"visibility": "unlisted"}),
        (f"/staff/campaigns/{draft.slug}/stop/", {}),
        ("/staff/announcements/", {"title": "Server moves tonight", "body": "", "published": "on"}),
        (f"/staff/machines/{token.pk}/unflag/", {}),
        ("/admin/machines/machinetoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}),
    ]:
        page = browser.post(path, data)
        assert page.status == 200, (path, page.status, form_errors(page.text)[:500])
    announcement = Announcement.objects.get(title="Server moves tonight")
    browser.post(f"/staff/announcements/{announcement.pk}/delete/", {})

    entries = list(AuditEntry.objects.order_by("created", "pk").values_list("action", "target", "actor__username"))
    assert [action for action, _, _ in entries] == [
        "launch", "pause", "resume", "visibility", "stop", "announcement", "unflag", "revoke", "announcement",
    ]  # fmt: skip
    assert all(actor == "admin" for _, _, actor in entries)
    assert entries[0][1] == "campaign audit-draft" and entries[6][1] == entries[7][1]

    log = form_errors(browser.get("/staff/audit/").text)
    for words in ("launch", "campaign audit-draft", "unlisted", "Server moves tonight", "revoke", "noisy-rig"):
        assert words in log, words
    assert "/staff/audit/" in browser.get("/staff/").text  # reachable from the staff pages

    volunteer = LiveBrowser(asgi_server.url)
    volunteer.login_as(alice)
    page = volunteer.get("/staff/audit/")
    assert page.path != "/staff/audit/" and "campaign audit-draft" not in page.text


def test_admin_campaign_actions_are_audited(asgi_server, staff, cartpole_campaign):
    from portal.audit.models import AuditEntry

    browser = LiveBrowser(asgi_server.url)
    browser.login_as(staff)
    browser.get("/admin/campaigns/campaign/")
    browser.post("/admin/campaigns/campaign/", {"action": "pause_campaigns", "_selected_action": [cartpole_campaign.pk]})
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.actor.username) == ("pause", f"campaign {cartpole_campaign.slug}", "admin")
