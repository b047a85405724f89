"""Per-user folders from platformdirs: each OS's convention, $XDG_* on Linux, an earlier client's folders kept."""

from __future__ import annotations

import sys

import pytest

from client_app import folders, userconfig
from client_app.spool import Spool, default_spool_root


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private home, no XDG_* variables (each test sets what it needs), Linux unless it says otherwise."""
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "platform", "linux")
    return tmp_path / "home"


def test_linux_folders_honour_the_xdg_variables(home, tmp_path, monkeypatch):
    assert userconfig.default_path() == home / ".config" / "soulsai" / "client.json"
    assert default_spool_root() == home / ".cache" / "soulsai" / "spool"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert userconfig.default_path() == tmp_path / "cfg" / "soulsai" / "client.json"
    assert default_spool_root() == tmp_path / "cache" / "soulsai" / "spool"


def test_macos_folders_and_an_earlier_clients_spool_is_kept(home):
    sys.platform = "darwin"  # monkeypatched by the fixture: restored after the test
    assert userconfig.config_dir() == home / "Library" / "Application Support" / "soulsai"
    new = home / "Library" / "Caches" / "soulsai" / "spool"
    assert default_spool_root() == new
    # An earlier client kept its spools in ~/.cache on macOS too, and left a chunk there.
    old = folders.legacy_spool_root()
    assert old == home / ".cache" / "soulsai" / "spool"
    Spool(old / "cartpole-demo-abc123def456").add("s-0", b"frame")
    assert default_spool_root() == old
    assert Spool(default_spool_root() / "cartpole-demo-abc123def456").pending() == ["s-0"]
    # Once the new folder exists (made by hand, say) it wins.
    new.mkdir(parents=True)
    assert default_spool_root() == new


def test_windows_folders_are_local_not_roaming(home, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    # platformdirs asks Windows itself for the folders; these variables stand in for its answer here.
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", r"C:\Users\v\AppData\Local")
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", r"C:\Users\v\AppData\Roaming")
    assert str(userconfig.config_dir()).replace("/", "\\") == r"C:\Users\v\AppData\Local\soulsai"
    assert str(default_spool_root()).replace("/", "\\") == r"C:\Users\v\AppData\Local\soulsai\Cache\spool"


def test_an_earlier_clients_config_file_is_used_while_the_new_folder_has_none(tmp_path):
    # On Windows the old config folder was %APPDATA%\soulsai and the new one is %LOCALAPPDATA%\soulsai,
    # which may exist already without a config file (an earlier client's spools live under it).
    old, new = tmp_path / "Roaming" / "soulsai", tmp_path / "Local" / "soulsai"
    (new / "spool").mkdir(parents=True)
    assert folders.prefer_existing(new, old, marker="client.json") == new  # nothing saved anywhere
    userconfig.save(userconfig.UserConfig(server="http://old:8000", machine="attic"), old / "client.json")
    chosen = folders.prefer_existing(new, old, marker="client.json")
    assert chosen == old and userconfig.load(chosen / "client.json").server == "http://old:8000"
    userconfig.save(userconfig.UserConfig(server="http://new:8000"), new / "client.json")
    assert folders.prefer_existing(new, old, marker="client.json") == new


def test_an_earlier_clients_config_is_read_after_the_upgrade(home, monkeypatch):
    # The same rule through config_dir(), on macOS where platformdirs honours $XDG_CONFIG_HOME when set:
    # an earlier client ignored it there, so its file is in ~/Library/Application Support.
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    old = folders.legacy_config_dir()
    assert userconfig.config_dir() == home / "xdg" / "soulsai"
    userconfig.save(userconfig.UserConfig(server="http://old:8000", machine="attic"), old / "client.json")
    assert userconfig.config_dir() == old
    assert userconfig.load().server == "http://old:8000"


def test_without_platformdirs_the_earlier_folders_are_used(home, monkeypatch):
    # A client that updated itself from an earlier version installed this one with --no-deps.
    monkeypatch.setattr(sys, "platform", "darwin")
    for module in ("platformdirs.unix", "platformdirs.macos", "platformdirs.windows"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    assert userconfig.config_dir() == home / "Library" / "Application Support" / "soulsai"
    assert default_spool_root() == home / ".cache" / "soulsai" / "spool"
