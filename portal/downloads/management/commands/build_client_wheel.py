from django.core.management.base import BaseCommand, CommandError

from portal.downloads.services import WheelBuildError, client_wheel_build


class Command(BaseCommand):
    help = (
        "Build the downloadable soulsai-client wheel (client_app only) and put it in the default storage, "
        "unless the storage already holds one for client_app's version (then nothing is built); print its "
        "filename, version and sha256. Every web host's download page serves that stored file."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="kept for older scripts: building is always skipped when the version's wheel is stored",
        )

    def handle(self, *args, **options):
        try:
            info = client_wheel_build()
        except WheelBuildError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"filename: {info.filename}")
        self.stdout.write(f"version:  {info.version}")
        self.stdout.write(f"sha256:   {info.sha256}")
        self.stdout.write(f"size:     {info.size_bytes} bytes")
        self.stdout.write(f"storage:  {info.name}")
