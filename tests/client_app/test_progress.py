"""What the command line and the window show of a run: the connection's words and the progress line."""

from __future__ import annotations

from types import SimpleNamespace

from client_app.policy import RandomPolicy
from client_app.progress import RecentRate, connection_label, progress_line


def state(**changes):
    """The parts of a ConnectionState that the words read."""
    fields = dict(state="connected", campaign_status="running", hold_s=0.0, fatal=None,
                  server_model_version=0, rejected=0, upload_capped=False, upload_kbps=0.0)  # fmt: skip
    return SimpleNamespace(**{**fields, **changes})


def test_the_connection_in_words():
    assert connection_label(state()) == "connected"
    assert connection_label(state(campaign_status="paused")) == "paused"
    assert connection_label(state(hold_s=1.5)) == "server busy"
    assert connection_label(state(state="retrying")) == "retrying"
    assert connection_label(state(fatal=object())) == "failed"


def test_the_progress_line():
    played = RandomPolicy(2)
    played.version = 3
    line = progress_line(
        state(server_model_version=5, rejected=2),
        paused=True,
        policy=played,
        steps=12_345,
        steps_per_s=99.6,
        episodes=1_200,
        returns=[1.0, 2.0],
        wins=4,
        eval_episodes=6,
        spool=7,
        restarts=1,
        note="spool full, waiting for the server",
    )
    assert line == (
        "connected (paused by you) | model v3 (server has v5) | 12,345 steps (100/s) | 1,200 episodes"
        " | mean return 1.5 (last 2) | spool 7 | 4 won | 6 evaluation episodes | 1 game restarts"
        " | 2 rejected | spool full, waiting for the server"
    )
    quiet = dict(paused=False, steps=0, steps_per_s=float("inf"), episodes=0, returns=[], wins=0,
                 eval_episodes=0, spool=0, restarts=0)  # fmt: skip
    assert progress_line(state(), policy=RandomPolicy(2), **quiet) == (
        "connected | model random (no model yet) | 0 steps | 0 episodes | mean return - (last 0) | spool 0"
    )
    assert progress_line(state(state="connecting"), policy=None, **quiet).startswith("connecting | model none |")
    capped = progress_line(state(upload_capped=True, upload_kbps=40.0), policy=None, **quiet)
    assert capped.endswith(" | spool 0 | upload capped at 40 KB/s")


def test_the_windows_steps_per_second_covers_the_last_five_seconds():
    rate = RecentRate()
    assert rate.update(100.0, 0) == 0.0
    assert rate.update(101.0, 50) == 50.0
    assert rate.update(104.0, 200) == 50.0
    # Samples older than five seconds drop out: the figure follows the recent pace.
    assert rate.update(110.0, 1400) == 1200 / 6.0


def test_the_window_words_pacing_as_normal_and_a_pause_as_the_staffs():
    from client_app.progress import connection_label_words

    assert connection_label_words("server busy") == "connected (the server paces its clients: normal)"
    assert connection_label_words("paused", {}) == "paused by the campaign's staff"
    assert (
        connection_label_words("paused", {"pause_reason": "new model architecture"})
        == "paused by the campaign's staff: new model architecture"
    )
    assert connection_label_words("retrying") == "retrying"
