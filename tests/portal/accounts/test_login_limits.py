"""Logins hold across processes: failed logins are counted in Redis (not per process), the admin
login is the site's rate-limited login, staff can add a second factor, production verifies email.

Against real uvicorn processes (two where it matters) sharing the test database and Redis.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from harness import ROOT
from tests.conftest import start_asgi
from tests.portal.live_http import LiveBrowser, form_errors

pytestmark = pytest.mark.django_db(transaction=True)

TOO_MANY = "Too many failed login attempts"
SITE = "localhost"  # the one host name both processes are reached by, as behind a load balancer


@pytest.fixture
def second_server(asgi_server, tmp_path):
    """A second uvicorn process beside the session's one, as behind a load balancer."""
    proc = start_asgi(tmp_path, name="uvicorn-2")
    yield proc
    proc.stop()


def fail_logins(browser: LiveBrowser, login: str, times: int, path: str = "/accounts/login/") -> None:
    for _ in range(times):
        page = browser.post(path, {"login": login, "password": "not-the-password"})
        assert page.path.startswith("/accounts/login/"), page.url


def logged_in(browser: LiveBrowser) -> bool:
    return browser.get("/accounts/profile/").path == "/accounts/profile/"


def test_failed_logins_are_counted_across_processes(asgi_server, second_server, alice, password):
    fail_logins(LiveBrowser(asgi_server.url, host=SITE), "alice", 5)

    elsewhere = LiveBrowser(second_server.url, host=SITE)  # another process, another visitor's cookies
    page = elsewhere.post("/accounts/login/", {"login": "alice", "password": password})
    assert TOO_MANY in form_errors(page.text), form_errors(page.text)[:1500]
    assert not logged_in(elsewhere)


def test_the_admin_login_is_the_sites_rate_limited_login(asgi_server, second_server, staff, password):
    browser = LiveBrowser(asgi_server.url, host=SITE)
    assert browser.get("/admin/").path == "/accounts/login/"
    # The admin's own login form checks no password any more: a POST to it is sent to the site's login.
    page = browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": password})
    assert page.path == "/accounts/login/" and not logged_in(browser)

    fail_logins(browser, "admin", 5, path="/accounts/login/?next=/admin/")
    elsewhere = LiveBrowser(second_server.url, host=SITE)
    page = elsewhere.post("/accounts/login/?next=/admin/", {"login": "admin", "password": password})
    assert TOO_MANY in form_errors(page.text)
    assert elsewhere.get("/admin/").path == "/accounts/login/"


def test_a_volunteer_logged_in_is_still_no_admin(asgi_server, alice, password):
    browser = LiveBrowser(asgi_server.url, host=SITE)
    browser.post("/accounts/login/?next=/admin/", {"login": "alice", "password": password})
    assert logged_in(browser)
    assert browser.get("/admin/").status == 403


def test_staff_can_log_in_with_a_second_factor(asgi_server, second_server, staff, password):
    from allauth.mfa.totp.internal.auth import (
        TOTP,
        format_hotp_value,
        generate_totp_secret,
        hotp_value,
        yield_hotp_counters_from_time,
    )

    # Staff are offered two-factor login where they work.
    browser = LiveBrowser(asgi_server.url, host=SITE)
    browser.login_as(staff)
    assert "/accounts/2fa/" in browser.get("/staff/").text
    assert "/accounts/2fa/" in browser.get("/accounts/profile/").text
    setup = browser.get("/accounts/2fa/")
    assert setup.status == 200 and "Authenticator App" in setup.text

    secret = generate_totp_secret()
    TOTP.activate(staff, secret)
    browser = LiveBrowser(asgi_server.url, host=SITE)
    page = browser.post("/accounts/login/?next=/admin/", {"login": "admin", "password": password})
    assert page.path == "/accounts/2fa/authenticate/"
    assert browser.get("/admin/").path != "/admin/"  # the password alone is not enough

    wrong = browser.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.path == "/accounts/2fa/authenticate/" and "Incorrect code" in form_errors(wrong.text)
    counters = list(yield_hotp_counters_from_time())
    code = format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))
    page = browser.post("/accounts/2fa/authenticate/", {"code": code})
    assert page.path == "/admin/" and page.status == 200

    # The same code is used up in every process (it is kept in the shared cache).
    replay = LiveBrowser(second_server.url, host=SITE)
    replay.post("/accounts/login/?next=/admin/", {"login": "admin", "password": password})
    again = replay.post("/accounts/2fa/authenticate/", {"code": code})
    assert again.path == "/accounts/2fa/authenticate/"
    assert replay.get("/admin/").path != "/admin/"


def _settings_value(name: str, **env: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    base = {k: v for k, v in os.environ.items() if k not in ("SOULSAI_ENV", "ACCOUNT_EMAIL_VERIFICATION")}
    base.update(DJANGO_SETTINGS_MODULE="portal.settings", **env)
    out = subprocess.run([sys.executable, "-c", code], env=base, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_production_makes_email_verification_mandatory_unless_told_otherwise(tmp_path):
    from django.conf import settings

    production = {
        "SOULSAI_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "soulsai.example.org",
        "REDIS_URL": settings.REDIS_URL,
        "SOULSAI_VAR_DIR": str(tmp_path),
    }
    assert _settings_value("ACCOUNT_EMAIL_VERIFICATION", **production) == "mandatory"
    assert _settings_value("ACCOUNT_EMAIL_VERIFICATION", **production, ACCOUNT_EMAIL_VERIFICATION="optional") == "optional"
    assert _settings_value("ACCOUNT_EMAIL_VERIFICATION", SOULSAI_VAR_DIR=str(tmp_path)) == "none"
