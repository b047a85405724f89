"""The websocket session and the model fetcher, each on its own, over real loopback sockets."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from client_app import protocol as P
from client_app.connection import Connection, http_url, websocket_url
from client_app.fetcher import ModelFetcher, ModelNotice
from client_app.spool import Spool
from harness import wait_for
from tests.client_app.conftest import cartpole_model


def wait_until(predicate, timeout=10.0):
    return wait_for(predicate, timeout, "the session or fetcher to get there", interval=0.01)


def chunk_frame(chunk_id: str) -> bytes:
    chunk = P.Chunk(
        id=chunk_id,
        model_version=0,
        obs=np.zeros((3, 4), dtype=np.float32),
        actions=np.array([0, 1], dtype=np.int64),
        rewards=np.ones(2, dtype=np.float32),
    )
    return P.pack(chunk.to_message())


@pytest.mark.parametrize(
    ("server", "ws"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/client/"),
        ("https://soulsai.example.org/", "wss://soulsai.example.org/ws/client/"),
        ("https://example.org/soulsai", "wss://example.org/soulsai/ws/client/"),
    ],
)
def test_server_urls_map_to_the_websocket_endpoint(server, ws):
    assert websocket_url(server) == ws
    assert http_url(server).startswith(server.rstrip("/"))


@pytest.mark.parametrize("bad", ["soulsai.example.org", "ftp://example.org", "http://", "http://host:port"])
def test_bad_server_urls_are_refused_readably(bad):
    with pytest.raises(ValueError, match="--server"):
        websocket_url(bad)


def test_back_pressure_holds_the_next_chunk(relay, tmp_path):
    relay.wait_ms = 3000  # long enough that a loaded machine's polling cannot outlast it
    connection = Connection(server_url=relay.url, token="sai_x_y", machine="test")
    connection.start()
    try:
        assert connection.wait_for_welcome(10) is not None
        spool = Spool(tmp_path)
        spool.add("s-0", chunk_frame("s-0"))
        connection.attach_spool(spool)
        assert wait_until(lambda: len(spool) == 0)
        assert connection.snapshot().hold_s > 1.0

        spool.add("s-1", chunk_frame("s-1"))
        connection.wake()
        time.sleep(0.3)
        assert [r.chunk.id for r in relay.received] == ["s-0"]  # held back by the server's wait_ms
        assert wait_until(lambda: len(spool) == 0)
        state = connection.snapshot()
        assert (state.sent, state.acked, state.rejected, state.connected) == (2, 2, 0, True)
    finally:
        connection.stop()


def test_a_rejected_chunk_is_dropped_and_counted(relay, tmp_path):
    connection = Connection(server_url=relay.url, token="sai_x_y", machine="test")
    connection.start()
    try:
        connection.wait_for_welcome(10)
        spool = Spool(tmp_path)
        bad = P.Chunk(
            id="bad-0",
            model_version=0,
            obs=np.zeros((2, 4), np.float32),
            actions=np.array([7]),
            rewards=np.zeros(1, np.float32),
        )  # action 7 of 2
        spool.add("bad-0", P.pack(bad.to_message()))
        spool.add("good-1", chunk_frame("good-1"))
        connection.attach_spool(spool)
        assert wait_until(lambda: len(spool) == 0)
        assert connection.snapshot().rejected == 1 and list(relay.stored) == ["good-1"]
        assert relay.rejects[0]["code"] == P.R_OUT_OF_RANGE
    finally:
        connection.stop()


class ModelServer:
    """Published models over plain HTTP (``http.server`` in a thread), slow enough to overlap notices."""

    def __init__(self, files: dict[str, bytes], delay: float = 0.3):
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests.append((self.path, self.headers.get("Authorization")))
                time.sleep(delay)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def models():
    files = {f"/models/{v}.safetensors": cartpole_model(v, seed=v) for v in (3, 4, 5)}
    server = ModelServer(files)
    yield server, files
    server.close()


def notice(server, files, version, sha256=None):
    path = f"/models/{version}.safetensors"
    return ModelNotice(version, server.url + path, sha256 or hashlib.sha256(files[path]).hexdigest())


def test_only_the_newest_of_several_notices_is_fetched(models):
    server, files = models
    fetcher = ModelFetcher(server_url=server.url, token="sai_secret")
    fetcher.start()
    try:
        fetcher.request(notice(server, files, 3))
        assert wait_until(lambda: len(server.requests) == 1)
        fetcher.request(notice(server, files, 4))  # both arrive while v3 downloads
        fetcher.request(notice(server, files, 5))
        fetcher.request(ModelNotice(2, server.url + "/models/2.safetensors", "0" * 64))  # older: ignored
        assert wait_until(lambda: fetcher.loaded_version == 5)
        assert [path for path, _ in server.requests] == ["/models/3.safetensors", "/models/5.safetensors"]
        # Models come from the portal itself, with its token; other hosts are refused (test_fetcher.py).
        assert all(auth == "Bearer sai_secret" for _, auth in server.requests)
        policy = fetcher.take()
        assert policy.version == 5 and fetcher.take() is None
        assert policy.act(np.zeros(4, np.float32), np.random.default_rng(0)) in (0, 1)
    finally:
        fetcher.stop()


def test_a_model_that_fails_its_checks_is_not_loaded(models):
    server, files = models
    fetcher = ModelFetcher(
        server_url=server.url, token="sai_secret", check=lambda p: "wrong size" if p.version == 4 else None
    )
    fetcher.start()
    try:
        fetcher.request(notice(server, files, 3, sha256="f" * 64))
        assert wait_until(lambda: fetcher.failures == 1)
        assert "sha256" in fetcher.last_error and fetcher.take() is None
        fetcher.request(notice(server, files, 4))
        assert wait_until(lambda: fetcher.failures == 2)
        assert "wrong size" in fetcher.last_error and fetcher.loaded_version == 0
        assert server.requests[-1][1] == "Bearer sai_secret"  # same origin as the portal: token sent
    finally:
        fetcher.stop()


def test_a_frame_without_made_gets_its_spooling_time_and_any_other_is_sent_as_it_is():
    """What client 0.1.0 left in a spool: a chunk or an eval result without 'made' (the real client
    against the real relay: tests/portal/relay/test_made_required.py)."""
    from client_app.connection import stamp_made

    result = P.EvalResult(id="e-1", model_version=1, episode_return=9.0, episode_length=9, made=None).to_wire()
    assert "made" not in result
    assert P.unpack(stamp_made(P.pack(result), 1_700_000_000)) == {**result, "made": 1_700_000_000}
    current = P.pack({**result, "made": 1_800_000_000})
    assert stamp_made(current, 1_700_000_000) is current  # a current client's frame is never rewritten
    assert stamp_made(b"\xc1 not msgpack", 1_700_000_000) == b"\xc1 not msgpack"  # the relay answers it
    assert stamp_made(P.pack(result), None) == P.pack(result)  # the file is gone: nothing to stamp
