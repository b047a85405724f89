from django.urls import path

from portal.core.clients import origin_checked
from portal.relay.consumers import ClientConsumer

# The desktop client sends no Origin; a present one (a browser's) must still be the site's own.
websocket_urlpatterns = [path("ws/client/", origin_checked(ClientConsumer.as_asgi(), required=False))]
