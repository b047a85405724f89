"""The staff dashboard says which host trains each running campaign, on which device and how recently
it was heard from; which campaigns wait for a learner; and why a learner could not start. Each state
is made by the real thing (a learner run, the supervisor's watch) and read through the real page."""

from __future__ import annotations

import re
import socket

import pytest
import torch

from portal.training.runner import learner_run
from portal.training.services import learner_watch
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db


def learner_cell(staff_client, campaign) -> str:
    html = staff_client.get("/staff/").content.decode()
    row = re.search(rf'<tr data-campaign="{campaign.slug}">(.*?)</tr>', html, re.S)
    assert row, html
    cell = re.search(r"<td[^>]*data-learner>(.*?)</td>", row.group(1), re.S)
    assert cell, row.group(1)
    return " ".join(cell.group(1).split())


def test_a_running_learner_shows_its_host_device_and_heartbeat(staff_client, cartpole_campaign):
    assert learner_run(campaign_id=cartpole_campaign.id, max_seconds=0.5) == "time_limit"
    cell = learner_cell(staff_client, cartpole_campaign)
    device = "cpu" if not torch.cuda.is_available() else "cuda ("
    assert f"<code>{socket.gethostname()}</code>" in cell
    assert f"<span data-learner-device>{device}" in cell
    heartbeat = re.search(r"heartbeat <span data-learner-heartbeat>(\d+) s</span> ago", cell)
    assert heartbeat and int(heartbeat.group(1)) < 30, cell
    assert "waiting for a learner" not in cell and "failed" not in cell


def test_a_campaign_without_a_learner_is_waiting_for_one(staff_client, cartpole_campaign, settings):
    settings.SOULSAI_LEARNER_WAIT_SECONDS = 0
    learner_watch(campaign_id=cartpole_campaign.id, running=True)  # what beat's supervisor notes
    cell = learner_cell(staff_client, cartpole_campaign)
    assert "data-learner-waiting>waiting for a learner</span>" in cell


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA: the learner starts")
def test_a_learner_that_could_not_take_its_device_shows_why(staff_client, cartpole_campaign, settings):
    settings.SOULSAI_DEVICE = "cuda"
    assert learner_run(campaign_id=cartpole_campaign.id) == "device_unavailable"
    cell = learner_cell(staff_client, cartpole_campaign)
    assert "learner failed to start" in cell
    assert f"on <code>{socket.gethostname()}</code>: SOULSAI_DEVICE=cuda but this host has no CUDA device" in cell


def test_campaigns_that_are_not_running_show_no_learner(staff_client, cartpole_campaign, redis_client):
    from portal.campaigns.services import campaign_pause

    redis_client.hset(CampaignKeys(cartpole_campaign.id).learner, mapping={"host": "gone", "heartbeat": 1})
    paused = campaign_pause(campaign=cartpole_campaign)
    assert learner_cell(staff_client, paused) == "—"
