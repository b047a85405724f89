"""Notices reach every client of a campaign whichever ASGI process it is connected to."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import pytest

from client_app import protocol as P
from portal.campaigns.services import campaign_pause, campaign_resume
from portal.machines.services import token_create
from portal.relay import fanout
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


class _Listener:
    """What the fan-out needs of a connection (fanout.Listener): it records when its notice came."""

    def __init__(self, loop_times: list[float]) -> None:
        self.loop_times = loop_times
        self.notices: list[dict] = []

    async def on_notice(self, notice: dict) -> None:
        self.notices.append(notice)
        self.loop_times.append(asyncio.get_running_loop().time())


@pytest.mark.parametrize("clients", [3 * fanout.DISPATCH_BATCH + 1, 40 * fanout.DISPATCH_BATCH])
def test_a_notice_to_many_clients_is_spread_so_that_acks_get_through_meanwhile(clients):
    """A fan-out hands every client its notice once, in batches with pauses between them (another
    task, an ack, runs several times meanwhile), and within DISPATCH_SPREAD_S of pauses however
    many clients there are."""

    async def scenario():
        hub = fanout.Fanout()
        times: list[float] = []
        members = [_Listener(times) for _ in range(clients)]
        for member in members:
            hub.listeners[7].add(member)
        ticks: list[float] = []

        async def other_work():
            while True:
                ticks.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0.001)

        ticker = asyncio.get_running_loop().create_task(other_work())
        await asyncio.sleep(0)
        await hub.dispatch({"kind": fanout.STATUS, "campaign": 7, "status": "paused"})
        ticker.cancel()
        return members, times, ticks

    members, times, ticks = asyncio.run(scenario())
    assert all(m.notices == [{"kind": fanout.STATUS, "campaign": 7, "status": "paused"}] for m in members)
    batches = -(-clients // fanout.DISPATCH_BATCH)
    pause = min(fanout.DISPATCH_PAUSE_S, fanout.DISPATCH_SPREAD_S / (batches - 1))
    first, last = min(times), max(times)
    assert last - first >= (batches - 1) * pause * 0.99  # the pauses were taken...
    assert last - first >= 0.02
    assert sum(first < t < last for t in ticks) >= batches - 1  # ...and other work ran in them
    # ...but the whole fan-out stays within the spread (generous for a loaded test machine).
    assert last - first <= fanout.DISPATCH_SPREAD_S + 2.0


def test_coalescing_keeps_each_campaigns_newest_model_and_every_other_notice_in_order():
    notices = [
        {"kind": fanout.MODEL, "campaign": 1, "version": 4},
        {"kind": fanout.STATUS, "campaign": 1, "status": "paused"},
        {"kind": fanout.MODEL, "campaign": 2, "version": 9},
        {"kind": fanout.MODEL, "campaign": 1, "version": 6},
        {"kind": fanout.MODEL, "campaign": 1, "version": 5},  # older than what came before it
        {"kind": fanout.REVOKED, "campaign": 1, "machine": 3},
    ]
    assert fanout.coalesce(notices) == [
        {"kind": fanout.MODEL, "campaign": 1, "version": 6},
        {"kind": fanout.STATUS, "campaign": 1, "status": "paused"},
        {"kind": fanout.MODEL, "campaign": 2, "version": 9},
        {"kind": fanout.REVOKED, "campaign": 1, "machine": 3},
    ]


def test_models_published_faster_than_a_fan_out_spreads_reach_clients_newest_first_not_all(redis_server):
    """A learner publishing every few milliseconds to a process with many clients: the fan-out never
    falls behind (each client gets a few notices, the newest version last), and the newest arrives."""

    async def scenario():
        hub = fanout.Fanout()
        times: list[float] = []
        members = [_Listener(times) for _ in range(4 * fanout.DISPATCH_BATCH)]  # ~60 ms per fan-out
        for member in members[1:]:
            hub.listeners[7].add(member)
        await hub.join(7, members[0])  # starts the subscription
        assert hub.subscribed.is_set()
        for version in range(1, 41):
            model = P.ModelNotice(version=version, url=f"/models/{version}.safetensors", sha256="ab" * 32)
            await asyncio.to_thread(fanout.notice_publish, kind=fanout.MODEL, campaign_id=7, **model.to_map())
        deadline = asyncio.get_running_loop().time() + 20
        while any(not m.notices or m.notices[-1]["version"] < 40 for m in members):
            assert asyncio.get_running_loop().time() < deadline, "version 40 did not reach every client"
            await asyncio.sleep(0.01)
        hub._task.cancel()
        return members

    members = asyncio.run(scenario())
    for member in members:
        versions = [n["version"] for n in member.notices]
        assert versions == sorted(set(versions)) and versions[-1] == 40
        assert len(versions) < 20  # 40 published; the superseded ones were dropped
