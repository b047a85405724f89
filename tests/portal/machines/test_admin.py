"""Machine token admin: the hash hidden, revoking and unflagging as actions."""

from __future__ import annotations

import pytest

from portal.machines.models import MachineToken
from portal.machines.services import token_authenticate, token_create
from tests.portal.campaigns.test_admin import page

pytestmark = pytest.mark.django_db


def test_machine_token_admin_hides_the_hash_and_revokes(staff_client, alice, cartpole_campaign):
    token, plain = token_create(user=alice, campaign=cartpole_campaign, name="pc")
    text = page(staff_client.get(f"/admin/machines/machinetoken/{token.pk}/change/"))
    assert token.key_hash not in text and "key_hash" not in text
    assert staff_client.get("/admin/machines/machinetoken/add/").status_code == 403

    response = staff_client.post(
        "/admin/machines/machinetoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "Revoked 1 token(s)." in page(response)
    assert MachineToken.objects.get(pk=token.pk).revoked_at is not None
    assert token_authenticate(raw=plain) is None


def test_flagged_machines_are_listed_for_staff_and_can_be_unflagged(
    staff_client, alice, cartpole_campaign, redis_client
):
    from django.utils import timezone

    from trainer.keys import CampaignKeys

    token, _ = token_create(user=alice, campaign=cartpole_campaign, name="noisy")
    MachineToken.objects.filter(pk=token.pk).update(flagged_at=timezone.now(), rejections=77)
    redis_client.hset(CampaignKeys(cartpole_campaign.id).flagged, token.pk, 1)
    listing = page(staff_client.get("/admin/machines/machinetoken/?flagged=yes"))
    assert "noisy" in listing and "77" in listing

    response = staff_client.post(
        "/admin/machines/machinetoken/",
        {"action": "unflag_tokens", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "Unflagged 1 token(s)." in page(response)
    assert MachineToken.objects.get(pk=token.pk).flagged_at is None
    assert not redis_client.hexists(CampaignKeys(cartpole_campaign.id).flagged, token.pk)
