"""The updater against a real local HTTP server: what it refuses before anything is installed."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_app import release, updater

WHEEL = b"PK fake wheel" * 50
NAME = "soulsai_client-9.0.0-py3-none-any.whl"


@pytest.fixture
def server():
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", files
    httpd.shutdown()
    httpd.server_close()


def offer(files, **changes):
    data = {
        "version": "9.0.0", "filename": NAME, "sha256": hashlib.sha256(WHEEL).hexdigest(),
        "size_bytes": len(WHEEL), "url": f"/download/{NAME}", "signature_url": f"/download/{NAME}.sig",
    }  # fmt: skip
    data.update(changes)
    files["/download/release.json"] = json.dumps(data).encode()
    files[f"/download/{NAME}"] = WHEEL


def attempt(url, key, installed):
    return updater.update(
        url, public_key=key.public_key(), install=installed.append, restart=lambda argv: None
    )


def test_only_a_correctly_signed_wheel_of_the_announced_hash_is_installed(server):
    url, files = server
    key = Ed25519PrivateKey.generate()
    installed: list = []
    offer(files, signature_url=None)
    with pytest.raises(updater.UpdateError, match="not signed yet"):
        attempt(url, key, installed)
    offer(files)
    files[f"/download/{NAME}.sig"] = release.sign(WHEEL, Ed25519PrivateKey.generate())
    with pytest.raises(updater.UpdateError, match="not a SoulsAI release"):
        attempt(url, key, installed)
    files[f"/download/{NAME}.sig"] = release.sign(WHEEL, key)
    offer(files, sha256="0" * 64)
    with pytest.raises(updater.UpdateError, match="not the file the server announced"):
        attempt(url, key, installed)
    assert installed == []
    offer(files)
    assert attempt(url, key, installed) == "client 9.0.0 installed"
    assert [p.name for p in installed] == [NAME]


def test_offers_that_are_not_a_client_wheel_or_not_newer_are_refused(server):
    url, files = server
    key = Ed25519PrivateKey.generate()
    installed: list = []
    offer(files, filename="../../evil.whl")
    with pytest.raises(updater.UpdateError, match="not a client wheel"):
        attempt(url, key, installed)
    offer(files, size_bytes=updater.MAX_WHEEL_BYTES + 1)
    with pytest.raises(updater.UpdateError, match="limit"):
        attempt(url, key, installed)
    offer(files, url="http://elsewhere.example/x.whl")
    files[f"/download/{NAME}.sig"] = release.sign(WHEEL, key)
    with pytest.raises(updater.UpdateError, match="only over http"):
        attempt(url, key, installed)
    offer(files, version="0.0.1")
    assert "up to date" in attempt(url, key, installed)
    with pytest.raises(updater.UpdateError, match="campaign needs a newer client"):
        updater.update(url, required=True, install=installed.append, restart=lambda argv: None)
    del files["/download/release.json"]
    with pytest.raises(updater.UpdateError, match="answered 404"):
        attempt(url, key, installed)
    assert installed == []


def test_a_signed_wheel_that_pip_cannot_install_leaves_this_client_as_it_is_and_says_why(server):
    """The real pip (this environment's), on a correctly signed file that is no wheel at all: the
    install fails, nothing restarts, and the error says what pip said."""
    url, files = server
    key = Ed25519PrivateKey.generate()
    offer(files)
    files[f"/download/{NAME}.sig"] = release.sign(WHEEL, key)
    restarted: list = []
    with pytest.raises(updater.UpdateError) as refused:
        updater.update(url, public_key=key.public_key(), restart=restarted.append)
    assert restarted == []
    said, _, pips_words = str(refused.value).partition("): ")
    assert said.startswith(f"installing {NAME} failed (pip exit ") and pips_words.strip(), str(refused.value)
