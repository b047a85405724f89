"""The pause settings: command-line options, the config file (--save, and the window's saves keeping
them), and ``status`` saying what the sources read on this machine now."""

# ruff: noqa: F811 (the fixtures are imported from test_manners_sources)
from __future__ import annotations

import json

import pytest

from client_app import cli, userconfig
from client_app.manners import MannersConfig, parse_hours
from tests.client_app.test_cli import TOKEN
from tests.client_app.test_manners_sources import needs_xvfb, xdotool, xvfb  # noqa: F401

BASE = ["--server", "http://127.0.0.1:9", "--token", TOKEN]


def test_defaults_and_options_make_the_runs_pause_settings(tmp_path):
    config = cli.parse_args([*BASE, "--config", str(tmp_path / "c.json")])
    assert config.manners == MannersConfig()  # on input, 3 min; no programs, any hour
    config = cli.parse_args(
        [*BASE, "--config", str(tmp_path / "c.json"), "--idle-minutes", "0.5", "--pause-while", "steam",
         "--pause-while", "EldenRing.exe", "--hours", "22:00-8:00", "--no-pause-on-input"]
    )  # fmt: skip
    assert config.manners == MannersConfig(
        pause_on_input=False, idle_minutes=0.5, pause_while=("steam", "EldenRing.exe"),
        hours=parse_hours("22:00-08:00"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--hours", "25:00-08:00"], "25:00 is not a time of day"),
        (["--hours", "10pm-6am"], "is not a time of day; write HH:MM"),
        (["--hours", "08:00-08:00"], "starts and ends at the same time"),
        (["--idle-minutes", "0"], "more than 0"),
        (["--idle-minutes", "soon"], "a number of minutes"),
    ],
)
def test_bad_pause_options_are_refused_readably(args, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args([*BASE, "--config", str(tmp_path / "c.json"), *args])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_save_remembers_them_and_a_save_without_them_keeps_them(tmp_path):
    path = tmp_path / "c.json"
    cli.parse_args(
        [*BASE, "--config", str(path), "--save", "--idle-minutes", "5", "--pause-while", "steam",
         "--hours", "22:00-08:00", "--no-pause-on-input"]
    )  # fmt: skip
    data = json.loads(path.read_text())
    assert (data["idle_minutes"], data["pause_while"], data["hours"], data["pause_on_input"]) == (
        5.0, ["steam"], "22:00-08:00", False,
    )  # fmt: skip
    # The next run takes them from the file; a flag overrides one of them only.
    config = cli.parse_args([*BASE, "--config", str(path), "--idle-minutes", "1"])
    assert config.manners == MannersConfig(
        pause_on_input=False, idle_minutes=1.0, pause_while=("steam",), hours=parse_hours("22:00-08:00")
    )
    # The window saves its own fields only (the pause settings are None there): the file keeps them.
    saved = userconfig.load(path)
    userconfig.save(userconfig.UserConfig(server=saved.server, token=saved.token, machine="other"), path)
    assert userconfig.manners_config(userconfig.load(path)) == MannersConfig(
        pause_on_input=False, idle_minutes=5.0, pause_while=("steam",), hours=parse_hours("22:00-08:00")
    )
    # 'any' and '' forget saved hours and programs.
    cli.parse_args([*BASE, "--config", str(path), "--save", "--hours", "any", "--pause-while", ""])
    assert userconfig.manners_config(userconfig.load(path)).hours is None
    assert userconfig.manners_config(userconfig.load(path)).pause_while == ()


def test_a_hand_edited_file_with_bad_pause_settings_falls_back_to_the_defaults(tmp_path, caplog):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"server": "http://x", "hours": "lunch", "idle_minutes": -2, "pause_while": "x"})
    )
    assert userconfig.manners_config(userconfig.load(path)) == MannersConfig()
    assert "ignoring hours in the config file" in caplog.text and "ignoring idle_minutes" in caplog.text


@needs_xvfb
def test_status_says_the_settings_and_what_the_machine_reads_now(xvfb, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("SOULSAI_SERVER", raising=False)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"pause_while": ["no-such-program-here"], "idle_minutes": 2}))
    xdotool(xvfb, "mousemove", "5", "5")
    cli.status_main(["--config", str(path), "--spool-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert (
        "pausing:     pauses on keyboard or mouse input, until 2 min without input; while no-such-program-here runs"
        in out
    )
    assert "now: would pause: you used the keyboard or mouse" in out
    assert "no-such-program-here is running" not in out
