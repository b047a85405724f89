from django.urls import path

from portal.relay.consumers import ClientConsumer

websocket_urlpatterns = [path("ws/client/", ClientConsumer.as_asgi())]
