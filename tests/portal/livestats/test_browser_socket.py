"""The browsers' websocket is open to anyone: it reads nothing, checks the Origin, caps sockets per address.

Against the real ASGI server (uvicorn, started as `make run` starts it), with real websockets.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from harness import answers_http, wait_for
from tests.conftest import start_asgi

pytestmark = pytest.mark.django_db(transaction=True)


def page_socket(server, slug: str, *, origin: str | None = "own", headers: dict[str, str] | None = None):
    """A socket as the campaign page opens it (with the page's own Origin unless told otherwise)."""
    return connect(
        f"{server.url.replace('http', 'ws', 1)}/ws/campaigns/{slug}/",
        origin=server.url if origin == "own" else origin,
        additional_headers=headers,
        open_timeout=10,
        max_size=None,
    )


def closed_with(ws) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "the server closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.fixture
def log_since(asgi_server):
    """The server's log written during the test."""
    start = len(asgi_server.output())
    return lambda: asgi_server.output()[start:]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(b"\x00" * 16, 1003, id="binary"),
        pytest.param('{"subscribe": "' + "x" * 2000 + '"}', 1009, id="a few KB of text"),
        pytest.param("[" * 200_000 + "]" * 200_000, 1009, id="deeply nested array"),
        pytest.param("x" * (16 * 1024 * 1024), 1009, id="16 MB, over the server's websocket cap"),
        pytest.param('{"type": "hi"}', 1008, id="small text"),
    ],
)
def test_anything_a_browser_sends_closes_its_socket_unread_and_the_server_stays_well(
    asgi_server, cartpole_campaign, log_since, frame, code
):
    with page_socket(asgi_server, cartpole_campaign.slug) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        try:
            ws.send(frame)
        except ConnectionClosed:
            pass  # the server closed while a frame over its cap was still being sent: what it should do
        assert closed_with(ws)[0] == code
    assert answers_http(asgi_server.url + "/healthz")
    assert "Traceback" not in log_since()


def test_a_flood_of_frames_is_closed_once_without_a_traceback(asgi_server, cartpole_campaign, log_since):
    """Frames already on the wire when the server closes must not make it close again (an ASGI error)."""
    with page_socket(asgi_server, cartpole_campaign.slug) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        try:
            for _ in range(2000):
                ws.send('{"type": "hi"}')
        except ConnectionClosed:
            pass  # the close came while the flood was still going out
        assert closed_with(ws)[0] == 1008
    wait_for(lambda: answers_http(asgi_server.url + "/healthz"), 10, "the server to answer /healthz")
    # The server logs the flood's frames as it drops them; give it until /healthz answers to write.
    assert "Traceback" not in log_since() and "Unexpected ASGI message" not in log_since()


def test_a_socket_from_another_sites_page_is_refused_and_the_sites_own_is_taken(
    asgi_server, cartpole_campaign
):
    for origin in ("https://evil.example", "null", f"http://127.0.0.1.evil.example:{asgi_server.port}", None):
        with pytest.raises(InvalidStatus) as refused:
            page_socket(asgi_server, cartpole_campaign.slug, origin=origin)
        assert refused.value.response.status_code == 403, origin
    for origin in (asgi_server.url, f"http://localhost:{asgi_server.port}"):
        with page_socket(asgi_server, cartpole_campaign.slug, origin=origin) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_one_address_holds_at_most_20_live_pages_and_a_closed_one_frees_its_seat(
    asgi_server, cartpole_campaign
):
    with ExitStack() as stack:
        pages = [stack.enter_context(page_socket(asgi_server, cartpole_campaign.slug)) for _ in range(20)]
        for ws in pages:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with page_socket(asgi_server, cartpole_campaign.slug) as extra:
            code, reason = closed_with(extra)
        assert code == 4429
        assert "too many live pages" in reason and "limit 20" in reason

        pages[0].close()

        def one_more_page_gets_in() -> bool:
            with page_socket(asgi_server, cartpole_campaign.slug) as ws:
                try:
                    return json.loads(ws.recv(timeout=10))["type"] == "hello"
                except ConnectionClosed:
                    return False

        assert wait_for(one_more_page_gets_in, 10, "a seat freed by a closed page", asgi_server)


@pytest.fixture
def proxied_server(tmp_path):
    """A server behind a proxy on loopback (SOULSAI_TRUSTED_PROXIES), with 2 pages per address."""
    server = start_asgi(
        tmp_path,
        name="uvicorn-proxied",
        env={"SOULSAI_TRUSTED_PROXIES": "127.0.0.1/32,10.0.0.0/8", "SOULSAI_WS_BROWSERS_PER_ADDRESS": "2"},
    )
    yield server
    server.stop()


@pytest.fixture
def holds():
    """``holds(server, slug, forwarded)``: whether a page with this X-Forwarded-For gets its hello
    (True) or a 4429 close (False); the pages that got in stay open until the test ends."""
    with ExitStack() as stack:

        def _holds(server, slug: str, forwarded: str) -> bool:
            ws = stack.enter_context(page_socket(server, slug, headers={"X-Forwarded-For": forwarded}))
            try:
                return json.loads(ws.recv(timeout=10))["type"] == "hello"
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 4429, exc
                return False

        yield _holds


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    asgi_server, proxied_server, cartpole_campaign, holds
):
    slug = cartpole_campaign.slug
    # Not a trusted proxy (the default: none): the header is a visitor's claim, every page is 127.0.0.1's.
    assert [holds(asgi_server, slug, f"203.0.113.{i}") for i in range(1, 22)] == [True] * 20 + [False]

    # Behind the trusted proxy: the nearest address that is not a trusted proxy is the visitor's.
    assert [holds(proxied_server, slug, "203.0.113.1") for _ in range(3)] == [True, True, False]
    assert holds(proxied_server, slug, "198.51.100.7, 10.1.2.3")  # through a second, trusted, proxy
    assert holds(proxied_server, slug, "203.0.113.1, 198.51.100.7")  # a visitor's claim, then the proxy's
    assert not holds(proxied_server, slug, "198.51.100.7")  # ... which made that address's 3rd page
    assert holds(proxied_server, slug, "2001:db8::1")
    assert holds(proxied_server, slug, "2001:db8::2")
    assert not holds(proxied_server, slug, "2001:db8::ffff")  # one /64: one subscriber


def test_pages_that_vanish_while_figures_are_pushed_give_their_seats_back(
    asgi_server, cartpole_campaign, redis_client, log_since
):
    """Tabs killed (their sockets reset) while the server pushes figures to them: each page's seat
    comes back, so the visitor's address is not locked out of live pages until the server restarts."""
    import socket
    import struct
    import threading

    from portal.core.clients import seats_key
    from portal.livestats.services import live_push

    key = seats_key("browser:addr", "127.0.0.1")
    stop = threading.Event()

    def push_figures() -> None:
        while not stop.is_set():
            live_push(campaign=cartpole_campaign, snapshot=None)

    pusher = threading.Thread(target=push_figures, daemon=True)
    pusher.start()
    try:
        for _ in range(3):
            with ExitStack() as stack:
                pages = [stack.enter_context(page_socket(asgi_server, cartpole_campaign.slug)) for _ in range(20)]
                for ws in pages:
                    assert json.loads(ws.recv(timeout=10))["type"] == "hello"
                for ws in pages:  # RST: the server's next send to each fails
                    ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    ws.socket.close()
            wait_for(lambda: redis_client.zcard(key) == 0, 20, "every vanished page's seat given back", asgi_server)
    finally:
        stop.set()
        pusher.join(timeout=10)
    with ExitStack() as stack:  # the address holds its 20 pages again
        for _ in range(20):
            ws = stack.enter_context(page_socket(asgi_server, cartpole_campaign.slug))
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    assert "Traceback" not in log_since()
