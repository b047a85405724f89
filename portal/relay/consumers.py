"""The websocket clients connect to: token at connect, hello, then chunks (docs/protocol.md).

A thin interface: messages are the typed values of client_app.protocol (the shared contract, which
also validates chunks), storage, rate limits and rejection counting live in portal.relay.services
(over the scripts of portal.relay.store), evaluation results in portal.relay.evaluation, and the ORM
work in the apps' services and selectors. Notices (model published, status changed, token revoked)
arrive through this process's one Redis subscription (portal.relay.fanout), not the Channels layer;
experience never rides either.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from client_app import protocol as P
from client_app.protocol.codes import CLOSE_TOO_MANY, CLOSE_TRY_AGAIN
from portal.campaigns.models import Campaign
from portal.campaigns.selectors import campaign_status_get
from portal.core.clients import Seats, address_bucket, scope_address, seats_key, send_unless_gone
from portal.core.logs import context_set
from portal.core.redis import get_async_redis
from portal.machines.models import MachineToken
from portal.machines.services import token_authenticate, token_record_client
from portal.metrics import relay as metrics
from portal.relay import evaluation, fanout, selectors, services
from portal.relay.store import StoreOutcome

log = logging.getLogger(__name__)

TAKES_EXPERIENCE = (Campaign.Status.RUNNING, Campaign.Status.PAUSED)

# Redis or PostgreSQL unreachable (restarting, loading its append-only file, failing over): nothing of
# the frame is stored (a store is one script: all or nothing), so the client keeps it and sends it
# again (docs/protocol.md). A new connection is closed with CLOSE_TRY_AGAIN, which clients retry.
DEPENDENCY_DOWN = (RedisConnectionError, RedisTimeoutError, OperationalError, InterfaceError)
DEPENDENCY_WAIT_MS = 1000


def _bearer_token(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text.lower().startswith("bearer "):
                return text[7:].strip()
    return ""


@functools.lru_cache(maxsize=16)
def _model_frame(notice: P.ModelNotice) -> bytes:
    """A model notice is the same bytes for every client: pack it once per process, not 1,000 times."""
    return P.pack(notice.to_wire())


STATUS_MESSAGES = {
    "running": "The campaign is running again.",
    "paused": "The campaign is paused by its staff (the window and the campaign page say why); your client waits and keeps its data.",
    "stopped": "The campaign has been stopped. Thank you for contributing!",
}


class Wait(enum.Enum):
    """How long a refusal asks the client to hold off (``wait_ms``)."""

    COUNTED = "counted"  # refused for good: counted against the machine, which may flag it
    FLAG = "flag"  # kept by the client: only a flagged machine's extra hold
    NEXT_SECOND = "next_second"  # kept: until the next one-second rate window (plus the flag hold)
    QUEUE_FULL = "queue_full"  # kept: services.FULL_WAIT_MS (plus the flag hold)


@dataclass(frozen=True)
class Refusal:
    """The reject that answers a store outcome: its reason code, message and wait rule.

    The message is a template over ``version`` (the refused item's model version), ``current`` (the
    campaign's, as " (current: N)" where the script reports it, else "") and ``lag`` (the
    campaign's max_policy_lag).
    """

    code: str
    text: str
    wait: Wait


# Every store outcome that is not an ack, for chunks and evaluation results alike (REVOKED is fatal
# instead: the connection closes).
REFUSALS: dict[StoreOutcome, Refusal] = {
    StoreOutcome.NOT_RUNNING: Refusal(P.R_NOT_RUNNING, "the campaign is not running", Wait.FLAG),
    StoreOutcome.RATE_LIMITED: Refusal(
        P.R_RATE_LIMITED,
        "too many chunks per second from this machine; keep the chunk and send it again later",
        Wait.NEXT_SECOND,
    ),
    StoreOutcome.FULL: Refusal(
        P.R_RATE_LIMITED,
        "the campaign's learner is far behind and its queue is full; keep the chunk and send it again later",
        Wait.QUEUE_FULL,
    ),
    StoreOutcome.NOT_REQUESTED: Refusal(
        P.R_NOT_REQUESTED,
        "no evaluation episode of model version {version} was handed to this machine (or all were "
        "answered): the result is dropped and counted nowhere",
        Wait.COUNTED,
    ),
    StoreOutcome.UNKNOWN_MODEL: Refusal(P.R_MODEL_VERSION, "model version {version} does not exist{current}", Wait.COUNTED),
    StoreOutcome.STALE_MODEL: Refusal(
        P.R_MODEL_VERSION,
        "model version {version} is too old: this campaign takes experience of the last {lag} versions "
        "before the current {current_version}",
        Wait.COUNTED,
    ),
}


def _wait_ms(rule: Wait, extra_ms: int) -> int | None:
    """``wait_ms`` of a refusal; None: the rejection is recorded first, and that decides."""
    if rule is Wait.COUNTED:
        return None
    if rule is Wait.NEXT_SECOND:
        return services.rate_wait_ms() + extra_ms
    if rule is Wait.QUEUE_FULL:
        return services.FULL_WAIT_MS + extra_ms
    return extra_ms


class ClientConsumer(AsyncWebsocketConsumer):
    # Client connections stay off the Channels layer (no channel, no receive loop per client):
    # their notices come through portal.relay.fanout. The layer stays configured for browsers.
    channel_layer_alias = None

    token: MachineToken | None = None
    campaign: Campaign | None = None
    joined: bool = False
    frame_gate: services.FrameGate | None = None  # made at the first frame
    counted: bool = False  # in the connected-clients gauge (portal.metrics.relay)
    seats: Seats | None = None  # the live-connection caps it is counted against (from on_connect)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' own loop (await_many_dispatch) makes a task and an asyncio.wait per message, for
        # several sources; with the layer off there is one, the websocket, read directly here.
        self.scope = scope
        self.channel_layer = None
        # A client that has left (killed, its socket reset) is no error: nothing more is sent, and its
        # disconnect (or the finally below) gives its seats back.
        self.base_send = send_unless_gone(send, self.mark_closing)
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # Whatever ended the connection (a send to a socket the client just closed raises out of
            # a handler, and then no websocket.disconnect is dispatched): give its seats back. A seat
            # left in this process's registry would be refreshed forever, and two of them lock the
            # machine's token out of every reconnect ("already has 2 open connections").
            await self.release_everything()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections() in the one thread-sensitive executor before *every*
        # message, which serialises all connections of the process through one thread (34% of the
        # relay's CPU and multi-second acks with 1,000 clients, bench/relay.py). Every database call
        # here goes through database_sync_to_async, which closes stale connections itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        try:
            await self.on_connect()
        except DEPENDENCY_DOWN as exc:
            await self.try_again(exc)

    async def try_again(self, exc: Exception) -> None:
        """A dependency is down: close (not fatal) so that the client reconnects after its back-off."""
        log.warning("relay: a dependency is unreachable (%s: %s); the client retries", type(exc).__name__, exc)
        self.closing = True
        try:
            await self.seats.release()
        except DEPENDENCY_DOWN:
            pass  # the seats lapse on their own (portal.core.clients)
        await self.close(code=CLOSE_TRY_AGAIN, reason="the server's store is unreachable for a moment; retrying")

    async def on_connect(self) -> None:
        self.greeted = False
        self.closing = False
        self.model_sent = 0
        self.status_sent: str | None = None
        self.client_version = ""  # as the hello said
        self.release_sent = ""  # the newest client version this client was told of
        self.seats = Seats()
        await self.accept()
        self.counted = True
        metrics.client_connected()
        # Seats are counted before the token costs a database query (portal.core.clients).
        limit = settings.SOULSAI_WS_CLIENTS_PER_ADDRESS
        address = address_bucket(scope_address(self.scope))
        if not await self.seats.take(seats_key("client:addr", address), limit):
            await self.too_many(f"too many client connections from your address (limit {limit}); retrying later")
            return
        token = await database_sync_to_async(token_authenticate)(raw=_bearer_token(self.scope))
        if token is None:
            await self.fatal(
                P.R_AUTH,
                "The server does not know this machine token, or it was revoked. "
                "Join the campaign on the portal to get a new one.",
                P.CLOSE_AUTH,
            )
            return
        self.token, self.campaign = token, token.campaign
        # Every later line of this connection's task names them (portal.core.logs): once, not per frame.
        context_set(campaign=token.campaign.id, campaign_slug=token.campaign.slug, machine=token.id, user=token.user_id)
        limit = settings.SOULSAI_WS_CLIENTS_PER_TOKEN
        if not await self.seats.take(seats_key("client:token", token.id), limit):
            self.token = None  # nothing it sends now is read
            await self.too_many(
                f"this machine token already has {limit} open connections: is the client running twice?"
            )

    def mark_closing(self) -> None:
        self.closing = True

    async def too_many(self, reason: str) -> None:
        """Not fatal: a bare close (4429) that every client retries after its back-off."""
        self.closing = True
        await self.seats.release()
        await self.close(code=CLOSE_TOO_MANY, reason=reason)

    async def disconnect(self, code: int) -> None:
        if self.greeted:
            log.info("relay: machine %s left (close code %s)", self.token.prefix, code)
            try:
                released = await evaluation.eval_release(
                    client=get_async_redis(), campaign_id=self.campaign.id, machine_id=self.token.id
                )
            except DEPENDENCY_DOWN:
                released = 0  # Redis away: the learner's evaluation timeout covers these episodes
            if released:
                log.info("relay: %s evaluation episode(s) of machine %s handed out again", released, self.token.prefix)
        await self.release_everything()

    async def release_everything(self) -> None:
        """The connection's seats, gauge and fan-out membership, given back once (idempotent)."""
        if self.counted:
            self.counted = False
            metrics.client_disconnected()
        try:
            if self.seats is not None:
                await self.seats.release()
        except DEPENDENCY_DOWN:
            pass  # Redis away: the seats' leases lapse on their own (portal.core.clients)
        if self.joined:
            fanout.get_fanout().leave(self.campaign.id, self)
            self.joined = False

    async def fatal(self, code: str, message: str, close_code: int) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send_message(P.Error(code=code, message=message))
        await self.close(code=close_code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.token is None or self.closing:
            return  # refused; the close is on its way
        metrics.frame_started()
        try:
            await self.on_frame(text_data, bytes_data, time.perf_counter())
        finally:
            metrics.frame_done()

    async def on_frame(self, text_data: str | None, bytes_data: bytes | None, received: float) -> None:
        gate = self.frame_gate
        if gate is None:
            gate = self.frame_gate = services.FrameGate(
                rate=settings.SOULSAI_CONN_FRAMES_PER_S, limit=settings.SOULSAI_CONN_BAD_FRAMES
            )
        # The connection's budget comes first, before any decoding: a frame over its rate is not read.
        if not gate.admit():
            if await self.bad_frame(gate):
                await self.reject(
                    None, P.R_RATE_LIMITED,
                    "too many frames per second on this connection: this one was not read; send it again later",
                    wait_ms=services.rate_wait_ms(),
                )
            return
        try:
            message = P.unpack(bytes_data if bytes_data is not None else text_data, client=True)
        except P.ProtocolError as exc:
            if not self.greeted:
                await self.fatal(exc.code, f"bad handshake: {exc.message}", P.CLOSE_PROTOCOL)
            elif await self.bad_frame(gate):
                await self.reject(None, exc.code, exc.message)
            return
        kind = message["type"]
        try:
            if not self.greeted:
                if kind != P.HELLO:
                    await self.fatal(
                        P.R_SCHEMA, f"the first message must be '{P.HELLO}', got {kind!r}", P.CLOSE_PROTOCOL
                    )
                    return
                await self.on_hello(P.Hello.from_wire(message))
            elif kind == P.CHUNK:
                await self.on_chunk(message, received)
            elif kind == P.EVAL:
                await self.on_eval(message)
            elif await self.bad_frame(gate):
                chunk_id = message.get("id") if isinstance(message.get("id"), str) else None
                await self.reject(chunk_id, P.R_SCHEMA, f"unknown message type {kind!r}")
        except DEPENDENCY_DOWN as exc:
            item_id = message.get("id") if isinstance(message.get("id"), str) else None
            if kind in (P.CHUNK, P.EVAL) and self.greeted and item_id:
                log.warning("relay: a dependency is unreachable (%s: %s); chunk refused for now", type(exc).__name__, exc)
                await self.reject(
                    item_id, P.R_RATE_LIMITED,
                    "the server cannot reach its store for a moment: nothing of this chunk was stored; "
                    "keep it and send it again later",
                    wait_ms=DEPENDENCY_WAIT_MS,
                )  # fmt: skip
            else:
                await self.try_again(exc)
        except Exception:
            # Nothing of an unacked chunk counts as stored; the client reconnects (1011 is not fatal)
            # and resends it, and the store script's de-duplication keeps that exactly-once.
            log.exception("relay: unexpected error on a %r message from machine %s", kind, self.token.prefix)
            await self.send_message(
                P.Error(
                    code=P.R_SERVER,
                    message="The server hit an unexpected error; "
                    "your client reconnects and resends what was not acknowledged.",
                )
            )
            await self.close(code=P.CLOSE_SERVER_ERROR)

    async def bad_frame(self, gate: services.FrameGate) -> bool:
        """Count a bad frame: slow the connection down, close it at the limit. True: answer it."""
        bad = gate.strike()
        if gate.exhausted:
            await self.fatal(
                P.R_ABUSE,
                f"This connection sent {bad} frames within a minute that could not be read or came faster "
                "than its limit; the server closes it. Check the client (or its version) before reconnecting.",
                P.CLOSE_PROTOCOL,
            )
            return False
        if gate.slow_s:
            await asyncio.sleep(gate.slow_s)  # this connection only: its next frames wait in its socket
        return True

    async def on_hello(self, hello: P.Hello) -> None:
        campaign = self.campaign
        client_version = hello.client_version
        if hello.protocol != P.PROTOCOL_VERSION:
            await self.fatal(
                P.R_UPGRADE,
                f"This client (version {client_version}) speaks protocol {hello.protocol!r}; the server speaks "
                f"protocol {P.PROTOCOL_VERSION}. Download the current client from {selectors.download_page()} "
                "on the portal and install it.",
                P.CLOSE_UPGRADE,
            )
            return
        # The relay's own minimum (0.2.0: clients that stamp 'made') and the campaign's: the larger wins.
        minimum = max(settings.SOULSAI_MIN_CLIENT_VERSION, campaign.min_client_version, key=P.parse_version)
        if P.version_older(client_version, minimum):
            await self.fatal(
                P.R_UPGRADE,
                f"Campaign '{campaign.name}' needs SoulsAI client {minimum} or newer; "
                f"this one is {client_version}. Download the current client from {selectors.download_page()} "
                "on the portal, install it, and start it again: your unsent data is kept.",
                P.CLOSE_UPGRADE,
            )
            return
        status = await database_sync_to_async(campaign_status_get)(campaign_id=campaign.id)
        if status not in TAKES_EXPERIENCE:
            await self.fatal(
                P.R_CLOSED,
                f"Campaign '{campaign.name}' is {status} and takes no experience. Pick a running campaign on the portal.",
                P.CLOSE_CLOSED,
            )
            return
        await database_sync_to_async(token_record_client)(
            token_id=self.token.id, client_version=client_version, reported_name=hello.machine
        )
        redis = get_async_redis()
        await services.machine_seen(client=redis, campaign_id=campaign.id, machine_id=self.token.id)
        self.schema = selectors.chunk_schema_for(campaign=campaign)
        # Join, then read model and status from Redis (where changes land before their notice is
        # published): a change made in between reaches this client either way.
        await fanout.get_fanout().join(campaign.id, self)
        self.joined = True
        # The roll-out gate's best checkpoint while the newest evaluated one is held back, else the newest.
        model = await services.welcome_model(
            client=redis, campaign_id=campaign.id, max_policy_lag=campaign.max_policy_lag
        )
        status = await services.current_status(client=redis, campaign_id=campaign.id) or status
        if status not in TAKES_EXPERIENCE:
            await self.fatal(P.R_CLOSED, f"Campaign '{campaign.name}' is {status} and takes no experience.", P.CLOSE_CLOSED)
            return
        self.model_sent = model.version if model else 0
        self.status_sent = status
        self.greeted = True
        log.info(
            "relay: machine %s joined with client %s from %s", self.token.prefix, client_version, scope_address(self.scope)
        )
        await self.send_message(selectors.welcome_build(campaign=campaign, token=self.token, status=status, model=model))
        self.client_version = client_version
        # A newer signed client (one GET): the client updates at its next chunk's end (client_app.updater).
        await self.send_release(await services.client_release(client=redis))

    async def on_chunk(self, message: dict[str, Any], received: float) -> None:
        campaign = self.campaign
        chunk_id = message.get("id") if isinstance(message.get("id"), str) else None
        try:
            chunk = P.decode_chunk(message, schema=self.schema, now=time.time())
        except P.ProtocolError as exc:
            await self.reject(chunk_id, exc.code, exc.message)
            return
        redis = get_async_redis()
        result = await services.chunk_store(
            client=redis,
            campaign_id=campaign.id,
            machine_id=self.token.id,
            frame=P.pack(chunk.to_wire()),  # what was validated, never the frame as it came
            chunk=chunk,
            max_policy_lag=campaign.max_policy_lag,
        )
        if result.outcome is StoreOutcome.REVOKED:
            await self.revoked()
            return
        extra_ms = services.flag_wait_ms(result.flagged)
        if not result.acked:
            await self.refuse(
                chunk.id, result.outcome, extra_ms=extra_ms, version=chunk.model_version,
                current=f" (current: {result.model_version})", current_version=result.model_version,
            )
            return
        await self.send_message(
            P.Ack(
                id=chunk.id,
                duplicate=result.outcome is StoreOutcome.DUPLICATE,
                model_version=result.model_version,
                wait_ms=result.wait_ms + extra_ms,
                # The learner asks for greedy episodes of a checkpoint: this client plays one next.
                evaluate=result.eval_notice,
            )
        )
        metrics.chunk_acked(
            duplicate=result.outcome is StoreOutcome.DUPLICATE, seconds=time.perf_counter() - received
        )
        # Piggyback: a client that missed a notice learns of the new model from its next ack. The
        # process's fan-out usually holds that notice already, which saves a round trip per client.
        if result.model_version > self.model_sent:
            model = fanout.get_fanout().latest_model(campaign.id)
            if model is None or model.version < result.model_version:
                try:
                    model = await services.current_model(client=redis, campaign_id=campaign.id)
                except DEPENDENCY_DOWN:
                    return  # the chunk is acked; the notice comes with a later ack
            if model:
                await self.send_model(model)

    async def on_eval(self, message: dict[str, Any]) -> None:
        """A greedy evaluation episode's result: through the chunks' gate, taken only for an episode
        handed to this machine, recorded once per id, acked like a chunk."""
        result_id = message.get("id") if isinstance(message.get("id"), str) else None
        try:
            result = P.decode_eval(message, bounds=self.schema.bounds, now=time.time(), action_n=self.schema.action_n)
        except P.ProtocolError as exc:
            await self.reject(result_id, exc.code, exc.message)
            return
        outcome, flagged = await evaluation.eval_store(
            client=get_async_redis(), campaign_id=self.campaign.id, machine_id=self.token.id, result=result,
            rate_limit=settings.SOULSAI_RATE_CHUNKS_PER_S, flagged_rate_limit=settings.SOULSAI_FLAG_RATE_CHUNKS_PER_S,
        )
        if outcome is StoreOutcome.REVOKED:
            await self.revoked()
            return
        extra_ms = services.flag_wait_ms(flagged)
        if not outcome.acked:
            # The evaluation script does not report the campaign's current version.
            await self.refuse(result.id, outcome, extra_ms=extra_ms, version=result.model_version, current="")
            return
        if outcome is StoreOutcome.STORED and result.trace is not None:
            await evaluation.replay_keep(campaign=self.campaign, result=result)  # before the ack: then listed
        await self.send_message(P.Ack(id=result.id, duplicate=outcome is StoreOutcome.DUPLICATE, wait_ms=extra_ms))

    async def refuse(self, item_id: str, outcome: StoreOutcome, *, extra_ms: int, **template: Any) -> None:
        """Answer a store outcome that is not an ack with its row of REFUSALS."""
        refusal = REFUSALS[outcome]
        text = refusal.text.format(lag=self.campaign.max_policy_lag, **template)
        await self.reject(item_id, refusal.code, text, wait_ms=_wait_ms(refusal.wait, extra_ms))

    async def reject(self, chunk_id: str | None, code: str, text: str, *, wait_ms: int | None = None) -> None:
        """Refuse one chunk; the connection stays usable. Counts it against the machine unless the
        refusal is about the campaign or the rate (then ``wait_ms`` is given)."""
        if wait_ms is None:
            record = await services.rejection_record(
                client=get_async_redis(), campaign_id=self.campaign.id, machine_id=self.token.id, code=code
            )
            wait_ms = services.flag_wait_ms(record.flagged)
        metrics.refused(code)
        await self.send_message(P.Reject(id=chunk_id, code=code, message=text, wait_ms=wait_ms))

    async def revoked(self) -> None:
        await self.fatal(
            P.R_AUTH,
            "This machine token was revoked on the portal. Join the campaign again to get a new one.",
            P.CLOSE_AUTH,
        )

    async def send_model(self, model: P.ModelNotice) -> None:
        if model.version > self.model_sent:
            self.model_sent = model.version
            await self.send(bytes_data=_model_frame(model))

    async def send_status(self, status: str) -> None:
        if status == self.status_sent:
            return  # a re-announcement after the fan-out resubscribed: nothing new
        self.status_sent = status
        await self.send_message(P.Status(status=status, message=STATUS_MESSAGES.get(status, status)))
        if status == Campaign.Status.STOPPED:
            self.closing = True
            await self.close(code=1000)

    async def send_release(self, version: str | None) -> None:
        if version and P.version_older(self.client_version, version) and version != self.release_sent:
            self.release_sent = version
            await self.send_message(P.ReleaseNotice(version=version))

    async def min_client_raised(self, minimum: str) -> None:
        """The campaign now needs ``minimum``: an older client is closed as it would be refused at hello."""
        if P.version_older(self.client_version, minimum):
            await self.fatal(
                P.R_UPGRADE,
                f"Campaign '{self.campaign.name}' now needs SoulsAI client {minimum} or newer; this one is "
                f"{self.client_version}. Download the current client from {selectors.download_page()} on the "
                "portal, install it, and start it again: your unsent data is kept.",
                P.CLOSE_UPGRADE,
            )

    async def send_message(
        self, message: P.Welcome | P.Ack | P.Reject | P.Status | P.Error | P.ReleaseNotice
    ) -> None:
        await self.send(bytes_data=P.pack(message.to_wire()))

    # Notices from portal.relay.fanout (one Redis subscription per process).

    async def on_notice(self, notice: dict[str, Any]) -> None:
        if not self.greeted or self.closing:
            return
        kind = notice.get("kind")
        if kind == fanout.MODEL:
            await self.send_model(P.ModelNotice.from_wire(notice))
        elif kind == fanout.STATUS:
            await self.send_status(notice["status"])
        elif kind == fanout.REVOKED and notice.get("machine") == self.token.id:
            await self.revoked()
        elif kind == fanout.RELEASE:
            await self.send_release(str(notice.get("version") or ""))
        elif kind == fanout.MIN_CLIENT:
            await self.min_client_raised(str(notice.get("version") or ""))
