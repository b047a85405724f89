from django.apps import AppConfig


class LivestatsConfig(AppConfig):
    name = "portal.livestats"
    label = "livestats"
