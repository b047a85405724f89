"""The saved settings: the file, the token in the keyring or (0600) in the file, and what overrides them."""

from __future__ import annotations

import json
import stat

import pytest

from client_app import cli, userconfig
from client_app.spool import Spool


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Never read or write the real user's config or spools; no SOULSAI_* from the outer shell."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("SOULSAI_SERVER", raising=False)
    monkeypatch.delenv("SOULSAI_TOKEN", raising=False)


class MemoryKeyring:
    """Stands in for an OS keyring (the ``keyring`` package's API): service -> user -> secret."""

    def __init__(self, broken: bool = False):
        self.secrets: dict[tuple[str, str], str] = {}
        self.broken = broken

    def get_password(self, service, user):
        return self.secrets.get((service, user))

    def set_password(self, service, user, secret):
        if self.broken:
            raise RuntimeError("the keyring is locked")
        self.secrets[(service, user)] = secret

    def delete_password(self, service, user):
        self.secrets.pop((service, user), None)


def test_config_file_is_in_the_users_config_folder(tmp_path):
    # Each OS's folder, and an earlier client's: tests/client_app/test_folders.py.
    assert userconfig.default_path() == tmp_path / "xdg-config" / "soulsai" / "client.json"


def test_without_a_keyring_the_token_goes_into_a_private_file(monkeypatch):
    monkeypatch.setattr(userconfig, "_keyring", lambda: None)
    config = userconfig.UserConfig(
        server="https://soulsai.example.org", token=" sai_secret \n", machine="attic", spool_dir="/data/spool"
    )
    saved = userconfig.save(config)
    path = userconfig.default_path()
    assert saved.token_store == "file" and "readable by you only" in saved.token_note
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["token"] == "sai_secret" and "no OS keyring" in data["note"]

    loaded = userconfig.load()
    assert loaded == userconfig.UserConfig(
        "https://soulsai.example.org", "sai_secret", "attic", "/data/spool"
    )
    assert loaded.token_store == "file"

    # Saving again over a file someone made world-readable makes it private again.
    path.chmod(0o644)
    userconfig.save(loaded)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_with_a_keyring_the_token_stays_out_of_the_file(monkeypatch):
    ring = MemoryKeyring()
    monkeypatch.setattr(userconfig, "_keyring", lambda: ring)
    saved = userconfig.save(
        userconfig.UserConfig(server="https://a.example.org/", token="sai_kept", machine="m")
    )
    assert saved.token_store == "keyring" and saved.token_note == "token kept in the system keyring"
    text = userconfig.default_path().read_text()
    assert "sai_kept" not in text and json.loads(text)["token_store"] == "keyring"
    assert ring.secrets == {("soulsai-client", "https://a.example.org"): "sai_kept"}
    loaded = userconfig.load()
    assert loaded.token == "sai_kept" and loaded.token_store == "keyring"

    # Forgetting the token removes it from the keyring too.
    userconfig.save(userconfig.UserConfig(server="https://a.example.org/", token=""))
    assert ring.secrets == {} and userconfig.load().token == ""


def test_a_keyring_that_fails_falls_back_to_the_file(monkeypatch):
    monkeypatch.setattr(userconfig, "_keyring", lambda: MemoryKeyring(broken=True))
    saved = userconfig.save(userconfig.UserConfig(server="https://a.example.org", token="sai_x"))
    assert saved.token_store == "file"
    assert json.loads(userconfig.default_path().read_text())["token"] == "sai_x"


def test_a_missing_or_broken_file_is_an_empty_config(tmp_path):
    assert userconfig.load(tmp_path / "none.json") == userconfig.UserConfig()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert userconfig.load(bad) == userconfig.UserConfig()
    bad.write_text("[1, 2]")
    assert userconfig.load(bad) == userconfig.UserConfig()


def test_mask_token_shows_a_prefix_only():
    masked = userconfig.mask_token("sai_0123456789abcdef0123456789abcdef")
    assert masked.startswith("sai_") and "0123456789abcdef0123456789abcdef" not in masked
    assert userconfig.mask_token("") == "(none)"


def test_flags_then_environment_then_file_for_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(userconfig, "_keyring", lambda: None)
    path = tmp_path / "client.json"
    userconfig.save(
        userconfig.UserConfig(server="http://file:8000", token="sai_file", machine="attic", spool_dir="/s"),
        path,
    )
    config = cli.parse_args(["--config", str(path)])
    assert (config.server_url, config.token, config.machine, str(config.spool_dir)) == (
        "http://file:8000", "sai_file", "attic", "/s",
    )  # fmt: skip

    monkeypatch.setenv("SOULSAI_SERVER", "http://env:8000")
    monkeypatch.setenv("SOULSAI_TOKEN", "sai_env")
    config = cli.parse_args(["run", "--config", str(path)])
    assert (config.server_url, config.token) == ("http://env:8000", "sai_env")

    config = cli.parse_args(["--config", str(path), "--server", "http://flag:8000", "--token", "sai_flag",
                             "--name", "desk", "--spool-dir", "/elsewhere"])  # fmt: skip
    assert (config.server_url, config.token, config.machine, str(config.spool_dir)) == (
        "http://flag:8000", "sai_flag", "desk", "/elsewhere",
    )  # fmt: skip


def test_run_save_remembers_the_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(userconfig, "_keyring", lambda: None)
    path = tmp_path / "client.json"
    cli.parse_args(["--config", str(path), "--server", "http://h:8000", "--token", "sai_t", "--name", "rig",
                    "--save"])  # fmt: skip
    assert "settings saved in" in capsys.readouterr().err
    saved = userconfig.load(path)
    assert (saved.server, saved.token, saved.machine) == ("http://h:8000", "sai_t", "rig")
    assert cli.parse_args(["--config", str(path)]).token == "sai_t"


def test_missing_settings_say_every_way_to_give_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(["--config", str(tmp_path / "none.json")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "SOULSAI_SERVER" in err and "--save" in err


@pytest.mark.parametrize("command", ["run", "doctor", "status", "gui"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: soulsai-client" in out
    if command in ("run", "status", "gui"):
        assert "--config" in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("doctor", "status", "gui", "config file"):
        assert command in out


@pytest.mark.django_db(transaction=True)
def test_status_shows_settings_spools_and_the_servers_health(asgi_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(userconfig, "_keyring", lambda: None)
    path = tmp_path / "client.json"
    spool_root = tmp_path / "spool"
    token = "sai_0123456789abcdef0123456789abcdef"
    userconfig.save(
        userconfig.UserConfig(
            server=asgi_server.url, token=token, machine="attic", spool_dir=str(spool_root)
        ),
        path,
    )
    spool = Spool(spool_root / "cartpole-demo-0123456789ab")
    spool.add("s1-0", b"frame one")
    spool.add("s1-1", b"frame two")
    (spool_root / "lunar-feedbeef0000").mkdir()

    assert cli.main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and asgi_server.url in out and "attic" in out
    assert token not in out and "sai_" in out and "in the config file" in out
    assert "cartpole-demo-0123456789ab: 2 chunks waiting" in out
    assert "lunar-feedbeef0000: 0 chunks waiting" in out
    assert "/healthz: HTTP 200" in out and '"ok": true' in out

    # The environment overrides the file; a server that does not answer makes status fail.
    monkeypatch.setenv("SOULSAI_SERVER", "http://127.0.0.1:9")
    assert cli.main(["status", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "[SOULSAI_SERVER]" in out and "no answer" in out

    # doctor uses the saved server and token too.
    monkeypatch.delenv("SOULSAI_SERVER")
    monkeypatch.setattr(userconfig, "default_path", lambda: path)
    cli.main(["doctor", "--env", "CartPole-v1"])
    out = capsys.readouterr().out
    assert f"the server answers at {asgi_server.url}/healthz" in out
