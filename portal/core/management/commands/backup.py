"""`manage.py backup --to FOLDER`: one consistent, timestamped backup set of the data host (Redis,
PostgreSQL, the storage's files) with its manifest. Run nightly by deploy/systemd/soulsai-backup.timer;
docs/deployment.md, "Backups and restore"."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.core.backup import BackupError, backup_create, backup_prune

DEFAULT_KEEP = 14


def backup_argv(*, to: Path, keep: int = DEFAULT_KEEP) -> list[str]:
    """The nightly backup's command line (deploy/systemd/soulsai-backup.service runs it)."""
    return [sys.executable, "manage.py", "backup", "--to", str(to), "--keep", str(keep)]


class Command(BaseCommand):
    help = (
        "Write one backup set into --to: a fresh RDB of REDIS_URL's server (redis-cli --rdb), then pg_dump "
        "(custom format) of DATABASE_URL's database, then every file of the storage engine, and a manifest "
        "(sha256 of every file, row counts, Redis key counts and counters, time of each part). Needs "
        "redis-cli and redis-server (the RDB is loaded once to check it) and pg_dump on this host. Prints "
        "the set's folder on its last line."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--to", type=Path, required=True, help="folder that holds the sets (made if missing)"
        )
        parser.add_argument(
            "--keep", type=int, default=0,
            help="then remove all but the newest KEEP complete sets in --to (0, the default: remove none)",
        )  # fmt: skip
        parser.add_argument("--redis-cli", help="redis-cli to use (default: the one on PATH)")
        parser.add_argument(
            "--redis-server", help="redis-server that checks the RDB (default: the one on PATH)"
        )
        parser.add_argument("--pg-dump", help="pg_dump to use (default: the one on PATH)")

    def handle(self, *args, **opts):
        if opts["keep"] < 0:
            raise CommandError("--keep must be 0 or more")
        try:
            folder = backup_create(
                parent=opts["to"], redis_cli=opts["redis_cli"], redis_server=opts["redis_server"],
                pg_dump=opts["pg_dump"], say=self.stdout.write,
            )  # fmt: skip
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for old in backup_prune(opts["to"], keep=opts["keep"]):
            self.stdout.write(f"removed the older set {old}")
        self.stdout.write(str(folder))
