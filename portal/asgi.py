"""ASGI entry point: Django for HTTP, the relay consumer for clients' websockets, live stats for browsers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from portal.livestats.routing import websocket_urlpatterns as live_stats_urlpatterns  # noqa: E402
from portal.relay.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns + live_stats_urlpatterns)}
)
