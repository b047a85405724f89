"""Staff pages: launch a campaign from the form, steer it, announcements, flagged machines."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.community.models import Announcement, CampaignListing
from portal.machines.models import MachineToken
from portal.machines.services import token_create

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Lunar warm-up", "slug": "lunar", "description": "", "env_id": "CartPole-v1", "algorithm": "dqn",
    "hyperparams": '{"batch_size": 32}', "chunk_steps": "64", "min_client_version": "0.1.0",
    "max_policy_lag": "0", "visibility": "public", "launch_now": "on",
}  # fmt: skip


def test_staff_pages_are_for_staff_only(client, alice_client):
    assert client.get("/staff/").status_code == 302
    assert alice_client.get("/staff/campaigns/new/").status_code == 302  # to the admin login


def test_launching_from_the_form_creates_and_starts_the_campaign(staff_client):
    response = staff_client.post("/staff/campaigns/new/", FORM)
    assert response.status_code == 302 and response["Location"] == "/campaigns/lunar/"
    campaign = Campaign.objects.get(slug="lunar")
    assert campaign.status == Campaign.Status.RUNNING and campaign.hyperparams == {"batch_size": 32}
    assert campaign.chunk_steps == 64 and campaign.observation_space
    assert "Launched" in staff_client.get("/campaigns/lunar/").content.decode()


def test_the_form_says_what_is_wrong(staff_client, cartpole_campaign):
    cases = {
        "hyperparams": ("{batch_size: 32}", "Not valid JSON"),
        "slug": ("cartpole-test", "exists already"),
        "min_client_version": ("latest", "a version like 0.1.0"),
    }
    for field, (value, message) in cases.items():
        response = staff_client.post("/staff/campaigns/new/", {**FORM, field: value})
        assert response.status_code == 400, field
        assert message in " ".join(response.context["form"].errors[field]), field
        assert "The campaign was not created" in response.content.decode()
    response = staff_client.post("/staff/campaigns/new/", {**FORM, "hyperparams": '{"no_such_knob": 1}'})
    assert response.status_code == 400 and response.context["form"].errors["hyperparams"]
    response = staff_client.post("/staff/campaigns/new/", {**FORM, "env_id": "NoSuchEnv-v9"})
    assert response.status_code == 400 and "NoSuchEnv-v9" in " ".join(
        response.context["form"].errors["env_id"]
    )
    assert not Campaign.objects.filter(slug="lunar").exists()


def test_every_hyperparameter_problem_is_reported_at_once(staff_client):
    bad = '{"lerning_starts": 500, "batch_size": "big", "gamma": 2}'
    response = staff_client.post("/staff/campaigns/new/", {**FORM, "hyperparams": bad, "slug": "cartpole-test"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["hyperparams"] == [
        "Unknown hyperparameter “lerning_starts”: did you mean “learning_starts”?",
        "batch_size must be a whole number, got 'big'",
        "gamma must be in (0, 1]",
    ]
    assert "did you mean" in response.content.decode()
    assert not Campaign.objects.filter(slug="lunar").exists()


def test_allowed_but_surely_wrong_values_need_a_confirmation(staff_client):
    odd = {**FORM, "hyperparams": '{"lr": 0.9, "eval_every_samples": 0}'}
    response = staff_client.post("/staff/campaigns/new/", odd)
    html = response.content.decode()
    assert response.status_code == 400 and "lr 0.9 is allowed but almost surely too large" in html
    assert "Evaluation is off" in html and not Campaign.objects.filter(slug="lunar").exists()
    response = staff_client.post("/staff/campaigns/new/", {**odd, "confirm_warnings": "on"})
    assert response.status_code == 302
    assert Campaign.objects.get(slug="lunar").hyperparams == {"lr": 0.9, "eval_every_samples": 0}


def test_the_form_lists_every_hyperparameter_with_its_default_per_environment(staff_client):
    from portal.staff.hyperparams import defaults

    table = staff_client.get("/staff/campaigns/new/").context["hyperparam_defaults"]
    arena = {row["name"]: row["default"] for row in table["dqn"]["soulsai/IudexArena-v0"]}
    pole = {row["name"]: row["default"] for row in table["dqn"]["CartPole-v1"]}
    assert arena["lr"] == 5e-4 and arena["normalize_obs"] is True and pole["normalize_obs"] is False
    assert {row["name"] for row in defaults("ppo", "CartPole-v1")} >= {"rollout_steps", "gae_lambda", "lr"}
    assert next(r for r in defaults("dqn", "CartPole-v1") if r["name"] == "gamma")["help"] == "discount factor"
    # Each field's kind is what the form's script reads and writes it as: a name such as "qr" is text
    # (the launch form broke on "distributional", which it took for a list).
    python_type = {"bool": bool, "int": int, "float": float, "str": str, "list": list}
    for algorithm, envs in table.items():
        for rows in envs.values():
            for row in rows:
                assert isinstance(row["default"], python_type[row["kind"]]), (algorithm, row)


def test_a_draft_and_an_unlisted_campaign(staff_client):
    client = Client()  # a visitor (``client`` is the staff member's)
    staff_client.post("/staff/campaigns/new/", {**FORM, "launch_now": "", "visibility": "unlisted"})
    campaign = Campaign.objects.get(slug="lunar")
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.listing.visibility == CampaignListing.Visibility.UNLISTED
    staff_client.post("/staff/campaigns/lunar/launch/")
    assert "Lunar warm-up" not in client.get("/campaigns/").content.decode()  # unlisted
    assert client.get("/campaigns/lunar/").status_code == 200  # but reachable by its link
    assert client.get("/api/campaigns/").json()["campaigns"] == []
    staff_client.post("/staff/campaigns/lunar/visibility/", {"visibility": "public"})
    assert "Lunar warm-up" in client.get("/campaigns/").content.decode()


def test_pause_resume_stop_buttons_call_the_services(staff_client, cartpole_campaign):
    for action, status in (("pause", "paused"), ("resume", "running"), ("stop", "stopped")):
        response = staff_client.post(f"/staff/campaigns/cartpole-test/{action}/")
        assert response.status_code == 302
        cartpole_campaign.refresh_from_db()
        assert cartpole_campaign.status == status
    response = staff_client.post("/staff/campaigns/cartpole-test/resume/", follow=True)
    assert "cannot resume campaign" in response.content.decode()
    assert staff_client.post("/staff/campaigns/cartpole-test/explode/").status_code == 404


def test_a_pause_reason_reaches_the_campaign_page_and_the_api(staff_client, cartpole_campaign):
    visitor = Client()
    reason = "  Moving the learner to a new GPU;\n back within the hour  "
    staff_client.post("/staff/campaigns/cartpole-test/pause/", {"reason": reason})
    page = visitor.get("/campaigns/cartpole-test/").content.decode()
    assert "Paused by the campaign's staff: Moving the learner to a new GPU; back within the hour" in page
    assert visitor.get("/api/campaigns/cartpole-test/").json()["pause_reason"] == (
        "Moving the learner to a new GPU; back within the hour"
    )
    assert "Moving the learner" in staff_client.get("/staff/").content.decode()
    staff_client.post("/staff/campaigns/cartpole-test/resume/")
    assert visitor.get("/api/campaigns/cartpole-test/").json()["pause_reason"] == ""
    assert "Paused by" not in visitor.get("/campaigns/cartpole-test/").content.decode()
    response = staff_client.post("/staff/campaigns/cartpole-test/pause/", {"reason": "x" * 300}, follow=True)
    assert "keep the reason under 200 characters" in response.content.decode()
    cartpole_campaign.refresh_from_db()
    assert cartpole_campaign.status == Campaign.Status.RUNNING  # refused: nothing changed


def test_announcements_are_written_by_staff_and_shown_at_home(staff_client, staff):
    client = Client()
    response = staff_client.post("/staff/announcements/", {"title": "", "body": "x"})
    assert response.status_code == 400 and response.context["form"].errors["title"]
    staff_client.post(
        "/staff/announcements/", {"title": "Iudex campaign opens", "body": "Join us!", "published": "on"}
    )
    staff_client.post("/staff/announcements/", {"title": "Draft news", "body": ""})  # not published
    home = client.get("/").content.decode()
    assert "Iudex campaign opens" in home and "Join us!" in home and "Draft news" not in home
    item = Announcement.objects.get(title="Iudex campaign opens")
    assert item.author == staff
    staff_client.post(
        f"/staff/announcements/{item.pk}/", {"title": "Iudex opens", "published": "on", "pinned": "on"}
    )
    item.refresh_from_db()
    assert (item.title, item.pinned) == ("Iudex opens", True)
    staff_client.post(f"/staff/announcements/{item.pk}/delete/")
    assert not Announcement.objects.filter(pk=item.pk).exists()


def test_flagged_machines_are_listed_and_unflagged(staff_client, alice, cartpole_campaign, redis_client):
    token, _ = token_create(user=alice, campaign=cartpole_campaign, name="noisy")
    MachineToken.objects.filter(pk=token.pk).update(flagged_at=timezone.now(), rejections=99)
    html = staff_client.get("/staff/machines/flagged/").content.decode()
    assert "noisy" in html and "alice" in html and "99" in html
    staff_client.post(f"/staff/machines/{token.pk}/unflag/")
    token.refresh_from_db()
    assert token.flagged_at is None
    assert "No machine is flagged" in staff_client.get("/staff/machines/flagged/").content.decode()


def test_flagged_machines_show_why_when_and_as_what_and_can_be_revoked(
    staff_client, alice, cartpole_campaign, redis_client
):
    from portal.machines.services import token_authenticate, token_record_client
    from trainer.keys import CampaignKeys

    token, plain = token_create(user=alice, campaign=cartpole_campaign, name="Windows PC 3f2a")
    token_record_client(token_id=token.pk, client_version="0.2.0", reported_name="DESKTOP-7QX\x00")
    MachineToken.objects.filter(pk=token.pk).update(flagged_at=timezone.now(), rejections=12)
    redis_client.hset(CampaignKeys(cartpole_campaign.id).rejection_codes,
                      mapping={f"{token.pk}:shape": 9, f"{token.pk}:not_finite": 3})  # fmt: skip
    html = staff_client.get("/staff/machines/flagged/").content.decode()
    assert "<code>shape</code> ×9, <code>not_finite</code> ×3" in html
    assert "reports itself as “DESKTOP-7QX”" in html and "Last seen" in html and "now" in html
    response = staff_client.post(f"/staff/machines/{token.pk}/revoke/", follow=True)
    assert "Revoked “Windows PC 3f2a” of alice" in response.content.decode()
    assert token_authenticate(raw=plain) is None


def test_environment_errors_speak_to_staff_not_to_volunteers():
    from django.core.exceptions import ValidationError

    from portal.campaigns.services import _for_staff, env_spaces

    with pytest.raises(ValidationError, match=r"its settings \(env_kwargs\) are not ones it takes"):
        env_spaces("CartPole-v1", {"bogus": 1})
    volunteer = "LunarLander-v2 needs extra packages on this machine: pip install 'soulsai-client[box2d]' (x)"
    assert _for_staff(volunteer).startswith("the server's Python lacks this environment's packages")
    assert "update the server first" in _for_staff("this client cannot make it; download the current client")


def test_voiding_a_flagged_machine_takes_back_its_counters_and_credit_and_tells_the_learner(
    staff_client, alice, cartpole_campaign, redis_client
):
    from portal.audit.models import AuditEntry
    from portal.leaderboards.models import Contribution, MachineTally
    from portal.leaderboards.services import contributions_rollup
    from trainer.keys import CampaignKeys

    keys = CampaignKeys(cartpole_campaign.id)
    poisoned, _ = token_create(user=alice, campaign=cartpole_campaign, name="too good")
    honest, _ = token_create(user=alice, campaign=cartpole_campaign, name="honest")
    for token, samples in ((poisoned, 5000), (honest, 700)):
        redis_client.hset(keys.machine_samples, token.pk, samples)
        redis_client.hset(keys.machine_episodes, token.pk, samples // 100)
    contributions_rollup(campaign=cartpole_campaign)
    redis_client.hincrby(keys.machine_samples, poisoned.pk, 300)  # sent after the roll-up: not credited yet
    MachineToken.objects.filter(pk=poisoned.pk).update(flagged_at=timezone.now())

    response = staff_client.post(f"/staff/machines/{poisoned.pk}/void/", follow=True)
    html = response.content.decode()
    assert "Voided “too good” of alice" in html and "5300 samples, 50 episodes" in html and "data-voided" in html
    # Redis: the learner finds the void, the relay refuses the token, its counters start again from 0.
    assert redis_client.hexists(keys.voided, poisoned.pk)
    assert redis_client.sismember(keys.revoked, poisoned.pk)
    assert int(redis_client.hget(keys.machine_samples, poisoned.pk)) == 0
    # The credit: alice keeps only the honest machine's; the next roll-up changes nothing.
    contributions_rollup(campaign=cartpole_campaign)
    assert sum(Contribution.objects.filter(user=alice).values_list("samples", flat=True)) == 700
    assert MachineTally.objects.get(token=poisoned).samples == 0
    entry = AuditEntry.objects.get(action=AuditEntry.Action.VOID)
    assert "too good" in entry.target and "5300 samples" in entry.detail
    poisoned.refresh_from_db()
    assert poisoned.voided_at is not None and poisoned.revoked_at is not None
    assert b"Void data" not in staff_client.get("/staff/machines/flagged/").content  # done once
    # A Redis that lost the void gets it back from the database: the learner keeps dropping its data.
    from portal.campaigns.services import campaign_redis_sync

    redis_client.delete(keys.voided)
    campaign_redis_sync(campaign=cartpole_campaign)
    assert redis_client.hexists(keys.voided, poisoned.pk)


def test_the_roll_up_flags_a_machine_whose_experience_is_odd_against_the_pool_with_the_evidence(
    staff_client, alice, cartpole_campaign, redis_client
):
    import numpy as np

    from client_app.protocol import Chunk
    from portal.campaigns.tasks import stats_sync_campaign
    from trainer.keys import CampaignKeys
    from trainer.machine_stats import MachineStats

    keys = CampaignKeys(cartpole_campaign.id)
    tokens = [token_create(user=alice, campaign=cartpole_campaign, name=f"pc{i}")[0] for i in range(5)]
    stats = MachineStats()  # what the learner adds up from the stream
    for i, token in enumerate(tokens):
        reward = 2.0 if i == 4 else 1.0  # the last one doubles its rewards (within CartPole's bounds)
        for length in [12, 20, 31, 45] * 4:
            stats.add(token.pk, Chunk(
                id="x", model_version=0, obs=np.zeros((length + 1, 4), np.float32),
                actions=np.zeros(length, np.int64), rewards=np.full(length, reward, np.float32),
                terminated=True, episode_return=reward * length, episode_length=length,
            ))  # fmt: skip
    stats.flush(redis_client, keys.machine_stats)
    for token in tokens:
        redis_client.zadd(keys.clients, {str(token.pk): int(timezone.now().timestamp())})
    stats_sync_campaign(campaign=cartpole_campaign)

    flagged = list(MachineToken.objects.flagged().values_list("name", flat=True))
    assert flagged == ["pc4"] and redis_client.hexists(keys.flagged, tokens[4].pk)  # throttled too
    html = staff_client.get("/staff/machines/flagged/").content.decode()
    assert "Odd against the pool (score 47.62 over 16 episodes)" in html
    assert "reward per step 2.0 vs the pool's median 1.0 (47.62 spreads)" in html
