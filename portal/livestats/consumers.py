"""The browser's live view of a campaign: a send-only websocket fed over the Channels layer.

Thin on purpose: it takes one of the visitor's address's seats (``SOULSAI_WS_BROWSERS_PER_ADDRESS``),
checks that the campaign is public, joins the campaign's group, and forwards the ``stats.update``
events that beat's stats_tick sends (portal.livestats.services.live_push) and the ``replay.new``
events of new evaluation replays (portal.replays.services.replay_announce). The Origin was checked
before (portal.livestats.routing).

Browsers have nothing to say on it, so nothing they send is ever decoded: any frame closes the
socket, with 1003 for a binary frame, 1009 for one over ``TEXT_FRAME_LIMIT`` and 1008 otherwise. The
server reads at most one message (of at most ``portal.core.processes.WS_MAX_SIZE`` bytes) before
that close.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from client_app.protocol.codes import CLOSE_TOO_MANY
from portal.campaigns.selectors import campaign_get_public
from portal.core.clients import Seats, address_bucket, scope_address, seats_key, send_unless_gone
from portal.core.strictjson import dumps
from portal.livestats.selectors import live_figures
from portal.livestats.services import campaign_group

CLOSE_NOT_FOUND = 4404  # no such public campaign (the page stops reconnecting)
TEXT_FRAME_LIMIT = 1024  # characters: above this a text frame is "too big" (1009), below it "not accepted"


@database_sync_to_async
def _campaign_and_figures(slug: str):
    campaign = campaign_get_public(slug=slug)
    return (campaign, live_figures(campaign=campaign)) if campaign is not None else (None, None)


class CampaignStatsConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    seats: Seats | None = None
    # Set once a close is sent: frames already on the wire (a flood) and group events that arrive before
    # the disconnect must not send a second close or a message after it (ASGI refuses both, loudly).
    closing: bool = False

    async def __call__(self, scope, receive, send) -> None:
        # A page that has gone (tab closed, network lost) is no error: nothing more is sent to it.
        try:
            await super().__call__(scope, receive, send_unless_gone(send, self.mark_closing))
        finally:
            await self.disconnect(1006)  # idempotent: seats released once, group left once

    def mark_closing(self) -> None:
        self.closing = True

    async def connect(self) -> None:
        self.seats = Seats()
        limit = settings.SOULSAI_WS_BROWSERS_PER_ADDRESS
        address = address_bucket(scope_address(self.scope))
        if not await self.seats.take(seats_key("browser:addr", address), limit):
            await self.accept()
            await self.close(
                code=CLOSE_TOO_MANY,
                reason=f"too many live pages open from your address (limit {limit}); close some and reload",
            )
            return
        campaign, figures = await _campaign_and_figures(self.scope["url_route"]["kwargs"]["slug"])
        if campaign is None:
            await self.seats.release()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = campaign_group(campaign.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "figures": figures})

    async def disconnect(self, code: int) -> None:
        if self.seats is not None:
            await self.seats.release()
        group, self.group = self.group, None
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def close(self, code=None, reason=None) -> None:
        if self.closing:
            return
        self.closing = True
        await super().close(code=code, reason=reason)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Replaces the JSON consumer's decoding receive: nothing but the frame's kind and length is looked at.
        if self.closing:
            return
        if bytes_data is not None:
            await self.close(code=1003, reason="this websocket takes no binary frames: it only sends")
        elif len(text_data or "") > TEXT_FRAME_LIMIT:
            await self.close(code=1009, reason="message too big: this websocket only sends")
        else:
            await self.close(
                code=1008, reason="this websocket only sends: browsers have nothing to say on it"
            )

    @classmethod
    async def encode_json(cls, content) -> str:
        return dumps(content)  # strict JSON: a non-finite figure is null, never Infinity

    async def replay_new(self, event: dict) -> None:
        """A new evaluation replay (``portal.replays.services.replay_announce``): the page's viewer loads it."""
        if self.closing:
            return
        await self.send_json({"type": "replay", "replay": event["replay"]})

    async def stats_update(self, event: dict) -> None:
        if self.closing:
            return
        await self.send_json({"type": "update", "figures": event["figures"], "point": event["point"]})
