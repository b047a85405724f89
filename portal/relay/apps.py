from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "portal.relay"
    label = "relay"
