from django.apps import AppConfig


class VolunteersConfig(AppConfig):
    name = "portal.volunteers"
    label = "volunteers"
