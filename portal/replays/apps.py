from django.apps import AppConfig


class ReplaysConfig(AppConfig):
    name = "portal.replays"
    label = "replays"
