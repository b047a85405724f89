"""Download published models over HTTP in a background thread, so neither the env loop nor the
websocket ever waits for weights.

Model notices (``client_app.protocol.ModelNotice``: from the welcome, from ``model`` messages, from
an ack's ``evaluate``) only say which version exists, where and with which sha256. The fetcher keeps just the newest notice it has not loaded yet: when several
arrive during one download, the versions in between are skipped. A loaded policy waits in
``take()`` until the env loop swaps it in between two steps.

A model URL comes from the server, which may be hostile: it is accepted only as http(s) on the
server's own origin (scheme, host and port of ``--server``; a relative URL is resolved against it),
and downloaded without following redirects, so the machine token goes nowhere else (urllib would
carry it across a redirect to another host) and no other scheme (``file://``) is ever opened.
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

__all__ = ["MAX_MODEL_BYTES", "ModelFetcher", "ModelNotice", "ModelRejected", "download", "model_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ModelRejected(Exception):
    """A model that must not be played (bad URL, redirect, checksum, architecture or weights, bad file)."""


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL (ws(s) counts as http(s)); None for any other URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
        port = parts.port
    except ValueError:  # a port that is not a number
        return None
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def model_url(server_url: str, url: str) -> str:
    """The absolute URL of a model the server named, refused (ModelRejected) unless it is http(s) on
    the server's own origin. A relative URL (the portal sends paths) is resolved against the server's."""
    full = urllib.parse.urljoin(server_url, str(url))
    shown = full if len(full) <= 200 else full[:197] + "..."
    if _origin(full) is None or _origin(full) != _origin(server_url):
        raise ModelRejected(
            f"refused the model URL {shown!r}: models are downloaded only over http(s) from the server "
            f"itself ({urllib.parse.urljoin(server_url, '/')})"
        )
    return full


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError: the machine token never follows one to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def download(
    url: str, *, headers: dict[str, str], timeout: float = 60.0, max_bytes: int = MAX_MODEL_BYTES
) -> bytes:
    """GET ``url`` (http(s) only, redirects refused) and return the body, refusing bodies over ``max_bytes``."""
    if _origin(url) is None or urllib.parse.urlsplit(url).scheme not in _DEFAULT_PORTS:
        raise ModelRejected(f"refused to download {url[:200]!r}: only http(s) URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": f"soulsai-client/{__version__}"})
    for name, value in headers.items():
        request.add_unredirected_header(name, value)  # belt and braces: never carried across a redirect
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            exc.close()
            location = str(exc.headers.get("Location", ""))[:200]
            raise ModelRejected(
                f"the server redirected the model download ({exc.code}) to {location!r}: "
                "models are downloaded only from the server itself, without redirects"
            ) from None
        raise
    with response:
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
        """Ask for a model version; ignored unless newer than anything loaded, loading or wanted.

        A notice whose URL is not on the server's own origin is refused here (and counted as a
        failure), before it can replace a good one.
        """
        try:
            model_url(self.server_url, notice.url)
        except ModelRejected as exc:
            self._fail(f"model v{notice.version}: {exc}", downloading=False)
            return
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

    def fetch(self, notice: ModelNotice) -> Policy:
        """Download, verify and load one model (in the calling thread)."""
        url = model_url(self.server_url, notice.url)  # the server's own origin: the token may go there
        data = download(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout)
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

    def _fail(self, message: str, *, downloading: bool = True) -> None:
        log.warning("%s", message)
        with self._cond:
            if downloading:
                self._busy_version = 0
            self.failures += 1
            self.last_error = message
