"""The window does not trip its volunteer (issue 20): a mistyped token never replaces the saved one that
works, and with the server gone it stops playing once a small backlog waits, says so, and plays again
when the server is back. Under Xvfb, against a real ASGI server of its own that the test stops and
starts again on the same port."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from client_app import userconfig
from client_app.runner import RunConfig
from harness.platform import AsgiServer
from harness.processes import wait_http
from portal.core.processes import uvicorn_argv
from tests.conftest import process_env, start_asgi
from tests.gui.conftest import save_screenshot
from tests.gui.test_window import Pump, figure, number, type_into

pytestmark = [pytest.mark.e2e, pytest.mark.gui, pytest.mark.django_db(transaction=True)]


def _restart(server: AsgiServer, log_dir) -> AsgiServer:
    """The same server again, on the same port (the address the client keeps trying)."""
    again = AsgiServer(
        "uvicorn-again", uvicorn_argv(host="127.0.0.1", port=server.port), process_env(), log_dir
    )
    again.port, again.url = server.port, server.url
    wait_http(server.url + "/admin/login/", 60, again)
    return again


def test_a_typo_keeps_the_good_token_a_staff_pause_says_why_and_offline_play_stops_at_a_backlog(
    xvfb, tk_root, django_user_model, tmp_path
):
    from client_app.gui.window import ClientWindow
    from portal.campaigns.services import campaign_create, campaign_launch
    from portal.community.models import Announcement
    from portal.machines.services import token_create

    user = django_user_model.objects.create_user("offline", "o@example.com", "pw-12345678")
    campaign = campaign_launch(
        campaign=campaign_create(slug="gui-offline", name="Offline", env_id="CartPole-v1")
    )
    _, good = token_create(user=user, campaign=campaign, name="rig")
    Announcement.objects.create(title="Iudex falls", body="Watch [the fight](https://souls.example/)")
    server = start_asgi(tmp_path / "web")
    config_path = tmp_path / "client.json"
    userconfig.save(userconfig.UserConfig(server=server.url, token=good, machine="rig"), config_path)
    procs = [server]
    try:
        window = ClientWindow(tk_root, config_path=config_path, open_url=lambda url: None)
        pump = Pump(tk_root, window)
        pump.until(lambda: tk_root.winfo_ismapped(), 30, "the window to show")
        assert "Where do I get a token?" in window.token_help.cget("text")
        assert not window.spool_entry.winfo_ismapped()  # under "advanced settings"

        # A typo in the token: refused, said so, and the saved token is still the good one.
        type_into(window.token_entry, good[:-3] + "xyz")
        type_into(window.spool_entry, str(tmp_path / "spool"))
        window.start_button.invoke()
        pump.until(lambda: figure(window, "state").startswith("stopped with an error"), 60, "the refusal")
        assert "saved before were kept" in window.message_var.get(), window.message_var.get()
        assert userconfig.load(config_path).token == good
        save_screenshot(xvfb, tk_root, "client-gui-bad-token")

        # The good token, with the address typed bare (host:port): it plays.
        type_into(window.server_entry, server.url.removeprefix("http://"))
        type_into(window.token_entry, good)
        window.start_button.invoke()
        assert window.server_entry.get() == server.url
        pump.until(lambda: figure(window, "connection").startswith("connected") and number(window, "steps") > 0,
                   60, "steps played")  # fmt: skip

        # What staff announce reaches the window, as plain text.
        pump.until(lambda: window.news_var.get() == "Iudex falls: Watch the fight (https://souls.example/)", 60,
                   "the announcement in the window")  # fmt: skip

        # The win rate leads with its trend, worded as the portal's cards word it (from the public API).
        pump.until(lambda: window.win_rate_var.get() == "no boss in this campaign", 60, "CartPole's figure")
        from portal.campaigns.models import Campaign
        from portal.livestats.models import CampaignSnapshot

        Campaign.objects.filter(pk=campaign.pk).update(win_rate_recent=0.74, boss_hp_left_recent=0.18)
        CampaignSnapshot.objects.create(
            campaign=campaign, at=timezone.now() - timedelta(hours=25), win_rate=0.12
        )

        # Staff pause the campaign with a reason: the window says who paused it and why.
        from portal.campaigns.services import campaign_pause, campaign_resume

        campaign_pause(campaign=campaign, reason="moving the learner to a new GPU")
        pump.until(  # the pause makes the window ask for the figures again
            lambda: window.win_rate_var.get()
            == "74% of the last 100 fights (boss HP left 18%), ▲ up from 12% 1 day, 1 hour ago",
            60, "the win rate and its trend",
        )  # fmt: skip
        pump.until(
            lambda: figure(window, "connection") == "paused by the campaign's staff: moving the learner to a new GPU",
            60, "the staff's pause and its reason",
        )  # fmt: skip
        assert figure(window, "state") == "waiting: the campaign's staff paused it (nothing is lost)"
        save_screenshot(xvfb, tk_root, "client-gui-paused-by-staff")
        campaign_resume(campaign=campaign)
        pump.until(lambda: figure(window, "connection").startswith("connected"), 60, "the resume")

        # The server hangs (frozen, as behind a dropped Wi-Fi link: its socket still looks up, no ack comes),
        # then dies: the client stops playing once a small backlog waits, and says so.
        os.killpg(server.pid, signal.SIGSTOP)
        defaults = RunConfig(server_url="", token="", machine="")
        pump.until(lambda: figure(window, "state").startswith("offline: not playing"), 60, "the offline stop")
        steps, spool = number(window, "steps"), number(window, "spool")
        # CartPole makes some 80 chunks a second (the game one in 13 s), and the socket of a hung server
        # looks up for the websocket's ping timeout (20 s or more), yet play stops with at most the backlog
        # plus the in-flight window unacknowledged (8 + 16; one more when a model swap flushed a partial
        # chunk): not the spool's 1,000-chunk cap the first client filled.
        assert defaults.offline_backlog <= spool <= defaults.offline_backlog + defaults.window + 1, spool
        os.killpg(server.pid, signal.SIGKILL)
        server.stop()
        procs.remove(server)
        pump.until(
            lambda: not figure(window, "connection").startswith("connected"), 60, "the dropped connection"
        )
        pump.until(
            lambda: "not playing until it is back" in window.log_text.get("1.0", "end"), 10, "the log line"
        )
        save_screenshot(xvfb, tk_root, "client-gui-offline")
        assert (number(window, "steps"), number(window, "spool")) == (steps, spool)  # still not playing

        # The server is back: the backlog is sent and the client plays again.
        procs.append(_restart(server, tmp_path / "web"))
        pump.until(lambda: number(window, "steps") > steps, 90, "play after the server came back")
        pump.until(
            lambda: "the server is back: playing again" in window.log_text.get("1.0", "end"), 10, "the log"
        )
        window.quit()
        pump.until(lambda: window.closed, 60, "the window to close")
    finally:
        for proc in procs:
            proc.stop()
