"""`manage.py restore_backup SET --redis-dir DIR`: a backup set brought up on a fresh data host.
docs/deployment.md, "Backups and restore"."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.core.backup import BackupError, backup_restore
from portal.core.backup.restore import PARTS


class Command(BaseCommand):
    help = (
        "Restore a backup set made by `manage.py backup` onto a fresh data host, after checking every file's "
        "sha256: pg_restore into DATABASE_URL's database (it must be empty: createdb and nothing else), the "
        "Redis data into --redis-dir as an append-only file (Redis stopped, the folder without data; then "
        "start Redis), the files into the configured storage (read back and checked). Each part is compared "
        "with the manifest. Run it on the data host (the Redis folder is there), with the platform's "
        "environment; --parts restores some parts only."
    )

    def add_arguments(self, parser):
        parser.add_argument("set", type=Path, help="the set's folder (soulsai-<time>, holding manifest.json)")
        parser.add_argument(
            "--redis-dir", type=Path, help="the new Redis's data folder (/var/lib/redis on Debian)"
        )
        parser.add_argument(
            "--redis-conf", type=Path,
            help="the new Redis's config (/etc/redis/redis.conf): the append-only file is named as it says",
        )  # fmt: skip
        parser.add_argument("--redis-server", help="redis-server to use (default: the one on PATH)")
        parser.add_argument("--pg-restore", help="pg_restore to use (default: the one on PATH)")
        parser.add_argument(
            "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (default: all)"
        )

    def handle(self, *args, **opts):
        parts = [p.strip() for p in opts["parts"].split(",") if p.strip()]
        try:
            backup_restore(
                folder=opts["set"], parts=parts, redis_dir=opts["redis_dir"], redis_server=opts["redis_server"],
                redis_conf=opts["redis_conf"], pg_restore=opts["pg_restore"], say=self.stdout.write,
            )  # fmt: skip
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("restored")
