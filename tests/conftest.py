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
# Real processes on loopback: the ASGI server and a Celery worker, sharing the test database.

import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class LiveProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def start_asgi(log_dir: Path, *, name: str = "uvicorn", env: dict[str, str] | None = None) -> LiveProcess:
    """A real uvicorn process on a free loopback port, once it answers HTTP (``.url``, ``.ws_url``).

    ``env`` adds to process_env(), e.g. a relay setting that one test needs.
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = LiveProcess(
        name,
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--no-access-log"],
        {**process_env(), **(env or {})},
        log_dir,
    )
    proc.url = f"http://127.0.0.1:{port}"
    proc.ws_url = f"ws://127.0.0.1:{port}/ws/client/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(proc.url + "/admin/login/", timeout=2):
                break
        except OSError:
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                proc.stop()
                raise RuntimeError(f"{name} did not start:\n" + proc.output()) from None
            time.sleep(0.2)
    return proc


@pytest.fixture(scope="session")
def asgi_server(redis_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """The real ASGI server (uvicorn) on a loopback port; its base URL is ``asgi_server.url``."""
    proc = start_asgi(tmp_path_factory.mktemp("live"))
    yield proc
    proc.stop()


def start_client(server_url: str, token: str, spool: Path, log_dir: Path, *args: str, name: str = "client") -> LiveProcess:
    """The real client (``python -m client_app run``) as a volunteer runs it."""
    return LiveProcess(
        name,
        [sys.executable, "-m", "client_app", "run", "--server", server_url, "--token", token,
         "--spool-dir", str(spool), *args],
        process_env(),
        log_dir,
    )


def wait_for(predicate, timeout: float, what: str, *procs: LiveProcess, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy and return its value; on time-out, fail with the
    named processes' latest output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    logs = "\n\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def api_get(server: LiveProcess, path: str) -> dict:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.loads(response.read())


def start_celery_worker(log_dir: Path, name: str = "celery") -> LiveProcess:
    """A real Celery worker on the learner and default queues, with beat embedded (-B)."""
    return LiveProcess(
        name,
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-B", "-Q", "learner,celery", "-P", "threads",
         "-c", "4", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
         "-s", str(log_dir / f"{name}-beat-schedule")],
        process_env(),
        log_dir,
    )


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    proc = start_celery_worker(tmp_path)
    yield proc
    proc.stop()
