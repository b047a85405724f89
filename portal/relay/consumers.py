"""The websocket clients connect to: token at connect, hello, then chunks (docs/protocol.md).

A thin interface: decoding and validation live in client_app.protocol (the shared contract), storage,
rate limits and rejection counting in portal.relay.services. Notices (model published, status
changed, token revoked) arrive through this process's one Redis subscription (portal.relay.fanout),
not the Channels layer; experience never rides either.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import NoReverseMatch, reverse

from client_app import protocol as P
from client_app.spaces import normalize_spec
from portal.campaigns.models import Campaign
from portal.core.redis import get_async_redis
from portal.machines.models import MachineToken
from portal.relay import fanout, services

log = logging.getLogger(__name__)


def _bearer_token(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text.lower().startswith("bearer "):
                return text[7:].strip()
    return ""


@database_sync_to_async
def _authenticate(raw: str) -> MachineToken | None:
    from portal.machines.services import token_authenticate

    return token_authenticate(raw=raw)


@database_sync_to_async
def _record_client(token_id: int, client_version: str) -> None:
    from django.utils import timezone

    MachineToken.objects.filter(pk=token_id).update(client_version=client_version[:32], last_seen=timezone.now())


@database_sync_to_async
def _campaign_status(campaign_id: int) -> str:
    return Campaign.objects.values_list("status", flat=True).get(pk=campaign_id)


def _download_page() -> str:
    try:
        return reverse("downloads:page")
    except NoReverseMatch:
        return "/download/"


@functools.lru_cache(maxsize=16)
def _model_frame(version: int, url: str, sha256: str) -> bytes:
    """A model notice is the same bytes for every client: pack it once per process, not 1,000 times."""
    return P.pack({"type": P.MODEL, "version": version, "url": url, "sha256": sha256})


STATUS_MESSAGES = {
    "running": "The campaign is running again.",
    "paused": "The campaign is paused by its admins; your client waits and keeps its data.",
    "stopped": "The campaign has been stopped. Thank you for contributing!",
}


class ClientConsumer(AsyncWebsocketConsumer):
    # Client connections stay off the Channels layer (no channel, no receive loop per client):
    # their notices come through portal.relay.fanout. The layer stays configured for browsers.
    channel_layer_alias = None

    token: MachineToken | None = None
    campaign: Campaign | None = None
    joined: bool = False

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
        self.greeted = False
        self.closing = False
        self.model_sent = 0
        self.status_sent: str | None = None
        await self.accept()
        token = await _authenticate(_bearer_token(self.scope))
        if token is None:
            await self.fatal(
                P.R_AUTH,
                "The server does not know this machine token, or it was revoked. "
                "Join the campaign on the portal to get a new one.",
                P.CLOSE_AUTH,
            )
            return
        self.token, self.campaign = token, token.campaign

    async def disconnect(self, code: int) -> None:
        if self.joined:
            fanout.get_fanout().leave(self.campaign.id, self)
            self.joined = False

    async def fatal(self, code: str, message: str, close_code: int) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send(bytes_data=P.pack({"type": P.ERROR, "code": code, "message": message}))
        await self.close(code=close_code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.token is None or self.closing:
            return  # refused; the close is on its way
        try:
            message = P.unpack(bytes_data if bytes_data is not None else text_data)
        except P.ProtocolError as exc:
            if not self.greeted:
                await self.fatal(exc.code, f"bad handshake: {exc.message}", P.CLOSE_PROTOCOL)
            else:
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
                await self.on_hello(message)
            elif kind == P.CHUNK:
                await self.on_chunk(message, bytes_data)
            elif kind == P.EVAL:
                await self.on_eval(message)
            else:
                chunk_id = message.get("id") if isinstance(message.get("id"), str) else None
                await self.reject(chunk_id, P.R_SCHEMA, f"unknown message type {kind!r}")
        except Exception:
            # Nothing of an unacked chunk counts as stored; the client reconnects (1011 is not fatal)
            # and resends it, and the store script's de-duplication keeps that exactly-once.
            log.exception("relay: unexpected error on a %r message from machine %s", kind, self.token.prefix)
            await self.send_message(
                {"type": P.ERROR, "code": P.R_SERVER, "message": "The server hit an unexpected error; "
                 "your client reconnects and resends what was not acknowledged."}
            )
            await self.close(code=P.CLOSE_SERVER_ERROR)

    async def on_hello(self, message: dict[str, Any]) -> None:
        campaign = self.campaign
        protocol = message.get("protocol")
        client_version = str(message.get("client_version") or "unknown")[:32]
        if protocol != P.PROTOCOL_VERSION:
            await self.fatal(
                P.R_UPGRADE,
                f"This client (version {client_version}) speaks protocol {protocol!r}; the server speaks "
                f"protocol {P.PROTOCOL_VERSION}. Download the current client from {_download_page()} "
                "on the portal and install it.",
                P.CLOSE_UPGRADE,
            )
            return
        if P.version_older(client_version, campaign.min_client_version):
            await self.fatal(
                P.R_UPGRADE,
                f"Campaign '{campaign.name}' needs SoulsAI client {campaign.min_client_version} or newer; "
                f"this one is {client_version}. Download the current client from {_download_page()} "
                "on the portal, install it, and start it again: your unsent data is kept.",
                P.CLOSE_UPGRADE,
            )
            return
        status = await _campaign_status(campaign.id)
        if status not in (Campaign.Status.RUNNING, Campaign.Status.PAUSED):
            await self.fatal(
                P.R_CLOSED,
                f"Campaign '{campaign.name}' is {status} and takes no experience. Pick a running campaign on the portal.",
                P.CLOSE_CLOSED,
            )
            return
        await _record_client(self.token.id, client_version)
        redis = get_async_redis()
        await services.machine_seen(client=redis, campaign_id=campaign.id, machine_id=self.token.id)
        self.schema = P.ChunkSchema.from_spaces(
            observation_space=normalize_spec(campaign.observation_space),
            action_space=normalize_spec(campaign.action_space),
            max_steps=campaign.chunk_steps,
        )
        # Join, then read model and status from Redis (where changes land before their notice is
        # published): a change made in between reaches this client either way.
        await fanout.get_fanout().join(campaign.id, self)
        self.joined = True
        model = await services.current_model(client=redis, campaign_id=campaign.id)
        status = await services.current_status(client=redis, campaign_id=campaign.id) or status
        if status not in (Campaign.Status.RUNNING, Campaign.Status.PAUSED):
            await self.fatal(P.R_CLOSED, f"Campaign '{campaign.name}' is {status} and takes no experience.", P.CLOSE_CLOSED)
            return
        self.model_sent = model["version"] if model else 0
        self.status_sent = status
        self.greeted = True
        await self.send_message(
            {
                "type": P.WELCOME,
                "protocol": P.PROTOCOL_VERSION,
                "campaign": {
                    "slug": campaign.slug,
                    "name": campaign.name,
                    "env_id": campaign.env_id,
                    "env_kwargs": campaign.env_kwargs,
                    "algorithm": campaign.algorithm,
                    "status": status,
                    "url": campaign.get_absolute_url(),
                },
                "spaces": {
                    "observation": normalize_spec(campaign.observation_space),
                    "action": normalize_spec(campaign.action_space),
                },
                "chunk_steps": campaign.chunk_steps,
                "model": model,
                "machine": {"name": self.token.name, "prefix": self.token.prefix},
            }
        )

    async def on_chunk(self, message: dict[str, Any], frame: bytes) -> None:
        campaign = self.campaign
        chunk_id = message.get("id") if isinstance(message.get("id"), str) else None
        try:
            chunk = P.decode_chunk(message, schema=self.schema)
        except P.ProtocolError as exc:
            await self.reject(chunk_id, exc.code, exc.message)
            return
        redis = get_async_redis()
        result = await services.chunk_store(
            client=redis,
            campaign_id=campaign.id,
            machine_id=self.token.id,
            frame=frame,
            chunk=chunk,
            max_policy_lag=campaign.max_policy_lag,
        )
        extra_ms = services.flag_wait_ms(result.flagged)
        if result.outcome == services.REVOKED:
            await self.revoked()
            return
        if result.outcome == services.NOT_RUNNING:
            await self.reject(chunk.id, P.R_NOT_RUNNING, "the campaign is not running", wait_ms=extra_ms)
            return
        if result.outcome == services.RATE_LIMITED:
            await self.reject(
                chunk.id, P.R_RATE_LIMITED,
                "too many chunks per second from this machine; keep the chunk and send it again later",
                wait_ms=services.rate_wait_ms() + extra_ms,
            )
            return
        if result.outcome == services.FULL:
            await self.reject(
                chunk.id, P.R_RATE_LIMITED,
                "the campaign's learner is far behind and its queue is full; keep the chunk and send it again later",
                wait_ms=services.FULL_WAIT_MS + extra_ms,
            )
            return
        if result.outcome == services.UNKNOWN_MODEL:
            await self.reject(
                chunk.id, P.R_MODEL_VERSION,
                f"model version {chunk.model_version} does not exist (current: {result.model_version})",
            )
            return
        if result.outcome == services.STALE_MODEL:
            await self.reject(
                chunk.id, P.R_MODEL_VERSION,
                f"model version {chunk.model_version} is too old: this campaign takes experience of the "
                f"last {campaign.max_policy_lag} versions before the current {result.model_version}",
            )
            return
        ack = {
            "type": P.ACK,
            "id": chunk.id,
            "duplicate": result.outcome == services.DUPLICATE,
            "model_version": result.model_version,
            "wait_ms": services.backoff_ms(result.backlog, result.high_water) + extra_ms,
        }
        if result.eval_notice is not None:
            # The learner asks for greedy episodes of a checkpoint: this client plays one next.
            ack["evaluate"] = result.eval_notice
        await self.send_message(ack)
        # Piggyback: a client that missed a notice learns of the new model from its next ack. The
        # process's fan-out usually holds that notice already, which saves a round trip per client.
        if result.model_version > self.model_sent:
            model = fanout.get_fanout().latest_model(campaign.id)
            if model is None or model["version"] < result.model_version:
                model = await services.current_model(client=redis, campaign_id=campaign.id)
            if model:
                await self.send_model(model)

    async def on_eval(self, message: dict[str, Any]) -> None:
        """A greedy evaluation episode's result: recorded once per id, acked like a chunk."""
        result_id = message.get("id") if isinstance(message.get("id"), str) else None
        try:
            result = P.decode_eval(message)
        except P.ProtocolError as exc:
            await self.reject(result_id, exc.code, exc.message)
            return
        outcome = await services.eval_store(client=get_async_redis(), campaign_id=self.campaign.id, result=result)
        if outcome == -2:
            await self.reject(result.id, P.R_MODEL_VERSION, f"model version {result.model_version} does not exist")
            return
        await self.send_message(
            {"type": P.ACK, "id": result.id, "duplicate": outcome == 0, "model_version": 0, "wait_ms": 0}
        )

    async def reject(self, chunk_id: str | None, code: str, text: str, *, wait_ms: int | None = None) -> None:
        """Refuse one chunk; the connection stays usable. Counts it against the machine unless the
        refusal is about the campaign or the rate (then ``wait_ms`` is given)."""
        if wait_ms is None:
            record = await services.rejection_record(
                client=get_async_redis(), campaign_id=self.campaign.id, machine_id=self.token.id, code=code
            )
            wait_ms = services.flag_wait_ms(record.flagged)
        await self.send_message(
            {"type": P.REJECT, "id": chunk_id, "code": code, "message": text, "wait_ms": wait_ms}
        )

    async def revoked(self) -> None:
        await self.fatal(
            P.R_AUTH,
            "This machine token was revoked on the portal. Join the campaign again to get a new one.",
            P.CLOSE_AUTH,
        )

    async def send_model(self, model: dict[str, Any]) -> None:
        if model["version"] > self.model_sent:
            self.model_sent = model["version"]
            await self.send(bytes_data=_model_frame(model["version"], model["url"], model["sha256"]))

    async def send_status(self, status: str) -> None:
        if status == self.status_sent:
            return  # a re-announcement after the fan-out resubscribed: nothing new
        self.status_sent = status
        await self.send_message({"type": P.STATUS, "status": status, "message": STATUS_MESSAGES.get(status, status)})
        if status == Campaign.Status.STOPPED:
            self.closing = True
            await self.close(code=1000)

    async def send_message(self, message: dict[str, Any]) -> None:
        await self.send(bytes_data=P.pack(message))

    # Notices from portal.relay.fanout (one Redis subscription per process).

    async def on_notice(self, notice: dict[str, Any]) -> None:
        if not self.greeted or self.closing:
            return
        kind = notice.get("kind")
        if kind == fanout.MODEL:
            await self.send_model({"version": notice["version"], "url": notice["url"], "sha256": notice["sha256"]})
        elif kind == fanout.STATUS:
            await self.send_status(notice["status"])
        elif kind == fanout.REVOKED and notice.get("machine") == self.token.id:
            await self.revoked()
