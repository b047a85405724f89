from django.urls import path

from portal.core.clients import origin_checked
from portal.livestats.consumers import CampaignStatsConsumer

# Browsers always send an Origin: it must be the site's own (a page elsewhere cannot make its
# visitors open live sockets here).
websocket_urlpatterns = [
    path("ws/campaigns/<slug:slug>/", origin_checked(CampaignStatsConsumer.as_asgi(), required=True)),
]
