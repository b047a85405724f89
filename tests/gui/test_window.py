"""The client's window under Xvfb, driven through a real session against the real server.

The ASGI server, Redis and a Celery worker (the learner) run for real; the test types the server
address and the token into the window, checks the machine, clicks Start, waits for steps and a model
version from the learner, pauses, resumes and quits, and saves screenshots along the way.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from client_app import userconfig
from harness import WaitTimeout, wait_for
from tests.conftest import FAST_DQN, ROOT
from tests.gui.conftest import read_xwd, running_xvfb, save_screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.gui, pytest.mark.django_db(transaction=True)]

SLUG = "gui-cartpole"


class Pump:
    """Runs Tk's event loop from the test until a condition holds (generous time-outs, no fixed sleeps)."""

    def __init__(self, root, window):
        self.root, self.window = root, window

    def until(self, predicate, timeout: float, what: str):
        def pumped():
            if not self.window.closed:
                self.root.update()
            return predicate()

        try:
            return wait_for(pumped, timeout, what, interval=0.05)
        except WaitTimeout:
            # Say what the window showed: its figures and the end of its log.
            closed = self.window.closed
            figures = {k: v.get() for k, v in self.window.figure_vars.items()} if not closed else {}
            log = self.window.log_text.get("1.0", "end")[-4000:] if not closed else ""
            raise AssertionError(f"timed out waiting for {what}\nfigures: {figures}\nlog:\n{log}") from None


def type_into(entry, text: str) -> None:
    """What pasting does: replace the entry's text."""
    entry.delete(0, "end")
    entry.insert(0, text)


def figure(window, key: str) -> str:
    return window.figure_vars[key].get()


def number(window, key: str) -> int:
    text = figure(window, key).replace(",", "")
    return int(text) if text.isdigit() else -1


@pytest.fixture
def volunteer(django_user_model):
    from portal.campaigns.services import campaign_create, campaign_launch
    from portal.machines.services import token_create

    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_create(slug=SLUG, name="GUI CartPole", env_id="CartPole-v1", hyperparams=FAST_DQN)
    campaign = campaign_launch(campaign=campaign)  # commits: a learner task for the Celery worker
    _, token = token_create(user=user, campaign=campaign, name="gui-rig")
    return campaign, token


def test_a_real_session_in_the_window(xvfb, tk_root, asgi_server, celery_worker, volunteer, tmp_path):
    from client_app.gui.window import ClientWindow

    campaign, token = volunteer
    config_path = tmp_path / "config" / "client.json"
    spool_root = tmp_path / "spool"
    opened: list[str] = []
    window = ClientWindow(tk_root, config_path=config_path, open_url=opened.append)
    pump = Pump(tk_root, window)
    pump.until(lambda: tk_root.winfo_ismapped(), 30, "the window to show")
    assert figure(window, "state") == "not started"

    # A start without a token says what to do, in words.
    type_into(window.server_entry, asgi_server.url)
    window.start_button.invoke()
    assert "Paste your machine token" in window.message_var.get()

    type_into(window.token_entry, token)
    type_into(window.machine_entry, "gui-rig")
    type_into(window.spool_entry, str(spool_root))

    # The doctor's checks run in the background; the window keeps drawing meanwhile.
    window.doctor_button.invoke()
    checks = pump.until(
        lambda: "token accepted" in (t := window.checks_text.get("1.0", "end")) and t, 120, "the checks"
    )
    assert "✓ CartPole-v1 created" in checks and "GUI CartPole" in checks
    save_screenshot(xvfb, tk_root, "client-gui-checks")

    window.start_button.invoke()
    assert window.message_var.get() == "", window.message_var.get()
    pump.until(lambda: figure(window, "connection") == "connected" and number(window, "steps") > 0, 120,
               "steps to be played")  # fmt: skip
    assert window.campaign_var.get().startswith("GUI CartPole")
    assert window.boss_var.get() == "no boss (CartPole-v1)"
    pump.until(lambda: figure(window, "model").startswith("v"), 240, "a model version from the learner")
    pump.until(lambda: number(window, "episodes") > 0 and figure(window, "return") != "–", 60, "episodes")
    assert window.start_button.instate(["disabled"]) and window.pause_button.instate(["!disabled"])

    # The campaign link opens the portal's page.
    pump.until(lambda: window.link_label.cget("text"), 10, "the campaign link")
    window.link_label.event_generate("<Button-1>", x=2, y=2)
    page = f"{asgi_server.url}/campaigns/{SLUG}/"
    pump.until(lambda: opened == [page], 10, "the campaign page to open")

    log_text = window.log_text.get("1.0", "end")
    assert "campaign 'GUI CartPole'" in log_text and "connecting to" in log_text
    shot = save_screenshot(xvfb, tk_root, "client-gui-running")
    assert shot.stat().st_size > 10_000

    # Pause: steps stop, the spool drains; the button turns into Resume.
    window.pause_button.invoke()
    pump.until(lambda: figure(window, "state").startswith("paused"), 60, "the pause")
    assert window.pause_button.cget("text") == "Resume"
    pump.until(lambda: figure(window, "spool") == "0", 120, "the spool to drain while paused")
    steps_paused = number(window, "steps")
    save_screenshot(xvfb, tk_root, "client-gui-paused")
    pump.until(lambda: "paused: not playing" in window.log_text.get("1.0", "end"), 10, "the pause in the log")
    assert number(window, "steps") == steps_paused

    # Resume: steps go on.
    window.pause_button.invoke()
    pump.until(lambda: number(window, "steps") > steps_paused, 60, "steps after resume")
    assert window.pause_button.cget("text") == "Pause"

    # Quit: the run stops cleanly and the window closes; unsent chunks stay in the spool.
    window.quit_button.invoke()
    pump.until(lambda: window.closed, 60, "the window to close")
    assert window.exit_code == 0
    assert not window.controller.running
    left = window.controller.snapshot().run.spool
    assert len(list(spool_root.glob("*/*.chunk"))) == left

    # Pasted once, remembered: server, token and machine name are in the config, the file private.
    saved = userconfig.load(config_path)
    assert (saved.server, saved.token, saved.machine, saved.spool_dir) == (
        asgi_server.url, token, "gui-rig", str(spool_root),
    )  # fmt: skip
    if saved.token_store == "file":
        assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_the_window_remembers_the_settings(xvfb, tk_root, tmp_path):
    from client_app.gui.window import ClientWindow

    config_path = tmp_path / "client.json"
    userconfig.save(
        userconfig.UserConfig(
            server="http://127.0.0.1:9", token="sai_remembered", machine="attic",
            max_upload_kbps=40.0, spool_max_mb=64,  # set with run --save: the window has no fields
        ),
        config_path,
    )
    window = ClientWindow(tk_root, config_path=config_path, open_url=lambda url: None)
    pump = Pump(tk_root, window)
    pump.until(lambda: tk_root.winfo_ismapped(), 30, "the window to show")
    assert window.server_entry.get() == "http://127.0.0.1:9"
    assert window.token_entry.get() == "sai_remembered" and window.token_entry.cget("show") == "•"
    assert window.machine_entry.get() == "attic"
    assert "token kept in" in window.note_var.get()
    frame = read_xwd(xvfb[1])
    assert frame.shape[2] == 3 and frame.max() > 0, "the Xvfb framebuffer shows the window"

    # A server that does not answer: the window says so in plain words and keeps responding.
    window.start_button.invoke()
    pump.until(lambda: "does not answer" in figure(window, "error"), 60, "the plain-words error")
    assert figure(window, "connection") in ("retrying", "connecting")
    # The window's run keeps the saved caps, and saving its own fields did not drop them.
    run = window.controller._runner.config
    assert (run.max_upload_kbps, run.spool_max_mb) == (40.0, 64)
    saved = userconfig.load(config_path)
    assert (saved.max_upload_kbps, saved.spool_max_mb) == (40.0, 64)
    save_screenshot(xvfb, tk_root, "client-gui-no-server")
    window.stop_button.invoke()
    pump.until(lambda: figure(window, "state") == "stopped", 60, "the stop")
    window.quit()
    pump.until(lambda: window.closed, 30, "the window to close")


def test_the_gui_command_opens_the_window(tmp_path):
    with running_xvfb(tmp_path) as (display, framebuffer):
        _gui_command_draws_a_window(display, framebuffer, tmp_path)


def _gui_command_draws_a_window(display, framebuffer, tmp_path):
    assert read_xwd(framebuffer).max() == 0, "a fresh Xvfb screen is black"
    proc = subprocess.Popen(
        [sys.executable, "-m", "client_app", "gui", "--config", str(tmp_path / "client.json")],
        cwd=ROOT, env={**os.environ, "DISPLAY": display}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: read_xwd(framebuffer).max() > 0 or proc.poll() is not None, 120,
                 "a window on the screen (or the command to exit)")  # fmt: skip
        assert proc.poll() is None, proc.stdout.read().decode()
        assert read_xwd(framebuffer).max() > 0, "no window appeared"
    finally:
        proc.terminate()
        proc.wait(30)


def test_gui_command_help():
    result = subprocess.run(
        [sys.executable, "-m", "client_app", "gui", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "usage: soulsai-client gui" in result.stdout and "--config" in result.stdout
