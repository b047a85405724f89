from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from client_app.release import SignatureError, verify
from portal.downloads.services import WheelBuildError, client_signature_store, client_wheel_info


class Command(BaseCommand):
    help = (
        "Store the maintainers' signature (<wheel>.sig, made offline with `python -m client_app.release sign`) "
        "of the current client wheel, after checking it against the release key built into this checkout. "
        "Clients update themselves only to a signed wheel (docs/releases.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("signature", type=Path, help="the .sig file (64 bytes)")

    def handle(self, *args, **options):
        info = client_wheel_info()
        if info is None:
            raise CommandError(
                "no client wheel in storage for this version: run manage.py build_client_wheel first"
            )
        try:
            signature = options["signature"].read_bytes()
            with default_storage.open(info.name, "rb") as handle:
                wheel = handle.read(info.size_bytes + 1)
            verify(wheel, signature)
            client_signature_store(info=info, signature=signature)
        except (OSError, ValueError, SignatureError, WheelBuildError) as exc:
            raise CommandError(f"{info.filename}: {exc}") from exc
        self.stdout.write(f"signed: {info.filename} ({info.version}, sha256 {info.sha256})")
