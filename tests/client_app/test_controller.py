"""The window's controller without a window, against the real ASGI server and Redis.

A CartPole campaign, a real machine token, the real relay: start, pause (the game stands still while
the spool drains), resume, stop (the spool stays); and a restart that resends what the server never
acknowledged, every step counted exactly once.
"""

from __future__ import annotations

import pytest

from client_app.controller import (
    Controller,
    StartError,
    boss_name,
    campaign_page,
    check_settings,
    plain_error,
    run_config,
)
from client_app.spool import Spool
from harness import WaitTimeout, wait_for
from tests.conftest import start_asgi

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SLUG = "controller-cartpole"


class Watch:
    """Polls a controller, keeping every log line for the failure message."""

    def __init__(self, controller: Controller):
        self.controller = controller
        self.lines: list[str] = []

    def snap(self):
        self.lines += self.controller.take_lines()
        return self.controller.snapshot()

    def until(self, predicate, timeout: float, what: str):
        """The first snapshot for which ``predicate`` holds; on time-out, fail with the log lines."""

        def matching():
            snap = self.snap()
            return snap if predicate(snap) else None

        try:
            return wait_for(matching, timeout, what, interval=0.1)
        except WaitTimeout:
            snap = self.snap()
            raise AssertionError(
                f"timed out waiting for {what}; last snapshot {snap}\n" + "\n".join(self.lines[-60:])
            ) from None


@pytest.fixture
def volunteer(django_user_model):
    """A running CartPole campaign and a machine token for it: (campaign, token)."""
    from portal.campaigns.services import campaign_create, campaign_launch
    from portal.machines.services import token_create

    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_create(slug=SLUG, name="Controller CartPole", env_id="CartPole-v1")
    campaign = campaign_launch(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="desk")
    return campaign, token


def samples_stored(redis_client, campaign) -> int:
    from trainer.keys import CampaignKeys

    return int(redis_client.hget(CampaignKeys(campaign.id).stats, "samples") or 0)


def spool_files(root):
    return sorted(root.glob("*/*.chunk"))


# ---------------------------------------------------------------------------------------------------
# Pure helpers


def test_settings_are_checked_before_anything_starts():
    with pytest.raises(StartError, match="server's address"):
        check_settings("", "sai_x")
    with pytest.raises(StartError, match="the server address"):
        check_settings("ftp://soulsai.example.org", "sai_x")
    # A bare host[:port] is taken as typed: http for this machine or a private network, else https.
    assert check_settings("soulsai.example.org", "sai_x")[0] == "https://soulsai.example.org"
    assert check_settings("127.0.0.1:8000", "sai_x")[0] == "http://127.0.0.1:8000"
    assert check_settings("192.168.1.20:8000", "sai_x")[0] == "http://192.168.1.20:8000"
    with pytest.raises(StartError, match="token"):
        check_settings("http://127.0.0.1:8000", "  ")
    with pytest.raises(StartError, match="spaces"):
        check_settings("http://127.0.0.1:8000", "sai_ab cd")
    assert check_settings(" http://127.0.0.1:8000 ", " sai_abc\n") == ("http://127.0.0.1:8000", "sai_abc")

    controller = Controller()
    with pytest.raises(StartError):
        controller.start(run_config(server="ftp://x", token="sai_x", machine="m"))
    assert controller.snapshot().state == "idle" and not controller.running


def test_names_links_and_plain_errors():
    assert boss_name({"env_id": "SoulsGymIudex-v0"}) == "Iudex Gundyr"
    assert boss_name({"env_id": "CartPole-v1"}) == "no boss (CartPole-v1)"
    assert campaign_page("http://h:8000", {"url": "/campaigns/x/"}) == "http://h:8000/campaigns/x/"
    assert campaign_page("https://h/base", {"slug": "x"}) == "https://h/base/campaigns/x/"
    assert "does not answer" in plain_error("cannot reach ws://h/: [Errno 111] Connect call failed ('h', 1)")
    assert plain_error("something else") == "something else"


# ---------------------------------------------------------------------------------------------------
# Against the real server


def test_start_pause_resume_stop(asgi_server, volunteer, redis_client, tmp_path):
    campaign, token = volunteer
    controller = Controller()
    watch = Watch(controller)

    # The doctor's checks run in a thread against the real server, with the real token.
    assert controller.run_doctor(server=asgi_server.url, token=token)
    assert controller.wait_doctor(120)
    doctor = controller.snapshot().doctor
    assert not doctor.running and doctor.error is None
    assert any(c.ok and "token accepted" in c.what for c in doctor.checks), doctor.checks
    assert any(c.ok and "CartPole-v1 created" in c.what for c in doctor.checks), doctor.checks

    spool_root = tmp_path / "spool"
    config = run_config(
        server=asgi_server.url, token=token, machine="desk", spool_dir=spool_root, max_sps=300
    )
    controller.start(config)
    with pytest.raises(StartError, match="already running"):
        controller.start(config)
    snap = watch.until(
        lambda s: s.state == "running" and s.run.connection == "connected" and s.run.acked > 0,
        120,
        "the run to play and the server to ack a chunk",
    )
    assert snap.run.campaign["name"] == "Controller CartPole"
    assert snap.campaign_url == f"{asgi_server.url}/campaigns/{SLUG}/"
    assert snap.run.model_version == 0 and snap.run.steps > 0

    # Pause: the loop stands still, the partial chunk goes into the spool, and the spool drains.
    controller.pause()
    paused = watch.until(lambda s: s.state == "paused", 60, "the loop to pause")
    drained = watch.until(lambda s: s.run.spool == 0, 120, "the spool to drain while paused")
    assert drained.run.steps == paused.run.steps
    assert watch.until(lambda s: samples_stored(redis_client, campaign) == paused.run.steps, 30,
                       "the server to hold every step played before the pause")  # fmt: skip
    assert controller.snapshot().run.steps == paused.run.steps, "steps went on while paused"
    assert any("paused" in line for line in watch.lines)

    # Resume: steps go on.
    controller.resume()
    watch.until(lambda s: s.state == "running" and s.run.steps > paused.run.steps, 60, "steps after resume")

    # Stop: the run ends cleanly; what is left in the spool stays on disk.
    controller.stop()
    final = watch.until(lambda s: s.state == "stopped", 60, "the run to stop")
    assert controller.wait(10)
    assert final.exit_code == 0
    assert len(spool_files(spool_root)) == final.run.spool
    assert samples_stored(redis_client, campaign) <= final.run.steps
    assert any("stopped" in line for line in watch.lines), watch.lines[-20:]


def test_a_restart_resends_what_was_not_acked(asgi_server, volunteer, redis_client, tmp_path):
    campaign, token = volunteer
    spool_root = tmp_path / "spool"

    # First run: against a server that goes away mid-run, so chunks pile up unacknowledged.
    doomed = start_asgi(tmp_path / "doomed", name="doomed-uvicorn")
    first = Controller()
    watch = Watch(first)
    try:
        first.start(
            run_config(server=doomed.url, token=token, machine="desk", spool_dir=spool_root, max_sps=300)
        )
        watch.until(lambda s: s.run is not None and s.run.acked > 0, 120, "the first run to be acked")
    finally:
        doomed.stop()
    gone = watch.until(lambda s: s.run.connection in ("retrying", "connecting") and s.run.spool >= 3, 120,
                       "chunks to wait in the spool while the server is away")  # fmt: skip
    assert gone.run.last_error, "the window shows why nothing is sent"
    first.stop()
    stopped = watch.until(lambda s: s.state == "stopped", 60, "the first run to stop")
    assert stopped.exit_code == 0
    left_over = spool_files(spool_root)
    assert len(left_over) == stopped.run.spool >= 3
    ids = Spool(left_over[0].parent).pending()
    assert len(ids) == len(left_over)

    # Second run, same token and spool, against a server that answers: the old chunks go first.
    second = Controller()
    watch2 = Watch(second)
    second.start(
        run_config(server=asgi_server.url, token=token, machine="desk", spool_dir=spool_root, max_sps=300)
    )
    watch2.until(
        lambda s: s.state == "running" and s.run.acked >= len(ids), 120, "the old chunks to be acked"
    )
    assert any("from an earlier run: resending them" in line for line in watch2.lines), watch2.lines[:10]
    from trainer.keys import CampaignKeys

    keys = CampaignKeys(campaign.id)
    # Chunk ids are de-duplicated per machine: "<machine id>:<chunk id>".
    watch2.until(lambda s: all(redis_client.keys(f"{keys.dedup_prefix}*:{i}") for i in ids), 60, "every old chunk stored")

    # Pause until everything is acked, then stop: every step of both runs is counted exactly once.
    second.pause()
    watch2.until(lambda s: s.state == "paused", 60, "the second run to pause")
    drained = watch2.until(lambda s: s.run.spool == 0, 120, "the spool to drain")
    total = stopped.run.steps + drained.run.steps
    watch2.until(lambda s: samples_stored(redis_client, campaign) == total, 30,
                 f"the server to count {total} steps, once each")  # fmt: skip
    second.stop()
    assert watch2.until(lambda s: s.state == "stopped", 60, "the second run to stop").exit_code == 0
    assert spool_files(spool_root) == []
