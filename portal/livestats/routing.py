from django.urls import path

from portal.livestats.consumers import CampaignStatsConsumer

websocket_urlpatterns = [path("ws/campaigns/<slug:slug>/", CampaignStatsConsumer.as_asgi())]
