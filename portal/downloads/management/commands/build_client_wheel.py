from django.core.management.base import BaseCommand, CommandError

from portal.downloads.services import WheelBuildError, client_wheel_build, client_wheel_ensure


class Command(BaseCommand):
    help = (
        "Build the downloadable soulsai-client wheel (client_app only) into SOULSAI_CLIENT_WHEEL_DIR, "
        "replacing older wheels, and print its filename, version and sha256. The download page serves it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="build only if there is no wheel yet or client_app's version changed",
        )

    def handle(self, *args, **options):
        try:
            info = client_wheel_ensure() if options["if_needed"] else client_wheel_build()
        except WheelBuildError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"filename: {info.filename}")
        self.stdout.write(f"version:  {info.version}")
        self.stdout.write(f"sha256:   {info.sha256}")
        self.stdout.write(f"size:     {info.size_bytes} bytes")
        self.stdout.write(f"path:     {info.path}")
