"""Learners never starve the periodic tasks: six running campaigns on `make run`'s default settings.

`manage.py runplatform` (what `make run` starts) runs on the test database and Redis with its
default worker threads (4): four campaigns get a learner, each holding a thread for as long as it
runs; the other two wait. Beat's tasks must still run (stats keep syncing from Redis), and each
campaign is either trained or says "waiting for a learner" on its page and on the staff dashboard.
The wait before saying so is 60 s by default; SOULSAI_LEARNER_WAIT_SECONDS shortens it here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest

from harness import ROOT, free_port, wait_for
from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch
from tests.conftest import process_env
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RUNNING = 6
WAIT_SECONDS = 5


def _page(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_six_running_campaigns_keep_their_stats_syncing_and_each_is_trained_or_visibly_waiting(
    tmp_path, redis_client, client, django_user_model, settings
):
    settings.SOULSAI_LEARNER_WAIT_SECONDS = WAIT_SECONDS  # for the staff dashboard rendered here
    client.force_login(django_user_model.objects.create_superuser(username="staffer", password="x-y-z-w-1"))
    port = free_port()
    env = process_env()
    env.update(SOULSAI_VAR_DIR=str(tmp_path / "var"), PORT=str(port), DEMO_CLIENTS="0", ARENA_CLIENTS="0",
               SOULSAI_LEARNER_WAIT_SECONDS=str(WAIT_SECONDS))  # fmt: skip
    env.pop("CELERY_CONCURRENCY", None)  # the default number of learner threads
    log_path = tmp_path / "platform.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "runplatform"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def alive() -> None:
            assert proc.poll() is None, log_path.read_text()[-5000:]

        # runplatform adds its two demo campaigns (running); four more make six.
        demos = Campaign.objects.filter(slug__in=["cartpole-demo", "iudex-arena-demo"], status="running")
        wait_for(lambda: alive() or demos.count() == 2, 120, "the demo campaigns to run", interval=0.5)
        for i in range(RUNNING - Campaign.objects.running().count()):
            campaign_launch(campaign=campaign_create(slug=f"busy-{i}", name=f"Busy {i}", env_id="CartPole-v1"))
        campaigns = list(Campaign.objects.running())
        assert len(campaigns) == RUNNING

        def trained(c: Campaign) -> bool:
            return bool(redis_client.exists(CampaignKeys(c.id).lease))

        wait_for(lambda: alive() or sum(trained(c) for c in campaigns) == 4, 180, "four learners to start",
                 interval=0.5)  # fmt: skip

        # With every learner thread taken, beat's tasks still run: figures written into Redis reach the rows.
        for n, c in enumerate(campaigns, start=1):
            redis_client.hset(CampaignKeys(c.id).stats, mapping={"samples": 1000 * n, "episodes": n})

        def synced() -> bool:
            alive()
            rows = dict(Campaign.objects.filter(pk__in=[c.pk for c in campaigns]).values_list("pk", "samples_total"))
            return all(rows[c.pk] == 1000 * n for n, c in enumerate(campaigns, start=1))

        wait_for(synced, 60, "the stats of every campaign to sync while four learners run", interval=0.5)

        def neither_trained_nor_waiting() -> list[str]:
            alive()
            return [c.slug for c in campaigns
                    if not trained(c) and "waiting for a learner" not in _page(f"{base}/campaigns/{c.slug}/")]  # fmt: skip

        wait_for(lambda: not neither_trained_nor_waiting(), 90, "every campaign to be trained or visibly waiting",
                 interval=1)  # fmt: skip
        waiting = [c for c in campaigns if not trained(c)]
        assert len(waiting) == RUNNING - 4
        dashboard = client.get("/staff/").content.decode()
        assert dashboard.count("waiting for a learner") >= len(waiting)
        # One queued learner per waiting campaign, however long it waits: the queue does not grow.
        assert redis_client.llen("soulsai:celery:learner") <= len(waiting)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
    assert code == 0, log_path.read_text()[-3000:]
