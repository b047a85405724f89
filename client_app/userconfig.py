"""The volunteer's saved settings: server address, machine name, spool folder and machine token.

The file is JSON, ``client.json`` in the user's config folder (client_app.folders: by platformdirs,
e.g. ``~/.config/soulsai/`` on Linux; an earlier client's folder while it holds the only file).

The token is kept out of plain sight where the OS offers a keyring: with the optional ``keyring``
package installed and a working backend (Windows Credential Manager, the macOS Keychain, the Secret
Service on Linux desktops) it is stored there, one entry per server. Otherwise it goes into the file,
which is then readable by its owner only (0600) and says so in its ``note``. The command line reads
flags first, then ``SOULSAI_SERVER`` / ``SOULSAI_TOKEN``, then this file (client_app.cli).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from client_app import folders
from client_app.manners import DEFAULT_IDLE_MINUTES, HoursError, MannersConfig, parse_hours

log = logging.getLogger(__name__)

KEYRING_SERVICE = "soulsai-client"
FILE_NAME = folders.CONFIG_FILE
FILE_NOTE = (
    "Your machine token is kept in this file because no OS keyring is available to the client "
    "(pip install keyring to use one). Only your user account can read this file."
)


@dataclass
class UserConfig:
    """What the client remembers between runs (empty strings: not set)."""

    server: str = ""  # the portal's address, e.g. https://soulsai.example.org
    token: str = ""  # the machine token (never written to the file when a keyring holds it)
    machine: str = ""  # the name the server shows for this machine; "" = the host name
    spool_dir: str = ""  # root folder of the spools; "" = the user cache folder
    # When the client makes way for the person at the machine (client_app.manners); None: not set here,
    # and saving keeps what the file says (the window saves its own fields only).
    pause_on_input: bool | None = None  # --[no-]pause-on-input; not set: on
    idle_minutes: float | None = None  # --idle-minutes; not set: manners.DEFAULT_IDLE_MINUTES
    pause_while: tuple[str, ...] | None = None  # --pause-while, program names
    hours: str | None = None  # --hours, e.g. "22:00-08:00"; "" = any hour
    token_store: str = field(default="", compare=False)  # where the token lives: keyring | file | ""
    max_upload_kbps: float = 0.0  # the upload cap, KB/s; 0 = none (--max-upload-kbps)
    spool_max_mb: int = 0  # the spool's disk cap, MB; 0 = the client's default (--spool-max-mb)

    @property
    def token_note(self) -> str:
        """One line for the volunteer on where the token is kept."""
        if not self.token:
            return "no token saved"
        if self.token_store == "keyring":
            return "token kept in the system keyring"
        return "token kept in the config file, readable by you only (no system keyring available)"


def config_dir() -> Path:
    """The per-user config folder of the client, by the platform's convention (client_app.folders)."""
    return folders.config_dir()


def default_path() -> Path:
    return config_dir() / FILE_NAME


def mask_token(token: str) -> str:
    """``sai_1a2b3c4d…`` : enough to recognise a token, not enough to use it."""
    token = token or ""
    if not token:
        return "(none)"
    shown = min(8, len(token) // 3)
    return token[:shown] + "…" + f" ({len(token)} characters)"


# ---------------------------------------------------------------------------------------------------
# The keyring (optional)


def _keyring() -> Any | None:
    """The ``keyring`` module when it is installed and has a real backend, else None."""
    try:
        import keyring
    except Exception:  # not installed, or a broken install: the file is the fallback
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    kind = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    if ".fail." in kind or ".null." in kind:  # keyring's "no backend available" stand-ins
        return None
    return keyring


def _keyring_user(server: str) -> str:
    return server.strip().rstrip("/") or "default"


def _keyring_get(server: str) -> str | None:
    ring = _keyring()
    if ring is None:
        return None
    try:
        return ring.get_password(KEYRING_SERVICE, _keyring_user(server))
    except Exception as exc:  # a locked or broken keyring must not stop the client
        log.warning("cannot read the token from the system keyring: %s", exc)
        return None


def _keyring_set(server: str, token: str) -> bool:
    """Store the token in the keyring and read it back; False when the keyring does not work."""
    ring = _keyring()
    if ring is None:
        return False
    try:
        ring.set_password(KEYRING_SERVICE, _keyring_user(server), token)
        return ring.get_password(KEYRING_SERVICE, _keyring_user(server)) == token
    except Exception as exc:
        log.warning("cannot store the token in the system keyring (%s): keeping it in the config file", exc)
        return False


def _keyring_delete(server: str) -> None:
    ring = _keyring()
    if ring is None:
        return
    try:
        ring.delete_password(KEYRING_SERVICE, _keyring_user(server))
    except Exception:  # nothing stored, or a keyring that cannot delete: nothing to clean up
        pass


# ---------------------------------------------------------------------------------------------------
# Load and save


def load(path: str | os.PathLike | None = None) -> UserConfig:
    """The saved config (an empty one when there is no file or it cannot be read)."""
    path = Path(path) if path is not None else default_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UserConfig()
    except (OSError, ValueError) as exc:
        log.warning("ignoring the config file %s: %s", path, exc)
        return UserConfig()
    if not isinstance(data, dict):
        log.warning("ignoring the config file %s: not a JSON object", path)
        return UserConfig()
    config = UserConfig(
        server=str(data.get("server") or ""),
        machine=str(data.get("machine") or ""),
        spool_dir=str(data.get("spool_dir") or ""),
        max_upload_kbps=_number(data.get("max_upload_kbps"), float),
        spool_max_mb=_number(data.get("spool_max_mb"), int),
    )
    _load_manners(config, data)
    if data.get("token_store") == "keyring":
        config.token = _keyring_get(config.server) or ""
        config.token_store = "keyring" if config.token else ""
    elif data.get("token"):
        config.token, config.token_store = str(data["token"]), "file"
    return config


def _number(value: Any, kind: type) -> Any:
    """A cap from the file as ``kind``; 0 (the default) for anything missing, negative or not a number."""
    try:
        number = kind(value or 0)
    except (TypeError, ValueError, OverflowError):
        return kind(0)
    return number if number > 0 and number < float("inf") else kind(0)


def save(config: UserConfig, path: str | os.PathLike | None = None) -> UserConfig:
    """Write the config (the token into the keyring when one works); returns it with ``token_store`` set.

    The file is replaced atomically and created readable by its owner only.
    """
    path = Path(path) if path is not None else default_path()
    token = config.token.strip()
    data: dict[str, Any] = {
        "server": config.server.strip(),
        "machine": config.machine.strip(),
        "spool_dir": str(config.spool_dir).strip(),
    }
    for name in ("max_upload_kbps", "spool_max_mb"):  # only when set: 0 means the client's default
        if getattr(config, name):
            data[name] = getattr(config, name)
    store = ""
    if token:
        if _keyring_set(data["server"], token):
            store = "keyring"
            data["token_store"] = "keyring"
        else:
            store = "file"
            data.update(token_store="file", token=token, note=FILE_NOTE)
    else:
        _keyring_delete(data["server"])
    _save_manners(config, path, data)
    _write_private(path, json.dumps(data, indent=2) + "\n")
    saved = UserConfig(**{**asdict(config), "token": token})
    saved.token_store = store
    return saved


MANNERS_KEYS = ("pause_on_input", "idle_minutes", "pause_while", "hours")


def _load_manners(config: UserConfig, data: dict[str, Any]) -> None:
    """The pause settings from the file; a value of the wrong kind is ignored with a warning."""
    kinds = {"pause_on_input": bool, "idle_minutes": (int, float), "pause_while": list, "hours": str}
    for key, kind in kinds.items():
        value = data.get(key)
        if value is None:
            continue
        bad_number = key == "idle_minutes" and (isinstance(value, bool) or not 0 < value <= 24 * 60)
        if not isinstance(value, kind) or bad_number:
            log.warning("ignoring %s in the config file: %r", key, value)
            continue
        if key == "pause_while":
            value = tuple(str(v) for v in value if str(v).strip())
        if key == "hours" and value.strip():
            try:
                parse_hours(value)
            except HoursError as exc:
                log.warning("ignoring hours in the config file: %s", exc)
                continue
        setattr(config, key, value)


def _save_manners(config: UserConfig, path: Path, data: dict[str, Any]) -> None:
    """Write the pause settings that are set; keep the file's for those that are not (None)."""
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    for key in MANNERS_KEYS:
        value = getattr(config, key)
        if value is None and isinstance(before, dict) and key in before:
            data[key] = before[key]
        elif value is not None:
            data[key] = list(value) if key == "pause_while" else value


def manners_config(config: UserConfig) -> MannersConfig:
    """The saved pause settings as the run uses them (the client's defaults where none is saved)."""
    return MannersConfig(
        pause_on_input=True if config.pause_on_input is None else config.pause_on_input,
        idle_minutes=config.idle_minutes or DEFAULT_IDLE_MINUTES,
        pause_while=tuple(config.pause_while or ()),
        hours=parse_hours(config.hours) if config.hours else None,
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, the file readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # whatever the umask or an older file's mode said
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd != -1:
            os.close(fd)
    os.replace(tmp, path)


def resolve(
    *,
    flag: str | None,
    env_name: str,
    saved: str,
    environ: dict[str, str] | None = None,
) -> tuple[str, str]:
    """A setting's value and where it came from: the flag, then the environment, then the file."""
    environ = os.environ if environ is None else environ
    if flag:
        return flag, "flag"
    if environ.get(env_name):
        return environ[env_name], env_name
    if saved:
        return saved, "config file"
    return "", ""
