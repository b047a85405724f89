"""Notices reach every client of a campaign whichever ASGI process it is connected to."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from client_app import protocol as P
from portal.campaigns.services import campaign_pause, campaign_resume
from portal.machines.services import token_create
from tests.conftest import start_asgi
from tests.portal.relay.test_relay import open_session, publish_models

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def second_server(asgi_server, tmp_path):
    """A second uvicorn process beside the session's one, as behind a load balancer."""
    proc = start_asgi(tmp_path, name="uvicorn-2")
    yield proc
    proc.stop()


def test_one_publish_reaches_clients_on_two_asgi_processes(asgi_server, second_server, campaign, token, volunteer):
    # Two machines with a connection on each process (a token holds at most 2: SOULSAI_WS_CLIENTS_PER_TOKEN).
    other = token_create(user=volunteer, campaign=campaign, name="rig-2")
    with ExitStack() as stack:
        sockets = []
        for server, raw in ((asgi_server, token[1]), (second_server, token[1]), (asgi_server, other[1]),
                            (second_server, other[1])):
            ws, welcome = stack.enter_context(open_session(server, raw))
            assert welcome["type"] == P.WELCOME
            sockets.append(ws)

        publish_models(campaign, 1)  # one Redis PUBLISH, no channel-layer send
        for ws in sockets:
            notice = P.unpack(ws.recv(timeout=10))
            assert notice["type"] == P.MODEL and notice["version"] == 1

        campaign_pause(campaign=campaign)
        for ws in sockets:
            notice = P.unpack(ws.recv(timeout=10))
            assert notice["type"] == P.STATUS and notice["status"] == "paused"
        campaign_resume(campaign=campaign)
        for ws in sockets:
            assert P.unpack(ws.recv(timeout=10))["status"] == "running"
