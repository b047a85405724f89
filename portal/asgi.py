"""ASGI entry point: Django for HTTP, the relay consumer for clients' websockets, live stats for browsers.

Every scope first gets the client's address (portal.core.clients.ClientAddressMiddleware: the peer,
or what a trusted proxy forwarded), which Django's REMOTE_ADDR, the rate limits and the websocket
caps all read. Each websocket route checks its Origin (see the routing modules).
Before that, /metrics is answered (or refused) on the socket's own peer address, outside Django
(portal.metrics.endpoint).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from portal.core.clients import ClientAddressMiddleware  # noqa: E402
from portal.core.gctune import tune as tune_gc  # noqa: E402
from portal.livestats.routing import websocket_urlpatterns as live_stats_urlpatterns  # noqa: E402
from portal.metrics.endpoint import MetricsEndpoint  # noqa: E402
from portal.relay.routing import websocket_urlpatterns  # noqa: E402

# /metrics first, on the socket's own peer address (allowed networks only): portal.metrics.endpoint.
application = MetricsEndpoint(
    ClientAddressMiddleware(
        ProtocolTypeRouter(
            {"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns + live_stats_urlpatterns)}
        )
    )
)

# Everything loaded: freeze it and space the collector's full scans (portal.core.gctune; with 5,000
# clients a full scan stopped the event loop for most of a second).
tune_gc(settings.SOULSAI_GC_THRESHOLDS)
