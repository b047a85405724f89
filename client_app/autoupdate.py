"""A running client hears of a newer release and gets it ready without stopping play.

The relay sends a ``release`` notice when the portal offers a newer signed client: at hello, and to
every connected client when the maintainers' signature is stored (portal.relay.fanout). The notice is
only a hint: what to install comes from ``/download/release.json`` and is installed only if the
release key signed it (client_app.updater).

On a notice, a background thread reads the offer, downloads the wheel and checks its size, sha256 and
signature while the env loop keeps playing. Then:

- ``restart_to_update`` (the command line with auto-update on): ``ready`` holds the verified wheel;
  the runner ends the run at its current chunk's end with the spool on disk, and the command line
  installs it and restarts with the same settings (``updater.install_and_restart``);
- otherwise (``--no-auto-update``, the window): ``note`` says a newer client is available.

A refused wheel (bad signature, wrong sha256, a download that failed) leaves the run going and says
why once; the same version is not tried again in this process.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client_app import __version__, updater
from client_app.protocol import ReleaseNotice, parse_version

log = logging.getLogger(__name__)

# Versions this process was offered already: a refused wheel is not fetched again after a reconnect
# (the relay repeats its notice at every hello), nor after a failed install the command line survived.
_offered: set[str] = set()


class UpdateWatcher:
    """Takes ``release`` notices (connection thread) and verifies the offer in its own thread."""

    def __init__(
        self,
        server_url: str,
        *,
        restart_to_update: bool,
        say: Callable[[str], None],
        current: str = __version__,
        public_key: Ed25519PublicKey | None = None,
    ):
        self.server_url = server_url
        self.restart_to_update = restart_to_update
        self.say = say
        self.current = current
        self.public_key = public_key  # only tests pass one: the built-in release key otherwise
        self.note: str | None = None  # for the progress line and the window
        self.ready: tuple[updater.Release, Path] | None = None  # a verified wheel, to install
        self._offers: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._folder: str | None = None
        self._thread: threading.Thread | None = None

    def offered(self, notice: ReleaseNotice) -> None:
        """A ``release`` notice (called in the connection thread: only queues it)."""
        version = notice.version
        if parse_version(version) <= parse_version(self.current) or version in _offered:
            return
        _offered.add(version)
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="soulsai-update", daemon=True)
            self._thread.start()
        self._offers.put(version)

    def stop(self) -> None:
        """End the thread; a verified wheel nobody took is deleted."""
        if self._thread is not None:
            self._offers.put(None)
            self._thread.join(timeout=5.0)
        if self.ready is None and self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def release_files(self) -> None:
        """Delete the downloaded wheel (after the install, or when it failed)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _main(self) -> None:
        while True:
            version = self._offers.get()
            if version is None or self.ready is not None:
                return
            if not self.restart_to_update:
                self.note = f"client {version} is available (this is {self.current})"
                self.say(
                    f"a newer client is available: {version} (this is {self.current}); automatic updates "
                    f"are off: install it from {self.server_url.rstrip('/')}/download/ and restart"
                )
                continue
            try:
                self._prepare()
            except updater.UpdateError as exc:
                self.release_files()
                self.note = f"update refused: {exc}"
                self.say(f"not updated, going on with client {self.current}: {exc}")
            except Exception as exc:  # a bug here must never stop the run
                log.exception("checking the offered client failed")
                self.say(f"not updated, going on with client {self.current}: {type(exc).__name__}: {exc}")

    def _prepare(self) -> None:
        offer = updater.offer_check(self.server_url, current=self.current)
        if isinstance(offer, str):
            return  # the notice was ahead of the server's files (or it was not for us)
        _offered.add(offer.version)
        self.say(f"client {offer.version} is offered (this is {self.current}): checking its signature")
        self._folder = tempfile.mkdtemp(prefix="soulsai-update-")
        wheel = updater.fetch_verified(self.server_url, offer, Path(self._folder), public_key=self.public_key)
        self.note = f"client {offer.version} verified: restarting into it at the end of this chunk"
        self.ready = (offer, wheel)
        self.say(f"client {offer.version} is signed by the release key: installing it at the end of this chunk")
