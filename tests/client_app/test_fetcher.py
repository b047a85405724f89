"""Model URLs come from the server, which may be hostile: only its own origin, never a redirect.

Real HTTP servers on loopback (``http.server`` in threads): the portal, and another host on another
port that a model URL or a redirect points to. The second must never see the machine token.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client_app.evaluation import Evaluations
from client_app.fetcher import ModelFetcher, ModelNotice
from harness import wait_for
from tests.client_app.conftest import cartpole_model

TOKEN = "sai_abc123def456_secret"
MODEL = cartpole_model(3)
SHA = hashlib.sha256(MODEL).hexdigest()
PATH = "/campaigns/cartpole-demo/models/3.safetensors"


class Host:
    """A real HTTP server: ``routes`` maps a path to (status, extra headers, body); records requests."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]):
        self.routes = routes
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests.append((self.path, self.headers.get("Authorization")))
                status, headers, body = outer.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hosts():
    """(portal, elsewhere): the portal serves PATH; elsewhere serves the same file at the same path."""
    elsewhere = Host({PATH: (200, {}, MODEL)})
    portal = Host({PATH: (200, {}, MODEL)})
    yield portal, elsewhere
    portal.close()
    elsewhere.close()


def wait_until(predicate):
    return wait_for(predicate, 10, "the fetcher to get there", interval=0.01)


def fetched(portal: Host, url: str) -> ModelFetcher:
    """A fetcher for ``portal`` asked for model v3 at ``url``, once it loaded or refused it."""
    fetcher = ModelFetcher(server_url=portal.url + "/", token=TOKEN)
    fetcher.start()
    fetcher.request(ModelNotice(3, url, SHA))
    wait_until(lambda: fetcher.loaded_version == 3 or fetcher.failures)
    fetcher.stop()
    return fetcher


def test_a_relative_or_same_origin_url_is_downloaded_with_the_token(hosts):
    portal, elsewhere = hosts
    for url in (PATH, portal.url + PATH, portal.url.replace("http:", "HTTP:") + PATH):
        fetcher = fetched(portal, url)
        assert fetcher.loaded_version == 3 and fetcher.take().version == 3
    assert portal.requests == [(PATH, f"Bearer {TOKEN}")] * 3 and not elsewhere.requests


def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home(hosts):
    portal, elsewhere = hosts
    portal.routes[PATH] = (302, {"Location": elsewhere.url + PATH}, b"")
    fetcher = fetched(portal, PATH)
    assert elsewhere.requests == [] and not any(auth for _, auth in elsewhere.requests)
    assert fetcher.loaded_version == 0 and fetcher.take() is None
    assert "redirected the model download (302)" in fetcher.last_error
    assert portal.requests == [(PATH, f"Bearer {TOKEN}")]


def test_a_redirect_on_the_same_host_is_refused_too(hosts):
    portal, _ = hosts
    portal.routes["/old"] = (301, {"Location": PATH}, b"")
    fetcher = fetched(portal, "/old")
    assert fetcher.loaded_version == 0 and "without redirects" in fetcher.last_error
    assert portal.requests == [("/old", f"Bearer {TOKEN}")]


def test_urls_off_the_servers_origin_are_refused_before_any_request(hosts, tmp_path):
    portal, elsewhere = hosts
    on_disk = tmp_path / "3.safetensors"
    on_disk.write_bytes(MODEL)  # the right bytes and sha256: only the scheme is wrong
    port = portal.url.rsplit(":", 1)[1]
    for url in (
        on_disk.as_uri(),  # file:///...
        "file:///etc/hostname",
        elsewhere.url + PATH,  # another port
        f"http://localhost:{port}{PATH}",  # another host name for the same machine
        f"https://127.0.0.1:{port}{PATH}",  # another scheme
        f"http://127.0.0.1:{port}@{elsewhere.url[7:]}{PATH}",  # userinfo: the host is elsewhere
        "//" + elsewhere.url[7:] + PATH,  # scheme-relative
        "ftp://127.0.0.1/model",
        "data:application/octet-stream;base64,AAAA",
    ):
        fetcher = fetched(portal, url)
        assert fetcher.loaded_version == 0 and fetcher.take() is None, url
        assert "refused the model URL" in fetcher.last_error, url
        assert f"from the server itself ({portal.url}/)" in fetcher.last_error
    assert portal.requests == [] and elsewhere.requests == []


def test_an_evaluation_request_for_a_foreign_url_is_refused(hosts):
    portal, elsewhere = hosts
    evaluations = Evaluations(server_url=portal.url + "/", token=TOKEN, spool=lambda *a, **k: True)
    evaluations.start()
    try:
        evaluations.asked(ModelNotice(3, elsewhere.url + PATH, SHA))
        wait_until(lambda: evaluations.fetcher.failures)
        assert "refused the model URL" in evaluations.fetcher.last_error
        assert evaluations.next_episode() is None
    finally:
        evaluations.stop()
    assert elsewhere.requests == []
