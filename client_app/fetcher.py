"""Download published models over HTTP in a background thread, so neither the env loop nor the
websocket ever waits for weights.

Model notices (``client_app.protocol.ModelNotice``: from the welcome, from ``model`` messages, from
an ack's ``evaluate``) only say which version exists, where and with which sha256. The fetcher keeps just the newest notice it has not loaded yet: when several
arrive during one download, the versions in between are skipped. A loaded policy waits in
``take()`` until the env loop swaps it in between two steps.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from client_app import __version__
from client_app.policy import Policy
from client_app.protocol import ModelNotice

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 256 * 1024 * 1024

__all__ = ["MAX_MODEL_BYTES", "ModelFetcher", "ModelNotice", "ModelRejected", "download"]


class ModelRejected(Exception):
    """A downloaded model that must not be played (bad checksum, wrong architecture, bad file)."""


def download(
    url: str, *, headers: dict[str, str], timeout: float = 60.0, max_bytes: int = MAX_MODEL_BYTES
) -> bytes:
    """GET ``url`` and return the body, refusing bodies over ``max_bytes``."""
    request = urllib.request.Request(url, headers={"User-Agent": f"soulsai-client/{__version__}", **headers})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        if length is not None and int(length) > max_bytes:
            raise ModelRejected(f"model of {length} bytes is over the {max_bytes}-byte limit")
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelRejected(f"model is over the {max_bytes}-byte limit")
    return data


class ModelFetcher:
    """Fetches the newest notified model in a daemon thread; thread-safe.

    ``check`` is called on every loaded policy and returns a reason to refuse it (e.g. a network that
    does not fit the env's spaces) or None.
    """

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        check: Callable[[Policy], str | None] | None = None,
        timeout: float = 60.0,
        retry_delays: tuple[float, float] = (2.0, 30.0),
    ):
        self.server_url = server_url
        self.token = token
        self.check = check
        self.timeout = timeout
        self.retry_delays = retry_delays
        self._cond = threading.Condition()
        self._wanted: ModelNotice | None = None  # newest notice not fetched yet
        self._busy_version = 0  # version being downloaded now
        self._ready: Policy | None = None  # loaded, waiting for the env loop
        self._stopping = False
        self.loaded_version = 0  # newest version loaded successfully
        self.failures = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="soulsai-model-fetcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def request(self, notice: ModelNotice) -> None:
        """Ask for a model version; ignored unless newer than anything loaded, loading or wanted."""
        with self._cond:
            newest = max(self.loaded_version, self._busy_version, self._wanted.version if self._wanted else 0)
            if notice.version > newest:
                self._wanted = notice
                self._cond.notify_all()

    def take(self) -> Policy | None:
        """The newest loaded policy not taken yet, or None."""
        with self._cond:
            policy, self._ready = self._ready, None
            return policy

    def _resolve(self, url: str) -> tuple[str, dict[str, str]]:
        full = urllib.parse.urljoin(self.server_url, url)
        same_origin = urllib.parse.urlsplit(full)[:2] == urllib.parse.urlsplit(self.server_url)[:2]
        # Never hand the machine token to another host (a CDN, a mirror).
        return full, ({"Authorization": f"Bearer {self.token}"} if same_origin else {})

    def fetch(self, notice: ModelNotice) -> Policy:
        """Download, verify and load one model (in the calling thread)."""
        url, headers = self._resolve(notice.url)
        data = download(url, headers=headers, timeout=self.timeout)
        digest = hashlib.sha256(data).hexdigest()
        if digest != notice.sha256:
            raise ModelRejected(
                f"model v{notice.version} from {url} has sha256 {digest}, expected {notice.sha256}"
            )
        try:
            policy = Policy.from_bytes(data)
        except Exception as exc:  # a bad file must never take the client down
            raise ModelRejected(f"model v{notice.version} cannot be loaded: {exc}") from None
        if policy.version != notice.version:
            log.warning(
                "model file says version %s, the server's notice %s: using the notice's",
                policy.version,
                notice.version,
            )
            policy.version = notice.version
        reason = self.check(policy) if self.check else None
        if reason:
            raise ModelRejected(f"model v{notice.version} does not fit this campaign: {reason}")
        return policy

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while self._wanted is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                notice, self._wanted = self._wanted, None
                self._busy_version = notice.version
            try:
                policy = self.fetch(notice)
            except ModelRejected as exc:
                self._fail(str(exc))
                attempt = 0
                continue
            except (OSError, ValueError, urllib.error.URLError) as exc:
                # The server or the network hiccupped: retry this version unless a newer one comes.
                attempt += 1
                delay = min(self.retry_delays[1], self.retry_delays[0] * 2 ** (attempt - 1))
                self._fail(f"could not download model v{notice.version} ({exc}); retrying in {delay:.0f} s")
                with self._cond:
                    if self._wanted is None:
                        self._wanted = notice
                    self._cond.wait_for(
                        lambda n=notice: self._stopping or self._wanted is not n, timeout=delay
                    )
                continue
            attempt = 0
            with self._cond:
                self._busy_version = 0
                if policy.version > self.loaded_version:
                    self.loaded_version = policy.version
                    self._ready = policy
            log.debug("model v%s downloaded", policy.version)

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        with self._cond:
            self._busy_version = 0
            self.failures += 1
            self.last_error = message
