"""The relay through a PostgreSQL outage: a new client is told to try again later (1013) while the
database is down, and is welcomed again within a few seconds of its return, however long it was down.

A private PostgreSQL server (harness.postgres) under a real uvicorn process, so that the server can be
crashed and started again as a data host's would be.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from harness.platform import EmbeddedRedis, start_asgi
from harness.postgres import postgres_missing, start_postgres
from harness.processes import ROOT

pytestmark = pytest.mark.own_servers

SETUP = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user("volunteer", "v@example.com", "pw-12345678")
campaign = campaign_launch(campaign=campaign_create(slug="outage", name="Outage", env_id="CartPole-v1"))
print("TOKEN " + token_create(user=user, campaign=campaign, name="m1")[1])
"""

# Long enough that psycopg_pool's own doubling back-off (1, 2, 4, 8, 16 s) would have its next try
# ten seconds after the server is back; the relay must not wait for it.
OUTAGE_S = 20
BACK_WITHIN_S = 6  # the pool's wait for a connection is 3 s; one retry about a second


def probe(ws_url: str, token: str) -> str:
    """One new client connection: "welcome", or how it was refused ("close 1013")."""
    from websockets.asyncio.client import connect

    from client_app import __version__
    from client_app import protocol as P

    async def once() -> str:
        try:
            async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"},
                               open_timeout=10) as ws:  # fmt: skip
                await ws.send(P.pack(P.hello(client_version=__version__, machine="probe")))
                reply = P.unpack(await asyncio.wait_for(ws.recv(), 10))
                return "welcome" if reply["type"] == P.WELCOME else f"{reply['type']}:{reply.get('code')}"
        except Exception as exc:  # noqa: BLE001 - the refusal is the answer
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            return f"close {code}" if code else type(exc).__name__

    return asyncio.run(once())


@pytest.fixture
def platform(tmp_path):
    missing = postgres_missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    pg = start_postgres(listen=["127.0.0.1"], trust=["127.0.0.1/32"])
    redis = EmbeddedRedis(tmp_path / "redis")
    server = None
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": pg.url(),
            "REDIS_URL": redis.url,
            "SOULSAI_VAR_DIR": str(tmp_path / "var"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        done = subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr
        token = done.stdout.split("TOKEN ", 1)[1].strip()
        server = start_asgi(tmp_path, env=env, name="relay")
        yield pg, server, token
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        pg.stop()


def test_a_new_client_is_told_to_retry_while_postgres_is_down_and_welcomed_soon_after_it_returns(platform):
    pg, server, token = platform
    assert probe(server.ws_url, token) == "welcome"

    pg.crash()
    down_at = time.monotonic()
    # While it is down, a new client hears 1013 (it retries) rather than an error or a hang; asked
    # several times across the outage, so that the pool's back-off grows as it would in production.
    while time.monotonic() - down_at < OUTAGE_S:
        assert probe(server.ws_url, token) == "close 1013"
    pg.start()
    back_at = time.monotonic()

    answers = []
    while time.monotonic() - back_at < 30:  # bounded: a broken pool would never welcome again
        answers.append(probe(server.ws_url, token))
        if answers[-1] == "welcome":
            break
    welcomed_after = time.monotonic() - back_at
    assert answers[-1] == "welcome", answers
    assert welcomed_after <= BACK_WITHIN_S, (
        f"PostgreSQL was back for {welcomed_after:.1f} s before a new client was welcomed: {answers}"
    )
