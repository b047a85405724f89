"""Campaign pages as a visitor sees them: the list, drafts, the live view (figures rendered server
side, charts wired), boss fights' win rates and HP left, and the agent history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.campaigns.models import Campaign, ModelVersion

pytestmark = pytest.mark.django_db


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


def test_campaign_page_renders_figures_server_side_and_wires_the_live_charts(client, cartpole_campaign):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(
        samples_total=98765, model_version=12, clients_active=4
    )
    html = client.get("/campaigns/cartpole-test/").content.decode()
    assert "98,765" in html and "v12" in html
    assert 'data-ws="/ws/campaigns/cartpole-test/"' in html
    assert "/api/campaigns/cartpole-test/stats/" in html
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html and "cdn" not in html.lower()
    assert "<noscript>" in html


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


def test_a_boss_fight_campaign_shows_win_rates_next_to_returns(client):
    from portal.campaigns.services import campaign_create, campaign_launch

    arena = campaign_launch(campaign=campaign_create(slug="arena", name="Arena", env_id="soulsai/IudexArena-v0"))
    Campaign.objects.filter(pk=arena.pk).update(
        mean_return_recent=0.42, win_rate_recent=0.25, wins_total=37, eval_return=0.9, eval_win_rate=0.6
    )
    html = client.get("/campaigns/arena/").content.decode()
    assert "Boss fight" in html and "Recent win rate" in html and "25%" in html and "60%" in html
    assert "37" in html
    data = client.get("/api/campaigns/arena/").json()
    assert (data["win_rate_recent"], data["wins_total"], data["eval_win_rate"]) == (0.25, 37, 0.6)
    # Its figures are against Iudex at full strength (the arena's default), and the page and API say so.
    assert "Boss strength" in html and "full strength, as in the game" in html and data["boss_strength"] == 1.0
    easy = campaign_launch(campaign=campaign_create(
        slug="easy", name="Easy", env_id="soulsai/IudexArena-v0", env_kwargs={"boss_damage": 0.4}
    ))  # fmt: skip
    assert "40% of his damage" in client.get(easy.get_absolute_url()).content.decode()
    assert client.get("/api/campaigns/easy/").json()["boss_strength"] == 0.4
    # CartPole is no boss fight: no win rates there.
    other = campaign_launch(campaign=campaign_create(slug="pole", name="Pole", env_id="CartPole-v1"))
    assert "Recent win rate" not in client.get(other.get_absolute_url()).content.decode()
    assert "Boss strength" not in client.get(other.get_absolute_url()).content.decode()
    assert client.get("/api/campaigns/pole/").json()["boss_strength"] is None


def test_a_boss_fight_campaign_shows_hp_left_next_to_its_win_rates(client):
    from portal.campaigns.services import campaign_create, campaign_launch

    arena = campaign_launch(campaign=campaign_create(slug="arena", name="Arena", env_id="soulsai/IudexArena-v0"))
    figures = {
        "win_rate_recent": 0.25, "boss_hp_left_recent": 0.3125, "player_hp_left_recent": 0.08,
        "eval_version": 20, "eval_win_rate": 0.6, "eval_boss_hp_left": 0.27, "eval_player_hp_left": 0.11,
    }  # fmt: skip
    Campaign.objects.filter(pk=arena.pk).update(**figures)
    html = client.get("/campaigns/arena/").content.decode()
    assert "Recent boss HP left" in html and "Evaluation player HP left" in html
    for name, shown in (
        ("boss_hp_left_recent", "31%"),
        ("player_hp_left_recent", "8%"),
        ("eval_boss_hp_left", "27%"),
        ("eval_player_hp_left", "11%"),
    ):
        assert f'data-figure="{name}">{shown}</dd>' in html, name  # the live page updates it by name
    assert {k: v for k, v in client.get("/api/campaigns/arena/").json().items() if k in figures} == figures
    live = client.get("/api/campaigns/arena/stats/").json()["figures"]
    assert (live["boss_hp_left_recent"], live["eval_player_hp_left"]) == (0.3125, 0.11)

    # CartPole is no boss fight: no HP left on its page, and none in its JSON.
    other = campaign_launch(campaign=campaign_create(slug="pole", name="Pole", env_id="CartPole-v1"))
    assert "HP left" not in client.get(other.get_absolute_url()).content.decode()
    data = client.get("/api/campaigns/pole/").json()
    hp = ("boss_hp_left_recent", "player_hp_left_recent", "eval_boss_hp_left", "eval_player_hp_left")
    assert [data[name] for name in hp] == [None] * 4


def test_agent_history_lists_every_checkpoint_with_its_evaluation(client, cartpole_campaign, publish):
    publish(cartpole_campaign, 2, is_checkpoint=True, samples_total=100)
    publish(cartpole_campaign, 3)  # not a checkpoint: not in the history
    publish(cartpole_campaign, 4, is_checkpoint=True, samples_total=200)
    ModelVersion.objects.filter(version=4).update(eval_return=150.5, eval_episodes=10, eval_wins=None)
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(eval_version=4)  # v4's evaluation is complete
    response = client.get("/campaigns/cartpole-test/history/")
    html = response.content.decode()
    assert [m.version for m in response.context["checkpoints"]] == [4, 2]
    v4 = ModelVersion.objects.get(version=4)
    assert v4.sha256 in html and "/campaigns/cartpole-test/models/4.safetensors" in html
    assert "150.50" in html and "models/3.safetensors" not in html
    assert [p["version"] for p in response.context["chart"]] == [2, 4]
    assert 'id="history-data"' in html


def test_history_shows_win_rates_in_boss_fights(client, cartpole_campaign, publish):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(env_id="SoulsGymIudex-v0", eval_version=2)
    publish(cartpole_campaign, 2, is_checkpoint=True)
    ModelVersion.objects.filter(version=2).update(eval_return=0.3, eval_episodes=8, eval_wins=2)
    html = client.get("/campaigns/cartpole-test/history/").content.decode()
    assert "25%" in html and "(2/8)" in html


def test_an_evaluation_in_progress_shows_no_win_rate_yet(client, cartpole_campaign, publish):
    # The first 9 fights of an evaluation, all lost, read as a collapse: they wait until it is complete.
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(env_id="SoulsGymIudex-v0", eval_version=2)
    publish(cartpole_campaign, 2, is_checkpoint=True)
    publish(cartpole_campaign, 4, is_checkpoint=True)
    ModelVersion.objects.filter(version=2).update(eval_return=0.3, eval_episodes=8, eval_wins=2)
    ModelVersion.objects.filter(version=4).update(eval_return=-0.5, eval_episodes=9, eval_wins=0)
    response = client.get("/campaigns/cartpole-test/history/")
    html = response.content.decode()
    assert "0/9" not in html and "evaluating: 9 fights played so far" in html and "(2/8)" in html
    assert [p["win_rate"] for p in response.context["chart"]] == [0.25, None]


def test_history_shows_hp_left_of_evaluated_checkpoints_in_boss_fights(client, cartpole_campaign, publish):
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(env_id="SoulsGymIudex-v0", eval_version=2)
    publish(cartpole_campaign, 2, is_checkpoint=True)
    publish(cartpole_campaign, 4, is_checkpoint=True)  # not evaluated yet
    ModelVersion.objects.filter(version=2).update(
        eval_return=0.3, eval_episodes=8, eval_wins=2, eval_boss_hp_left=0.4375, eval_player_hp_left=0.0625
    )
    response = client.get("/campaigns/cartpole-test/history/")
    html = response.content.decode()
    assert "HP left <span class=\"muted small\">boss / player</span></th>" in html
    v4, v2 = html.split("<td>v4</td>")[1].split("<td>v2</td>")
    assert ">44% / 6%<" in v2  # 0.4375 and 0.0625, rounded
    assert "%" not in v4.split("</tr>")[0]
    listed = client.get("/api/campaigns/cartpole-test/checkpoints/").json()["checkpoints"]
    api = {c["version"]: c for c in listed}
    assert (api[2]["eval_boss_hp_left"], api[2]["eval_player_hp_left"]) == (0.4375, 0.0625)
    assert api[4]["eval_boss_hp_left"] is None
    # CartPole's history has no HP columns.
    Campaign.objects.filter(pk=cartpole_campaign.pk).update(env_id="CartPole-v1")
    assert "HP left" not in client.get("/campaigns/cartpole-test/history/").content.decode()
