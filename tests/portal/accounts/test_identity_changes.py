"""Identity changes act at once: deactivating or deleting a user, or deleting a token, is a revocation.

Each test holds a real client connection (a websocket to the real ASGI server), does the change the
way staff or code would, and sees the connection closed with the auth error, its next chunk refused
and the token refused when it comes back.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from websockets.exceptions import ConnectionClosed

from client_app import protocol as P
from portal.machines.models import MachineToken
from tests.portal.relay.test_relay import expect_close, make_chunk, open_session, send, ws_connect
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


def assert_dropped_at_once(ws, redis_client, campaign, token_id: int) -> None:
    """After the change: the next chunk is not acked, the auth error comes, the socket closes 4401."""
    try:
        ws.send(P.pack(make_chunk("after-the-change").to_message()))
    except ConnectionClosed:
        pass  # the notice was quicker than this chunk: the socket is already closing
    error = P.unpack(ws.recv(timeout=10))
    assert error["type"] == P.ERROR and error["code"] == P.R_AUTH, error
    assert expect_close(ws) == P.CLOSE_AUTH
    keys = CampaignKeys(campaign.id)
    assert redis_client.xlen(keys.stream) == 1  # only the chunk from before the change
    # Even a process that missed the notice refuses it: the store script checks this set.
    assert redis_client.sismember(keys.revoked, token_id)


def assert_refused_on_return(asgi_server, raw: str) -> None:
    with ws_connect(asgi_server, raw) as ws:  # refused before its hello
        assert P.unpack(ws.recv(timeout=10))["code"] == P.R_AUTH
        assert expect_close(ws) == P.CLOSE_AUTH


def _change_form(user) -> dict:
    """The admin's user change form as a browser posts it, with ``is_active`` unticked."""
    joined = user.date_joined
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    return data  # is_active, is_staff and is_superuser absent: unticked


def test_deactivating_a_user_in_the_admin_drops_their_machines(
    asgi_server, campaign, token, volunteer, staff_client, redis_client
):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        response = staff_client.post(f"/admin/auth/user/{volunteer.pk}/change/", _change_form(volunteer))
        assert response.status_code == 302, response.content.decode()[:2000]
        assert not get_user_model().objects.get(pk=volunteer.pk).is_active
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert MachineToken.objects.get(pk=row.pk).revoked_at is not None
    assert_refused_on_return(asgi_server, raw)


def test_deactivating_users_with_the_admin_action_drops_their_machines(
    asgi_server, campaign, token, volunteer, staff_client, redis_client
):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        response = staff_client.post(
            "/admin/auth/user/", {"action": "deactivate_users", "_selected_action": [volunteer.pk]}, follow=True
        )
        assert "Deactivated 1 user(s)" in response.content.decode()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)


def test_deleting_a_user_in_the_admin_drops_their_machines(
    asgi_server, campaign, token, volunteer, staff_client, redis_client
):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        response = staff_client.post(f"/admin/auth/user/{volunteer.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not get_user_model().objects.filter(pk=volunteer.pk).exists()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)


def test_deleting_users_with_the_admins_bulk_delete_drops_their_machines(
    asgi_server, campaign, token, volunteer, staff_client, redis_client
):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        staff_client.post(
            "/admin/auth/user/",
            {"action": "delete_selected", "_selected_action": [volunteer.pk], "post": "yes"},
        )
        assert not get_user_model().objects.filter(pk=volunteer.pk).exists()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)


def test_deactivating_a_user_in_code_drops_their_machines(asgi_server, campaign, token, volunteer, redis_client):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        volunteer.is_active = False
        volunteer.save()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert MachineToken.objects.get(pk=row.pk).revoked_at is not None
    assert_refused_on_return(asgi_server, raw)


def test_deleting_a_user_in_code_drops_their_machines(asgi_server, campaign, token, volunteer, redis_client):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        volunteer.delete()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)


def test_deleting_a_token_in_code_drops_its_machine(asgi_server, campaign, token, redis_client):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        MachineToken.objects.get(pk=row.pk).delete()
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)


def test_the_admin_offers_revoke_not_delete_for_machine_tokens(staff_client, token):
    row, _ = token
    listing = staff_client.get("/admin/machines/machinetoken/").content.decode()
    assert "revoke_tokens" in listing and "delete_selected" not in listing
    assert staff_client.get(f"/admin/machines/machinetoken/{row.pk}/delete/").status_code == 403
    change = staff_client.get(f"/admin/machines/machinetoken/{row.pk}/change/").content.decode()
    assert "deletelink" not in change
    assert MachineToken.objects.filter(pk=row.pk).exists()


def test_deleting_a_campaign_in_the_admin_drops_its_machines(asgi_server, campaign, token, staff_client, redis_client):
    row, raw = token
    with open_session(asgi_server, raw) as (ws, _):
        assert send(ws, make_chunk("before").to_message())["type"] == P.ACK
        response = staff_client.post(f"/admin/campaigns/campaign/{campaign.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert_dropped_at_once(ws, redis_client, campaign, row.pk)
    assert_refused_on_return(asgi_server, raw)
