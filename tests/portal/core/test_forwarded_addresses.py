"""Behind a proxy, the client's address comes from the forwarded header only when the peer is a
trusted proxy (SOULSAI_TRUSTED_PROXIES); the HTTP rate limits count per that address.

Against the real ASGI server (uvicorn, started as `make run` starts it).
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import start_asgi


def _failed_logins(server, forwarded_for: list[str]) -> list[bool]:
    """POST a wrong password to the login page once per X-Forwarded-For value (each for a different
    username, so that only the per-address limit can apply); whether each was refused by the limit."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(server.url + "/accounts/login/", timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    limited = []
    for i, forwarded in enumerate(forwarded_for):
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": csrf, "login": f"nobody{i}", "password": "wrong"}
        )
        request = urllib.request.Request(
            server.url + "/accounts/login/",
            data=body.encode(),
            headers={"X-Forwarded-For": forwarded, "Referer": server.url + "/accounts/login/"},
        )
        try:
            text = opener.open(request, timeout=10).read().decode()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode()
        limited.append("Too many failed login attempts" in text)
    return limited


@pytest.fixture
def fresh_server(tmp_path):
    server = start_asgi(tmp_path, name="uvicorn-direct")
    yield server
    server.stop()


@pytest.fixture
def proxied_server(tmp_path):
    server = start_asgi(tmp_path, name="uvicorn-proxied", env={"SOULSAI_TRUSTED_PROXIES": "127.0.0.1"})
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_login_rate_limits_count_per_client_address_and_a_forged_header_does_not_reset_them(
    fresh_server, proxied_server
):
    spoofed = [f"203.0.113.{i}" for i in range(1, 31)]
    # Straight from the visitor: the header is ignored, all 30 attempts come from one address.
    assert any(_failed_logins(fresh_server, spoofed))
    # Behind a trusted proxy: 30 different visitors, each under the per-address limit.
    assert not any(_failed_logins(proxied_server, spoofed))
