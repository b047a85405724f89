"""Production settings: `manage.py check --deploy` is clean, and unsafe settings stop the start.

Each case runs the real `manage.py` in its own process with SOULSAI_ENV=production, as a deployment
starts it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from harness import ROOT


def _manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")}
    base.update(
        SOULSAI_ENV="production",
        SOULSAI_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="soulsai.example.org",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://soulsai.example.org",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_under_production_settings_has_no_warnings(tmp_path):
    done = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_https_settings_come_from_the_environment(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)"
    )
    done = _manage(
        tmp_path, "shell", "-c", code,
        DJANGO_SECURE_HSTS_SECONDS="600", DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "600 False ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_debug_is_refused_in_production(tmp_path):
    done = _manage(tmp_path, "check", DJANGO_DEBUG="1")
    assert done.returncode != 0
    assert "DJANGO_DEBUG must not be on when SOULSAI_ENV=production" in done.stderr


def test_a_weak_secret_key_is_refused_in_production(tmp_path):
    for weak in ("change-me", "a" * 80, "django-insecure-" + secrets.token_urlsafe(50)):
        done = _manage(tmp_path, "check", DJANGO_SECRET_KEY=weak)
        assert done.returncode != 0, weak
        assert "DJANGO_SECRET_KEY is too weak for production" in done.stderr, weak
