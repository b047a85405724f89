from django.apps import AppConfig


class MachinesConfig(AppConfig):
    name = "portal.machines"
    label = "machines"

    def ready(self) -> None:
        from portal.machines import signals

        signals.connect()
