"""While Redis is down, campaign and leaderboard pages show the last known figures with a note, not a 500.

A real ASGI server on a Redis of its own, which the test stops mid-way; the database stays up.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.utils import timezone

from harness.platform import EmbeddedRedis
from portal.campaigns.models import Campaign
from portal.leaderboards.models import Contribution
from portal.leaderboards.services import hour_start
from tests.conftest import start_asgi

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "these are the last known figures"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_pages_answer_with_the_last_known_figures_and_a_note_while_redis_is_down(
    cartpole_campaign, alice, tmp_path
):
    redis = EmbeddedRedis(tmp_path / "redis")
    server = start_asgi(tmp_path, name="web-own-redis", env={"REDIS_URL": redis.url})
    try:
        Campaign.objects.filter(pk=cartpole_campaign.pk).update(
            samples_total=123_456, mean_return_recent=42.5
        )
        Contribution.objects.create(
            campaign=cartpole_campaign, user=alice, hour=hour_start(timezone.now()), samples=777, episodes=3
        )
        slug = cartpole_campaign.slug
        status, page = _get(f"{server.url}/campaigns/{slug}/")
        assert status == 200 and NOTE not in page  # Redis up: no note

        redis.stop()
        status, page = _get(f"{server.url}/campaigns/{slug}/")
        assert status == 200, page[-2000:]
        assert "123,456" in page and "42.50" in page and NOTE in page
        for path in (f"/campaigns/{slug}/leaderboard/", "/leaderboard/"):
            status, page = _get(server.url + path)
            assert status == 200, (path, page[-2000:])
            assert "alice" in page and "777" in page and NOTE in page, path
        for path in ("/campaigns/", "/", f"/api/campaigns/{slug}/"):
            status, page = _get(server.url + path)
            assert status == 200, (path, page[-2000:])
        status, board = _get(f"{server.url}/api/campaigns/{slug}/leaderboard/")
        assert status == 200 and json.loads(board)["entries"][0]["username"] == "alice"
    finally:
        server.stop()
        redis.stop()


def test_a_login_while_redis_is_down_is_told_to_try_again_not_a_server_error(alice, password, tmp_path):
    """allauth counts login attempts in the cache, which lives in Redis: with Redis gone the login
    cannot be checked, and the volunteer gets a 503 page that says so (and Retry-After), not a 500."""
    redis = EmbeddedRedis(tmp_path / "redis")
    server = start_asgi(tmp_path, name="web-login-redis", env={"REDIS_URL": redis.url})
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        with opener.open(f"{server.url}/accounts/login/", timeout=20) as response:
            form = response.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        redis.stop()
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "login": "alice", "password": password}
        ).encode()
        request = urllib.request.Request(
            f"{server.url}/accounts/login/", data=body, headers={"Referer": f"{server.url}/accounts/login/"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(request, timeout=20)
        page = refused.value.read().decode()
        assert refused.value.code == 503, page[-2000:]
        assert refused.value.headers["Retry-After"] == "30"
        assert "Briefly unavailable" in page and "redis is briefly unreachable" in page
    finally:
        server.stop()
        redis.stop()
