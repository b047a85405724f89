"""Volunteer pages, teams, credit on the boards, moderation and the volunteer's own data (real DB and Redis)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.campaigns.models import Campaign
from portal.leaderboards import services as board_services
from portal.leaderboards.models import Contribution
from portal.machines.services import token_create
from portal.volunteers import services
from portal.volunteers.models import Team
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db


@pytest.fixture
def game_campaign(db):
    return Campaign.objects.create(
        slug="iudex-real", name="Iudex (real game)", env_id="SoulsGymIudex-v0", status=Campaign.Status.RUNNING
    )


@pytest.fixture
def contributions(alice, bob, cartpole_campaign, game_campaign):
    """alice: an hour of the real game (36,000 steps); bob: 10 million CartPole steps (about 33 min)."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    Contribution.objects.create(
        campaign=game_campaign, user=alice, hour=hour, samples=36_000, episodes=12, wins=3
    )
    Contribution.objects.create(
        campaign=cartpole_campaign, user=bob, hour=hour, samples=10_000_000, episodes=9000
    )
    token_create(user=alice, campaign=game_campaign, name="gaming-pc")
    token_create(user=alice, campaign=cartpole_campaign, name="laptop")


def test_an_hour_of_the_game_ranks_above_millions_of_cartpole_steps(client, contributions):
    page = client.get(reverse("leaderboard"))
    text = page.content.decode()
    assert text.index("/volunteers/alice/") < text.index("/volunteers/bob/")
    assert "credit = accepted steps × seconds per step" in text
    board = client.get(reverse("api:leaderboard-global")).json()
    assert [(e["username"], e["credit"]) for e in board["entries"]] == [("alice", 3600.0), ("bob", 2000.0)]


def test_public_page_shows_contributions_machines_badges_and_rank(client, contributions):
    page = client.get("/volunteers/alice/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Iudex (real game)" in text and "36,000" in text
    assert 'id="machines">2<' in text and "gaming-pc" not in text  # a count, never names or tokens
    assert "One hour" in text and "Top 1%" in text and "#1" in text
    data = client.get("/api/volunteers/alice/").json()
    assert data["rank"] == 1 and data["machines"] == 2
    assert data["campaigns"][0] == {
        "slug": "iudex-real", "name": "Iudex (real game)", "env_id": "SoulsGymIudex-v0",
        "steps": 36_000, "episodes": 12, "wins": 3, "credit": 3600.0,
    }  # fmt: skip


def test_a_hidden_page_is_gone_for_others_and_nameless_on_boards(client, alice, contributions):
    client.force_login(alice)
    client.post(reverse("accounts:visibility"), {"hidden": "1"})
    assert client.get("/volunteers/alice/").status_code == 200  # its owner still sees it
    assert "Only you see this page" in client.get("/volunteers/alice/").content.decode()
    client.logout()
    assert client.get("/volunteers/alice/").status_code == 404
    assert client.get("/api/volunteers/alice/").status_code == 404
    text = client.get(reverse("leaderboard")).content.decode()
    assert "hidden volunteer" in text and "/volunteers/alice/" not in text
    assert [v["name"] for v in client.get("/api/credit/").json()["volunteers"]] == ["bob"]


def test_teams_create_join_leave_and_keep_their_members_credit(
    client, alice, bob, cartpole_campaign, redis_client
):
    client.force_login(alice)
    page = client.post(
        reverse("volunteers:team-create"), {"name": "  Ashen   Ones ", "description": "we roll"}
    )
    assert page.status_code == 302 and page["Location"] == "/teams/ashen-ones/"
    refused = client.post(reverse("volunteers:team-create"), {"name": "ashen ones"}, follow=True)
    assert "There is already a team called" in refused.content.decode()
    client.force_login(bob)
    client.post("/teams/ashen-ones/join/")
    machine, _ = token_create(user=alice, campaign=cartpole_campaign, name="pc")
    redis_client.hset(CampaignKeys(cartpole_campaign.id).machine_samples, str(machine.pk), 5_000_000)
    board_services.contributions_rollup(campaign=cartpole_campaign)
    client.post(reverse("volunteers:team-leave"))  # bob leaves; alice's credit stays with the team

    team = client.get("/api/teams/ashen-ones/").json()
    assert team["credit"] == 1000.0 and [m["name"] for m in team["members"]] == ["alice"]
    for period in ("all", "7d", "24h"):
        entries = client.get(f"/api/teams/?period={period}").json()["entries"]
        assert [(e["name"], e["credit"], e["members"]) for e in entries] == [("Ashen Ones", 1000.0, 1)]
    assert "Ashen Ones" in client.get("/teams/?period=24h").content.decode()
    old = timezone.now() - timedelta(days=3)
    Contribution.objects.filter(team__slug="ashen-ones").update(hour=old)
    assert client.get("/api/teams/?period=24h").json()["entries"] == []
    assert client.get("/api/teams/?period=week").status_code == 400


def test_staff_hide_and_rename_names_in_the_audit_log(client, staff, alice, contributions):
    team = services.team_create(founder=alice, name="Rude Name")
    services.user_name_hide(actor=staff, user=alice)
    services.team_rename(actor=staff, team=team, new_name="Polite Name")
    services.user_rename(actor=staff, user=alice, new_username="alice2")
    assert client.get("/volunteers/alice2/").status_code == 404
    assert "hidden volunteer" in client.get(reverse("leaderboard")).content.decode()
    assert client.get("/teams/polite-name/").status_code == 200
    services.team_name_hide(actor=staff, team=Team.objects.get(slug="polite-name"))
    assert client.get("/teams/polite-name/").status_code == 404
    log = list(AuditEntry.objects.order_by("pk").values_list("action", "target", "detail"))
    assert log == [
        ("hide_name", "user alice", "hidden"),
        ("rename", "team Polite Name", "was Rude Name"),
        ("rename", "user alice2", "was alice"),
        ("hide_name", "team Polite Name", "hidden"),
    ]


def test_export_then_delete_keeps_the_contributions_anonymised(client, alice, contributions):
    client.force_login(alice)
    export = client.get(reverse("accounts:export"))
    assert export["Content-Disposition"].startswith("attachment")
    data = json.loads(export.content)
    assert data["account"]["email"] == "alice@example.com"
    assert {m["name"] for m in data["machines"]} == {"gaming-pc", "laptop"}
    assert "token_hash" not in export.content.decode() and data["contributions"][0]["steps"] == 36_000
    refused = client.post(reverse("accounts:delete"), {"confirm": "not-alice"})
    assert refused.status_code == 400
    client.post(reverse("accounts:delete"), {"confirm": "alice"})
    assert not type(alice).objects.filter(username="alice").exists()
    assert Contribution.objects.get(samples=36_000).user is None
    assert client.get("/api/credit/").json()["deleted_volunteers_credit"] == 3600.0
    assert client.get("/volunteers/alice/").status_code == 404


def test_voided_data_earns_nothing(client, alice, cartpole_campaign, redis_client):
    machine, _ = token_create(user=alice, campaign=cartpole_campaign, name="pc")
    samples_key = CampaignKeys(cartpole_campaign.id).machine_samples
    redis_client.hset(samples_key, str(machine.pk), 5_000_000)
    board_services.contributions_rollup(campaign=cartpole_campaign)
    # Staff void 4 million of its steps: the counter drops, and so does the credit already rolled up.
    redis_client.hset(samples_key, str(machine.pk), 1_000_000)
    board_services.contributions_void(token=machine, samples=4_000_000)
    board_services.contributions_rollup(campaign=cartpole_campaign)  # no "reset" re-credited
    assert client.get("/api/volunteers/alice/").json()["credit"] == 200.0


def test_staff_moderate_names_from_the_admin(staff_client, alice):
    team = services.team_create(founder=alice, name="Rude Name")
    assert staff_client.get("/admin/volunteers/team/").status_code == 200
    staff_client.post(
        "/admin/volunteers/team/", {"action": "hide_names", "_selected_action": [team.pk]}, follow=True
    )
    profile = services.profile_get_or_create(user=alice)
    staff_client.post(
        "/admin/volunteers/profile/", {"action": "hide_names", "_selected_action": [profile.pk]}, follow=True
    )
    staff_client.post(
        f"/admin/volunteers/team/{team.pk}/change/",
        {"name": "Nice Name", "description": "", "name_hidden": "on"},
    )
    assert Team.objects.get(pk=team.pk).name == "Nice Name"
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "target")) == [
        ("hide_name", "team Rude Name"),
        ("hide_name", "user alice"),
        ("rename", "team Nice Name"),
    ]
