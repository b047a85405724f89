"""Shared fixtures: a real Redis (embedded, or REDIS_URL's) and real databases, never mocks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from django.conf import settings


def pytest_configure(config):
    # The client's saved settings (client_app.userconfig) must not leak in from the developer's own
    # ~/.config, nor the SOULSAI_SERVER / SOULSAI_TOKEN of their shell: tests and the clients they
    # start get an empty config folder of their own.
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="soulsai-test-config-")
    os.environ.pop("SOULSAI_SERVER", None)
    os.environ.pop("SOULSAI_TOKEN", None)


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    """Start the embedded Redis server once per test session, unless REDIS_URL names a server."""
    if not settings.EMBEDDED_REDIS:
        yield settings.REDIS_URL
        return
    from portal.core.embedded import start_embedded_redis, stop_process

    proc = start_embedded_redis(port=settings.EMBEDDED_REDIS_PORT, data_dir=Path(settings.VAR_DIR) / "redis")
    yield settings.REDIS_URL
    stop_process(proc)


@pytest.fixture(autouse=True)
def _clean_redis(redis_server):
    """Every test starts with an empty Redis database (the suite owns the database it is given)."""
    from portal.core.redis import get_redis

    get_redis().flushdb()
    yield


@pytest.fixture
def redis_client():
    from portal.core.redis import get_redis

    return get_redis()


@pytest.fixture
def cartpole_campaign(db):
    """A running CartPole-v1 DQN campaign."""
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync

    campaign = campaign_create(slug="cartpole-test", name="CartPole test", env_id="CartPole-v1")
    campaign = campaign_launch(campaign=campaign)
    # Inside a test's transaction on_commit hooks never fire: put the status into Redis directly.
    campaign_redis_sync(campaign=campaign)
    return campaign


# ---------------------------------------------------------------------------------------------------
# Real processes on loopback (the shared harness): the ASGI server, a Celery worker and clients,
# sharing the test database.

import json  # noqa: E402
import urllib.request  # noqa: E402

import harness  # noqa: E402
from harness import ROOT, LiveProcess, free_port, wait_for  # noqa: E402, F401  (tests import them from here)

#: A small, quick DQN for tests that need a learner to publish models and checkpoints within seconds.
FAST_DQN = {
    "learning_starts": 256,
    "batch_size": 32,
    "hidden": [64, 64],
    "publish_every_updates": 10,
    "publish_min_seconds": 0.5,
    "checkpoint_every_versions": 2,
    "eps_decay_samples": 2000,
}


def _database_url() -> str:
    from django.db import connection

    d = connection.settings_dict
    if d["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{d['NAME']}"
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def process_env() -> dict[str, str]:
    """The environment of a process a test starts: same Redis, the test database, test settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings_test",
        DATABASE_URL=_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    return env


def start_asgi(log_dir: Path, *, name: str = "uvicorn", env: dict[str, str] | None = None) -> harness.AsgiServer:
    """A real uvicorn process on a free loopback port, once it answers HTTP (``.url``, ``.ws_url``).

    ``env`` adds to process_env(), e.g. a relay setting that one test needs.
    """
    return harness.start_asgi(log_dir, env={**process_env(), **(env or {})}, name=name)


@pytest.fixture(scope="session")
def asgi_server(redis_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """The real ASGI server (uvicorn) on a loopback port; its base URL is ``asgi_server.url``."""
    proc = start_asgi(tmp_path_factory.mktemp("live"))
    yield proc
    proc.stop()


def start_client(server_url: str, token: str, spool: Path, log_dir: Path, *args: str, name: str = "client") -> LiveProcess:
    """The real client (``python -m client_app run``) as a volunteer runs it, on the test settings."""
    return harness.start_client(server_url, token, spool, log_dir, *args, env=process_env(), name=name)


def api_get(server: LiveProcess, path: str) -> dict:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.loads(response.read())


def start_celery_worker(log_dir: Path, name: str = "celery") -> LiveProcess:
    """A real Celery worker on the learner and default queues, with beat embedded (-B), on the test settings."""
    return harness.start_celery_worker(log_dir, env=process_env(), name=name)


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    proc = start_celery_worker(tmp_path)
    yield proc
    proc.stop()


@pytest.fixture
def sftp_server(tmp_path_factory):
    """A real SFTP server of its own (Debian's sshd, harness/sftp.py): the network storage engine.
    With CI set, a missing sshd fails the test instead of skipping it."""
    from harness.sftp import sshd_missing, start_sftp_server

    missing = sshd_missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    server = start_sftp_server(tmp_path_factory.mktemp("sftp"))
    yield server
    server.stop()
