"""The browser's live view of a campaign: a read-only websocket fed over the Channels layer.

Thin on purpose: it checks that the campaign is public, joins the campaign's group, and forwards the
``stats.update`` events that beat's stats_tick sends (portal.livestats.services.live_push).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from portal.campaigns.selectors import campaign_get_public
from portal.core.strictjson import dumps
from portal.livestats.selectors import live_figures
from portal.livestats.services import campaign_group


@database_sync_to_async
def _campaign_and_figures(slug: str):
    campaign = campaign_get_public(slug=slug)
    return (campaign, live_figures(campaign=campaign)) if campaign is not None else (None, None)


class CampaignStatsConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        campaign, figures = await _campaign_and_figures(self.scope["url_route"]["kwargs"]["slug"])
        if campaign is None:
            await self.close(code=4404)
            return
        self.group = campaign_group(campaign.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "figures": figures})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        pass  # read-only: browsers have nothing to say

    @classmethod
    async def encode_json(cls, content) -> str:
        return dumps(content)  # strict JSON: a non-finite figure is null, never Infinity

    async def stats_update(self, event: dict) -> None:
        await self.send_json({"type": "update", "figures": event["figures"], "point": event["point"]})
