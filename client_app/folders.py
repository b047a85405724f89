"""The client's per-user folders: the config file's and the spools', by each OS's convention.

``platformdirs`` knows the conventions (and honours ``$XDG_CONFIG_HOME`` / ``$XDG_CACHE_HOME`` on
Linux, and on macOS when they are set):

==========  =================================================  ===============================================
OS          config (``client.json``)                           spools
==========  =================================================  ===============================================
Windows     ``%LOCALAPPDATA%\\soulsai``                         ``%LOCALAPPDATA%\\soulsai\\Cache\\spool``
macOS       ``~/Library/Application Support/soulsai``          ``~/Library/Caches/soulsai/spool``
Linux       ``$XDG_CONFIG_HOME/soulsai`` (``~/.config``)       ``$XDG_CACHE_HOME/soulsai/spool`` (``~/.cache``)
==========  =================================================  ===============================================

On Windows the config is no longer in the roaming profile (earlier clients used ``%APPDATA%``): the
machine token and name belong to this machine, and a roaming profile would carry them to another.

Earlier clients wrote these paths by hand (``legacy_config_dir``, ``legacy_spool_root``). Nothing
is moved: while the old config file (or spool root) exists and the new one does not, the old one is
used, so an upgrade keeps the saved settings and resends the chunks an older client left (a spool
may still be in use by an older client that is running). On Linux the old and new paths are the same.

A client that updated itself from an earlier version installed this wheel with ``--no-deps`` (client_app.updater),
so ``platformdirs`` may be missing: it then keeps the old paths and says so once.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

APP_NAME = "soulsai"
CONFIG_FILE = "client.json"

_warned = False


def _platform_dirs() -> Any | None:
    """platformdirs' class for the OS ``sys.platform`` names, or None when platformdirs is missing."""
    global _warned
    try:
        if sys.platform == "win32":
            from platformdirs.windows import Windows as Dirs
        elif sys.platform == "darwin":
            from platformdirs.macos import MacOS as Dirs
        else:
            from platformdirs.unix import Unix as Dirs
    except ImportError:
        if not _warned:
            _warned = True
            log.warning(
                "platformdirs is not installed: using the folders of earlier clients (pip install platformdirs)"
            )
        return None
    return Dirs(APP_NAME, appauthor=False)


def legacy_config_dir() -> Path:
    """Where earlier clients kept ``client.json``."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / APP_NAME


def legacy_spool_root() -> Path:
    """Where earlier clients kept the spools (``~/.cache`` on macOS too)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / APP_NAME / "spool"


def prefer_existing(new: Path, old: Path, *, marker: str | None = None) -> Path:
    """``new``, unless only ``old`` exists (judged by ``marker`` inside each, or the folders themselves)."""
    if new == old:
        return new
    probe_new, probe_old = (new / marker, old / marker) if marker else (new, old)
    if not probe_new.exists() and probe_old.exists():
        return old
    return new


def config_dir() -> Path:
    """The per-user config folder (the old one while it holds the only ``client.json``)."""
    dirs = _platform_dirs()
    old = legacy_config_dir()
    if dirs is None:
        return old
    return prefer_existing(Path(dirs.user_config_dir), old, marker=CONFIG_FILE)


def spool_root() -> Path:
    """The root of the spools, one subfolder per campaign and token (the old root while only it exists)."""
    dirs = _platform_dirs()
    old = legacy_spool_root()
    if dirs is None:
        return old
    return prefer_existing(Path(dirs.user_cache_dir) / "spool", old)
