"""The client updates itself: a newer wheel from its own server, installed only if the maintainers signed it.

When the server offers a newer client (``/download/release.json``, read at start; while running, the
relay's ``release`` notice: client_app.autoupdate) or the campaign requires one (the relay closed the
connection with ``upgrade_required``, at hello or when the campaign's minimum was raised), the client:

1. downloads the wheel and its ``.sig`` from its own server only (same origin as ``--server``, no
   redirects, bounded sizes, timeouts: ``client_app.fetcher.download``);
2. checks the size and sha256 the server announced, then the Ed25519 signature against the release
   key built into this client (``client_app.release``) — BEFORE anything is installed: a server that
   was broken into can serve any file, but not one the maintainers' offline key signed;
3. installs it into this client's own environment (``python -m pip install --no-deps --no-index``:
   nothing is fetched from anywhere else, its dependencies are the ones already installed);
4. restarts itself with the same arguments (``os.execv``): the settings and the spool are the same,
   so unsent chunks go out after the restart.

Any failure (no signature, a bad one, pip refusing) leaves this client running as it is and says why
in one line. ``--no-auto-update`` turns all of this off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client_app import __version__, release
from client_app.fetcher import ModelRejected, download, model_url
from client_app.protocol import parse_version

log = logging.getLogger(__name__)

RELEASE_PATH = "/download/release.json"
MAX_RELEASE_JSON_BYTES = 4096
MAX_WHEEL_BYTES = 64 * 1024 * 1024  # the client wheel is well under 1 MiB; anything this big is not one
HTTP_TIMEOUT_S = 30.0
PIP_TIMEOUT_S = 300.0
# Set across the restart: the new process says what happened and does not try again (a pip that
# installed somewhere this interpreter does not import from would otherwise loop).
UPDATED_FROM_ENV = "SOULSAI_UPDATED_FROM"
_WHEEL_NAME = re.compile(r"soulsai_client-[0-9][0-9A-Za-z.+_]{0,40}-py3-none-any\.whl")


class UpdateError(Exception):
    """Why this client did not update (it keeps running as it is)."""


@dataclass(frozen=True)
class Release:
    """The newest client the server offers (``/download/release.json``)."""

    version: str
    filename: str
    sha256: str
    size_bytes: int
    url: str
    signature_url: str | None


def release_fetch(server_url: str, *, timeout: float = HTTP_TIMEOUT_S) -> Release:
    """What the server offers; UpdateError if it does not answer or the answer is not one."""
    url = model_url(server_url, RELEASE_PATH)
    try:
        try:
            data = json.loads(download(url, headers={}, timeout=timeout, max_bytes=MAX_RELEASE_JSON_BYTES))
        except urllib.error.HTTPError as exc:
            exc.close()  # an error page left open holds the server's connection until it times out
            raise UpdateError(f"{url} answered {exc.code}: the server offers no client package now") from None
        offer = Release(
            version=str(data["version"]),
            filename=str(data["filename"]),
            sha256=str(data["sha256"]).lower(),
            size_bytes=int(data["size_bytes"]),
            url=str(data["url"]),
            signature_url=None if data.get("signature_url") is None else str(data["signature_url"]),
        )
    except (OSError, ValueError, KeyError, TypeError, ModelRejected) as exc:
        raise UpdateError(f"could not read {url}: {exc}") from None
    if not _WHEEL_NAME.fullmatch(offer.filename):
        raise UpdateError(f"the server offers a file named {offer.filename[:80]!r}, not a client wheel")
    if not 0 < offer.size_bytes <= MAX_WHEEL_BYTES:
        raise UpdateError(f"the server offers a wheel of {offer.size_bytes} bytes (limit {MAX_WHEEL_BYTES})")
    return offer


def is_newer(offer: Release, current: str = __version__) -> bool:
    return parse_version(offer.version) > parse_version(current)


def fetch_verified(
    server_url: str, offer: Release, folder: Path, *, public_key: Ed25519PublicKey | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Path:  # fmt: skip
    """Download the offered wheel into ``folder`` and return its path, only once its size, sha256 and
    release signature check out (``public_key``: the built-in release key unless a test passes one)."""
    if offer.signature_url is None:
        raise UpdateError(f"client {offer.version} on the server is not signed yet; not installing it")
    try:
        wheel = download(
            model_url(server_url, offer.url), headers={}, timeout=timeout, max_bytes=offer.size_bytes
        )
        signature = download(
            model_url(server_url, offer.signature_url), headers={}, timeout=timeout,
            max_bytes=release.SIGNATURE_BYTES,
        )  # fmt: skip
    except urllib.error.HTTPError as exc:
        exc.close()
        raise UpdateError(f"could not download client {offer.version}: {exc}") from None
    except (OSError, ModelRejected) as exc:
        raise UpdateError(f"could not download client {offer.version}: {exc}") from None
    if len(wheel) != offer.size_bytes or hashlib.sha256(wheel).hexdigest() != offer.sha256:
        raise UpdateError(
            f"the downloaded client {offer.version} is not the file the server announced (size or sha256)"
        )
    try:
        release.verify(wheel, signature, public_key)
    except release.SignatureError as exc:
        raise UpdateError(f"refused client {offer.version} from the server: {exc}") from None
    path = folder / offer.filename
    path.write_bytes(wheel)
    return path


def pip_install(wheel: Path, *, timeout: float = PIP_TIMEOUT_S) -> None:
    """Install ``wheel`` into this interpreter's environment, from the file alone."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
               "--quiet", str(wheel)]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"installing {wheel.name} failed: {exc}") from None
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise UpdateError(f"installing {wheel.name} failed (pip exit {result.returncode}): {tail}")


def restart_argv() -> list[str]:
    """The command line this process was started with (``python [-m client_app | script] args``)."""
    return [sys.executable, *getattr(sys, "orig_argv", [sys.executable, *sys.argv])[1:]]


def offer_check(server_url: str, *, required: bool = False, current: str = __version__) -> Release | str:
    """The server's offer if it is newer than ``current``, else a line saying why there is nothing to do;
    UpdateError when ``required`` (the campaign refused this version) and the server has nothing newer."""
    offer = release_fetch(server_url)
    if not is_newer(offer, current):
        if required:
            raise UpdateError(
                f"the campaign needs a newer client, but the server offers {offer.version} (this is {current})"
            )
        return f"client {current} is up to date (the server offers {offer.version})"
    return offer


def install_and_restart(
    offer: Release,
    wheel: Path,
    *,
    install: Callable[[Path], None] = pip_install,
    restart: Callable[[Sequence[str]], object] | None = None,
    current: str = __version__,
) -> str:
    """Install a wheel ``fetch_verified`` returned and restart into it with the same command line (does
    not return then); UpdateError if the install fails (this client keeps running)."""
    install(wheel)
    argv = restart_argv()
    log.info("client %s installed; restarting with the same settings", offer.version)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if restart is None:
        os.environ[UPDATED_FROM_ENV] = current  # read once by the new process (``updated_from``)
        os.execv(argv[0], argv)
    restart(argv)
    return f"client {offer.version} installed"  # only when a test's restart returns


def update(
    server_url: str,
    *,
    required: bool = False,
    public_key: Ed25519PublicKey | None = None,
    install: Callable[[Path], None] = pip_install,
    restart: Callable[[Sequence[str]], object] | None = None,
    current: str = __version__,
) -> str:
    """Update to the server's newest client if it is newer; restart into it (does not return then).

    Returns a line saying why nothing was installed; UpdateError when an update was offered but could
    not be installed (this client keeps running). ``required``: the campaign refused this version.
    """
    offer = offer_check(server_url, required=required, current=current)
    if isinstance(offer, str):
        return offer
    log.info("updating the client from %s to %s (from %s)", current, offer.version, server_url)
    with tempfile.TemporaryDirectory(prefix="soulsai-update-") as folder:
        wheel = fetch_verified(server_url, offer, Path(folder), public_key=public_key)
        return install_and_restart(offer, wheel, install=install, restart=restart, current=current)


def updated_from() -> str | None:
    """The version this process replaced (set by ``update`` across the restart), once; None otherwise."""
    return os.environ.pop(UPDATED_FROM_ENV, None)
